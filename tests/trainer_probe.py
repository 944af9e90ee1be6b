"""A recipe in miniature for the distributed, mixed-precision and crash-safety tests (``test_distributed.py``).

It trains the way every recipe does (``parse_recipe_arguments``, ``prepare_training``, ``set_seed`` before the model,
Trainer with ``NonFiniteLossCallback``, the final model saved by rank 0 only), on a tiny TransformerForSequenceClassification
without dropout, and records for each rank what it saw into ``--record_dir/rank{N}.json``:

* ``world_size`` and ``rank`` as Trainer sees them;
* ``batches``: the example ids of every training batch, in order (each example's first token is its id);
* ``writes``: every file-system write under ``--output_dir`` made from Python (audit hooks: ``open`` for writing,
  ``mkdir``, ``rename``/``replace``, ``remove``, ``copyfile``). Weights are written by safetensors' Rust code, but
  every save path (``save_pretrained``, Trainer's checkpoints) also creates its folder or writes a JSON file from
  Python, so a rank that saves shows up here.

    torchrun --nproc_per_node 2 tests/trainer_probe.py --output_dir out --record_dir rec --max_steps 3 \\
        --per_device_train_batch_size 4 --report_to none
"""

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
from recipe_utils import NonFiniteLossCallback, parse_recipe_arguments, prepare_training  # noqa: E402

from hf_models import TransformerConfig, TransformerForSequenceClassification  # noqa: E402

FIRST_EXAMPLE_TOKEN = 8  # token ids below this one fill the sequences; example i starts with token 8 + i
SEQUENCE_LENGTH = 6


@dataclass
class ProbeArguments:
    record_dir: str = field(metadata={"help": "Where each rank writes rank{N}.json."})
    num_examples: int = field(default=32)
    nan_at_step: int | None = field(
        default=None, metadata={"help": "From this optimizer step on (1-based) the loss is NaN, as after a blow-up."}
    )


def probe_dataset(num_examples: int) -> datasets.Dataset:
    """Fixed-length sequences (no padding, so every example weighs the same in the loss) that start with their id."""
    generator = torch.Generator().manual_seed(1234)
    filler = torch.randint(1, FIRST_EXAMPLE_TOKEN, (num_examples, SEQUENCE_LENGTH - 1), generator=generator)
    ids = torch.arange(num_examples).unsqueeze(1) + FIRST_EXAMPLE_TOKEN
    return datasets.Dataset.from_dict(
        {"input_ids": torch.cat([ids, filler], dim=1).tolist(), "labels": (filler.sum(1) % 2).tolist()}
    )


def probe_model(num_examples: int) -> TransformerForSequenceClassification:
    config = TransformerConfig(
        vocab_size=FIRST_EXAMPLE_TOKEN + num_examples,
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        encoder_layers=1,
        decoder_layers=0,
        max_position_embeddings=SEQUENCE_LENGTH,
        num_labels=2,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    return TransformerForSequenceClassification(config)


def record_writes_under(folder: Path) -> list[list[str]]:
    """Starts recording this process's Python-level writes under ``folder``; returns the (growing) record."""
    folder = str(folder.resolve())
    writes: list[list[str]] = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & write_flags)
            paths = [path] if writing else []
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            paths = [args[0]]
        elif event in ("os.rename", "os.replace", "shutil.copyfile", "shutil.move"):
            paths = [args[1]]
        else:
            return
        for path in paths:
            if isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(folder):
                writes.append([event, os.path.relpath(os.path.abspath(path), folder)])

    sys.addaudithook(hook)
    return writes


def main(argv: list[str] | None = None) -> None:
    probe_args, training_args = parse_recipe_arguments(HfArgumentParser((ProbeArguments, TrainingArguments)), argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=training_args.get_process_log_level())
    prepare_training(training_args)
    writes = record_writes_under(Path(training_args.output_dir))
    set_seed(training_args.seed)
    model = probe_model(probe_args.num_examples)

    batches: list[list[int]] = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append((kwargs["input_ids"][:, 0] - FIRST_EXAMPLE_TOKEN).tolist()),
        with_kwargs=True,
    )
    if probe_args.nan_at_step is not None:

        def nan_loss(module, args, kwargs, output):
            if module.training and len(batches) >= probe_args.nan_at_step:
                output.loss = output.loss * float("nan")
            return output

        model.register_forward_hook(nan_loss, with_kwargs=True)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=probe_dataset(probe_args.num_examples),
        callbacks=[NonFiniteLossCallback()],
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(training_args.output_dir)
    record = {"world_size": training_args.world_size, "rank": training_args.process_index, "batches": batches, "writes": writes}
    record_dir = Path(probe_args.record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / f"rank{training_args.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
