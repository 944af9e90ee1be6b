"""Small helpers shared by the training recipes (``recipes/`` is a script folder: import as ``from recipe_utils import``)."""

import argparse
import hashlib
import inspect
import json
import logging
import math
import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi, get_token
from safetensors import safe_open
from torch.distributed.tensor import DTensor
from tokenizers import Tokenizer
from transformers import HfArgumentParser, PreTrainedConfig, PreTrainedTokenizerFast, Trainer, TrainerCallback

logger = logging.getLogger(__name__)


def limit(dataset: datasets.Dataset | None, count: int | None) -> datasets.Dataset | None:
    """The first ``count`` rows of ``dataset`` (all of them when ``count`` is None or 0; None stays None), for the
    recipes' ``--max_train_samples`` / ``--max_eval_samples`` / ``--max_test_samples``."""
    return dataset.select(range(min(count, len(dataset)))) if dataset is not None and count else dataset


def numbered_lines(lines: Iterable[bytes], name: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the corpus file ``name``'s raw ``lines``, decoded one by one (a BOM on the first is
    dropped), so that invalid UTF-8 is reported with the number of its own line: a decoding text stream reads ahead
    in blocks and fails hundreds of lines early."""
    for number, raw_line in enumerate(lines, start=1):
        try:
            yield number, raw_line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{name} line {number} is not UTF-8 text: {error}") from error


def is_blank(text: str) -> bool:
    """An empty text, or one of only whitespace and NUL characters (what a zero-filled line decodes to): not an
    example, for the corpus readers."""
    return not text.replace("\x00", "").strip()


def load_table(path: Path, builder: str, **options) -> datasets.Dataset:
    """A CSV/JSON file as a dataset through ``datasets.load_dataset(builder)``, with errors that name the file:
    an empty file, or a CSV with a header and no rows, would otherwise end in ``StopIteration``, a bare
    ``DatasetGenerationError`` or ``Instruction "train" corresponds to no data!``."""
    if not path.read_bytes().strip():
        raise ValueError(f"{path} is empty")
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except Exception as error:  # datasets wraps the parser's errors in its own types
        cause = error.__cause__ or error
        if "corresponds to no data" in str(cause):  # the split came out empty: a CSV header without rows
            raise ValueError(f"{path} holds no records (only a header?)") from error
        raise ValueError(f"{path}: cannot be read as {builder.upper()}: {type(cause).__name__}: {cause}") from error
    if len(table) == 0:
        raise ValueError(f"{path} holds no records (only a header?)")
    return table


# ---- The two tokenizer recipes (train_tokenizer.py, train_classification_tokenizer.py) ----


def wrap_trained_tokenizer(tokenizer: Tokenizer, model_max_length: int, **special_tokens) -> PreTrainedTokenizerFast:
    """A trained ``tokenizers`` model as the transformers tokenizer a recipe saves: padded on the right, and decoded
    without transformers' clean-up of spaces (decoding gives back the pieces' own spacing)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        **special_tokens,
    )


def parse_tokenizer_arguments(parser: argparse.ArgumentParser, argv: list[str] | None, built_in_validation: str):
    """A tokenizer recipe's arguments; ``--validation_file`` without ``--train_file`` is refused (the built-in
    corpus brings its own validation split, ``built_in_validation`` says which). Sets up INFO logging."""
    args = parser.parse_args(argv)
    if args.validation_file and not args.train_file:
        parser.error(f"--validation_file goes with --train_file ({built_in_validation})")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args


def save_tokenizer_with_stats(tokenizer, output_dir: Path, stats: dict, splits: datasets.DatasetDict, validation_stats) -> dict:
    """Saves ``tokenizer`` in ``output_dir`` and prints ``stats``, plus ``validation_stats(validation split)`` when the
    splits have one, as JSON; returns what it printed."""
    tokenizer.save_pretrained(output_dir)
    if "validation" in splits:
        stats["validation"] = validation_stats(splits["validation"])
    print(json.dumps(stats, indent=2, ensure_ascii=False))
    return stats


# What a recipe's output folder holds besides the published model: Trainer's checkpoints, TensorBoard runs and
# private files (Trainer.push_to_hub leaves out the same), and the pickled TrainingArguments that
# Trainer.save_model writes (a pickle is nothing to hand out, and nobody needs it to use the model).
PUBLISH_IGNORE_PATTERNS = ["checkpoint-*", "runs/*", "_*", "training_args.bin"]


class PublishError(RuntimeError):
    """The upload of a finished output folder failed; the folder itself is complete."""


def take_push_to_hub(training_args) -> str | None:
    """Turns off Trainer's own publishing and returns the repo to publish the final folder to (None without
    ``--push_to_hub``).

    With ``push_to_hub=True`` Trainer creates the repo in its ``__init__`` and pushes checkpoints while it trains,
    so a missing token or an unreachable Hub would stop the run before or during training. The recipe publishes
    once instead, after the local save, the test evaluation and the model card (:func:`publish_output_folder`).
    The repo name defaults to the output folder's name, as in Trainer.
    """
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    return training_args.hub_model_id or Path(training_args.output_dir).absolute().name


def publish_output_folder(output_dir, hub_model_id: str, token: str | None = None, private: bool | None = None):
    """Uploads a recipe's finished ``output_dir`` (model, code, tokenizer or processor, pipeline, model card, results)
    to ``hub_model_id`` as one commit; returns huggingface_hub's ``CommitInfo``.

    The Hub is ``HF_ENDPOINT`` (default huggingface.co) and the token ``token``, else ``HF_TOKEN`` or the saved login.
    Any failure (no token, refused, unreachable) raises :class:`PublishError` naming the endpoint and the repo, and
    saying how to upload the folder later: nothing trained is lost.
    """
    api = HfApi(token=token)
    excludes = " ".join(f"--exclude '{pattern}'" for pattern in PUBLISH_IGNORE_PATTERNS)
    retry = (
        f"The trained model is saved in {output_dir}; upload it later with: "
        f"hf upload {hub_model_id} {output_dir} {excludes}"
    )
    if token is None and get_token() is None:
        raise PublishError(
            f"Cannot publish to {api.endpoint} (repo {hub_model_id}): no Hugging Face token. Set HF_TOKEN, pass "
            f"--hub_token or run `hf auth login`. {retry}"
        )
    try:
        repo_id = api.create_repo(hub_model_id, private=private, exist_ok=True).repo_id
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=output_dir,
            commit_message="Upload the trained model, its code and its model card",
            ignore_patterns=PUBLISH_IGNORE_PATTERNS,
        )
    except Exception as error:  # whatever went wrong, the message must point at the saved folder
        raise PublishError(
            f"Could not publish to {api.endpoint} (repo {hub_model_id}): {type(error).__name__}: {error}. {retry}"
        ) from error
    logger.info("published %s to %s", output_dir, commit.commit_url)
    return commit


# ---- Launching, mixed precision and crash safety: every recipe calls these the same way ----
#
#     model_args, data_args, training_args = parse_recipe_arguments(parser, argv)
#     logging.basicConfig(...)
#     prepare_training(training_args)
#     trainer = Trainer(..., callbacks=[NonFiniteLossCallback()])


def config_fields(config_class: type[PreTrainedConfig]) -> set[str]:
    """The keyword arguments a config class takes itself, along its chain of parents up to ``PreTrainedConfig``."""
    fields = set()
    for cls in config_class.__mro__:
        if cls is PreTrainedConfig or not issubclass(cls, PreTrainedConfig) or "__init__" not in vars(cls):
            continue
        fields |= set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    return fields


def parse_config_overrides(text: str | None, config_class: type[PreTrainedConfig]) -> dict:
    """``"encoder_layers=0,pre_layer_norm=false"`` -> ``{"encoder_layers": 0, "pre_layer_norm": False}``: the recipes'
    ``--config_overrides``. Values are JSON (numbers, true/false/null) or else strings; every key must be an argument
    of ``config_class``, so a typo fails before training instead of being stored unused in the config."""
    if not text:
        return {}
    known = config_fields(config_class)
    overrides = {}
    for item in text.split(","):
        key, separator, value = (part.strip() for part in item.partition("="))
        if not separator or key not in known:
            raise ValueError(
                f"--config_overrides: {item!r} is not 'field=value' with a {config_class.__name__} field ({', '.join(sorted(known))})"
            )
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def parse_recipe_arguments(parser: HfArgumentParser, argv: list[str] | None = None) -> tuple:
    """The recipe's argument dataclasses, from ``argv`` (default: the command line) and an optional ``--args_file``.

    ``--use_cpu`` defaults to on where no accelerator (CUDA, MPS, XPU, ...) is present. It has to be set before
    TrainingArguments exists, because its ``__post_init__`` sets up the device and the process group: under a
    multi-process launch (``accelerate launch`` with ``cpu_ddp_2proc.yaml``, ``torchrun``) on a CPU-only machine,
    processes without CPU mode never join one gloo group and each trains alone, and ``--bf16`` is refused.
    ``--use_cpu False`` still wins.
    """
    if not torch.accelerator.is_available():
        parser.set_defaults(use_cpu=True)
    return parser.parse_args_into_dataclasses(args=argv, args_file_flag="--args_file")


def prepare_training(training_args) -> None:
    """Checks and settings applied after parsing, before any data or model is built.

    * A multi-process launch whose processes did not form one process group stops with an error (otherwise each
      would silently train its own model on all the data).
    * fp16 on CPU stops with an error: Accelerate would train in fp32 without a word. bf16 works on CPU.
    * Trainer's ``logging_nan_inf_filter`` is turned off, so a NaN or infinite loss shows in the logs instead of
      being replaced by the running mean; :class:`NonFiniteLossCallback` stops the run on it. The first step's loss
      is logged: :class:`DivergenceCallback` measures against it.
    * The checkpoint given to ``--resume_from_checkpoint`` is verified (:func:`verify_checkpoint`).
    * The world size, this process's rank and device, and the batch arithmetic are logged.
    """
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    if training_args.world_size != launched_processes:
        raise RuntimeError(
            f"launched as one of {launched_processes} processes, but this process trains alone (world size "
            f"{training_args.world_size}, device {training_args.device}); without a GPU the processes need "
            "--use_cpu (the recipes' default where no accelerator is present) to join one gloo process group"
        )
    if training_args.mixed_precision == "fp16" and training_args.device.type == "cpu":
        raise ValueError(
            "fp16 mixed precision needs a GPU (on CPU it would not be applied and the run would train in fp32); "
            "use --bf16 instead, or remove --fp16 / `mixed_precision: fp16` from the accelerate config"
        )
    training_args.logging_nan_inf_filter = False
    training_args.logging_first_step = True  # DivergenceCallback's reference loss
    if training_args.resume_from_checkpoint:
        verify_checkpoint(training_args.resume_from_checkpoint, training_args.world_size, training_args.process_index)
    total_batch = (
        training_args.per_device_train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps
    )
    logger.info(
        "world size %d (rank %d, local rank %d, device %s, mixed precision %s); batch per optimizer step: "
        "%d per device x %d processes x %d accumulation steps = %d",
        training_args.world_size, training_args.process_index, training_args.local_process_index,
        training_args.device, training_args.mixed_precision, training_args.per_device_train_batch_size,
        training_args.world_size, training_args.gradient_accumulation_steps, total_batch,
    )


def verify_checkpoint(folder, world_size: int = 1, process_index: int = 0) -> None:
    """Raises ``ValueError`` naming the file when a checkpoint folder's weights or training state are missing,
    truncated or corrupt, instead of a decoder error deep inside a resumed run.

    A resume needs the whole training state: without ``optimizer.pt`` or ``scheduler.pt`` Trainer would go on with
    a fresh AdamW and a restarted schedule, and without this process's RNG state (``rng_state.pth``, or
    ``rng_state_<rank>.pth`` under ``world_size`` > 1) with other dropout masks, all without an error. Such a
    folder (e.g. one saved with ``--save_only_model``) is refused; to start from its weights alone, load them as
    a model (``--model_name_or_path`` in the image recipe) instead of resuming.

    Weights are safetensors (Trainer writes no pickled weights): each header is parsed and must describe exactly
    the bytes of its file, which catches truncation and damaged headers (a flipped bit inside the tensor data
    carries no checksum and is not detected). Trainer's training state (``optimizer.pt``, ``scheduler.pt``,
    ``rng_state*.pth``, ``training_args.bin``) is written by ``torch.save`` as zip archives: every member's
    CRC-32 is checked. JSON files (``trainer_state.json``, ``config.json``) must parse. Trainer writes
    ``trainer_state.json`` last, so a folder without it is a save that died half-way (a resumed run would silently
    start with a fresh optimizer).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"checkpoint folder {folder} does not exist")
    if not (folder / "trainer_state.json").exists():
        raise ValueError(
            f"checkpoint folder {folder} is incomplete: {folder / 'trainer_state.json'} is missing (Trainer writes it "
            "last; the run probably stopped while saving). Resume from an earlier checkpoint"
        )
    rng_state = "rng_state.pth" if world_size <= 1 else f"rng_state_{process_index}.pth"
    for name in ("optimizer.pt", "scheduler.pt", rng_state):
        if not (folder / name).is_file():
            raise ValueError(
                f"checkpoint file {folder / name} is missing: resuming without it would silently restart the "
                f"{'optimizer' if name == 'optimizer.pt' else 'learning-rate schedule' if name == 'scheduler.pt' else 'random number generators'}"
                " instead of continuing the run. Resume from a complete checkpoint (a --save_only_model folder holds "
                "only the weights)"
            )
    index_file = folder / "model.safetensors.index.json"
    if index_file.exists():
        shards = set(json.loads(index_file.read_text())["weight_map"].values())
        missing = sorted(shard for shard in shards if not (folder / shard).exists())
        if missing:
            raise ValueError(f"checkpoint file {folder / missing[0]} is missing (listed in {index_file})")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ValueError(f"checkpoint folder {folder} holds no *.safetensors weights")
    for path in weights:
        try:
            with safe_open(path, framework="pt"):
                pass  # opening parses the header and checks it against the file size
        except Exception as error:  # safetensors raises its own SafetensorError, or OSError
            raise ValueError(f"checkpoint file {path} is truncated or corrupt: {error}") from error
    for path in sorted(p for p in folder.iterdir() if p.suffix in {".pt", ".pth", ".bin"}):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged_member = archive.testzip()
        except (zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"checkpoint file {path} is truncated or corrupt: {error}") from error
        if damaged_member is not None:
            raise ValueError(f"checkpoint file {path} is corrupt: its member {damaged_member} fails the CRC check")
    for path in sorted(folder.glob("*.json")):
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"checkpoint file {path} is truncated or corrupt: {error}") from error


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


class NonFiniteLossCallback(TrainerCallback):
    """Stops training with :class:`NonFiniteLossError` at the first step whose loss became NaN or infinite, before
    Trainer can save a checkpoint of the broken weights.

    Trainer hands callbacks no per-step loss, but a NaN/inf loss makes NaN/inf gradients that the optimizer step
    writes into the weights, so the weights are checked after every step (one pass over the parameters). Trainer
    saves checkpoints after ``on_step_end``, so the error comes first and the last checkpoint stays sound. Under
    DDP the gradients are averaged across ranks: every rank sees the same broken weights and stops at the same
    step, and none waits forever for another. Under fp16 loss scaling, a step whose scaled gradients overflow is
    skipped by the GradScaler and leaves the weights finite, as it should. Under FSDP each rank checks its own
    shard of the parameters. The logged loss is checked as well (:func:`prepare_training` stops Trainer from
    replacing a NaN loss by the running mean).
    """

    def on_step_end(self, args, state, control, model=None, **kwargs):
        names, parameters = zip(*model.named_parameters())
        shards = [parameter.to_local() if isinstance(parameter, DTensor) else parameter for parameter in parameters]
        finite = torch.stack([torch.isfinite(shard).all() for shard in shards])
        if not finite.all():
            name = names[int((~finite).nonzero()[0])]
            raise NonFiniteLossError(
                f"loss became nan or inf at step {state.global_step}: after that step's update the parameter {name} "
                "holds non-finite values. Stopped before saving a checkpoint; resume from the last one with a lower "
                "--learning_rate, more --warmup_steps or --max_grad_norm"
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss} at step {state.global_step} (the mean over the steps since the last log). "
                "Stopped before saving a checkpoint; resume from the last one with a lower --learning_rate, more "
                "--warmup_steps or --max_grad_norm"
            )


class DivergedError(RuntimeError):
    """Training stopped because the loss, although finite, rose far above where it started."""


class DivergenceCallback(TrainerCallback):
    """Stops a run whose loss diverged without becoming NaN/inf (e.g. far too high a learning rate: the loss climbs
    to 1e7 while every number stays finite), so that it is not saved as the final model with a card.

    The reference is the first logged loss of the run (:func:`prepare_training` turns on ``logging_first_step``;
    a resumed run finds it in the restored log history). Diverged means a logged loss above ``factor`` times the
    reference at ``patience`` logs in a row, or at the last log when training ends; the error names the step.
    """

    def __init__(self, factor: float = 10.0, patience: int = 3):
        self.factor, self.patience = factor, patience

    def check(self, state, at_end: bool) -> None:
        losses = [(entry["step"], entry["loss"]) for entry in state.log_history if "loss" in entry]
        if len(losses) < 2:
            return
        reference = losses[0][1]
        recent = losses[-(1 if at_end else self.patience):]
        if len(recent) == (1 if at_end else self.patience) and all(loss > self.factor * reference for _, loss in recent):
            step, loss = recent[0]
            raise DivergedError(
                f"training diverged: the loss was {loss:.4g} at step {step}, more than {self.factor:g} times its first "
                f"logged value {reference:.4g} (step {losses[0][0]}){'' if at_end else f', for {self.patience} logs in a row'}. "
                "Stopped before saving the model; lower --learning_rate, add --warmup_steps or --max_grad_norm"
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.check(state, at_end=False)

    def on_train_end(self, args, state, control, **kwargs):
        self.check(state, at_end=True)


class PerformerRedrawCallback(TrainerCallback):
    """Makes performer attention redraw its random features at the same steps in a resumed run as in an
    uninterrupted one.

    Each performer layer with ``performer_redraw_interval = N`` counts its training forward calls in a plain
    attribute (``_training_calls_since_redraw``) and redraws before every N-th; a checkpoint holds the features
    (a persistent buffer) but not the count, so a resumed run started counting from 0. At the start of training
    the count is set from the global step instead: Trainer runs one forward per micro-batch, every optimizer step
    but an epoch's last has ``gradient_accumulation_steps`` of them, and a checkpoint lies between steps.
    """

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        batches = len(train_dataloader)
        steps_per_epoch = math.ceil(batches / args.gradient_accumulation_steps)
        epochs, steps = divmod(state.global_step, steps_per_epoch)
        calls = epochs * batches + steps * args.gradient_accumulation_steps
        for module in model.modules():
            interval = getattr(module, "redraw_interval", 0)
            if interval and hasattr(module, "_training_calls_since_redraw"):
                module._training_calls_since_redraw = (calls - 1) % interval + 1 if calls else 0


class ExampleRandomness(TrainerCallback):
    """Random numbers for on-the-fly training transforms (augmentation, re-segmentation) that a resumed run draws
    exactly like an uninterrupted one.

    A generator owned by a transform is not in the checkpoint, and Trainer restores the global generators only
    after prefetching the first batches of the resumed step. So every example gets its own generator instead,
    seeded by (seed, epoch, a hash of the example's content): all three are known again after a resume, and no
    column has to travel with the data. As a Trainer callback it tracks the epoch (without it, every epoch draws
    like the first).
    """

    def __init__(self, seed: int):
        self.seed, self.epoch = seed, 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.epoch = math.floor(state.epoch + 1e-6)  # a resumed state.epoch is fractional: 20 of 30 steps = 0.667

    def generator(self, content: bytes) -> np.random.Generator:
        digest = int.from_bytes(hashlib.blake2b(content, digest_size=8).digest(), "little")
        return np.random.default_rng((self.seed, self.epoch, digest))

    @classmethod
    def of(cls, randomness: "ExampleRandomness | int") -> "ExampleRandomness":
        """``randomness`` itself, or a new one for a seed."""
        return randomness if isinstance(randomness, ExampleRandomness) else cls(randomness)


def training_callbacks(*extra: TrainerCallback) -> list[TrainerCallback]:
    """The callbacks every recipe's Trainer gets: the non-finite loss and divergence stops, resumable performer
    redraws."""
    return [NonFiniteLossCallback(), DivergenceCallback(), PerformerRedrawCallback(), *extra]


def train(trainer: Trainer, resume_from_checkpoint: str | None) -> dict:
    """``trainer.train(...)``'s metrics, with ``train_loss`` over the whole run also after a resume.

    Trainer's ``train_loss`` is the mean over the steps of this call only, so a run resumed at step 20 of 30
    reported the mean of its last 10 steps. The steps before the checkpoint are added back from the restored log
    history (each logged loss times the steps it covers; the logged values are rounded to 4 decimals). When the
    logs do not reach the checkpoint's step that is impossible: the metric is then renamed
    ``train_loss_resumed_steps`` so that it cannot be mistaken for the whole run's.
    """
    metrics = trainer.train(resume_from_checkpoint=resume_from_checkpoint).metrics
    if not resume_from_checkpoint or "train_loss" not in metrics:
        return metrics
    resumed_at = json.loads((Path(resume_from_checkpoint) / "trainer_state.json").read_text())["global_step"]
    logged = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry and entry["step"] <= resumed_at]
    if resumed_at and (not logged or logged[-1][0] != resumed_at):
        logger.warning(
            "train_loss covers only the %d steps after the resume from step %d (the logs before it do not reach that "
            "step): reported as train_loss_resumed_steps", trainer.state.global_step - resumed_at, resumed_at,
        )
        metrics["train_loss_resumed_steps"] = metrics.pop("train_loss")
        return metrics
    starts = [0] + [step for step, _ in logged[:-1]]
    before = sum(loss * (step - start) for start, (step, loss) in zip(starts, logged))
    metrics["train_loss"] = (before + metrics["train_loss"] * (trainer.state.global_step - resumed_at)) / trainer.state.global_step
    return metrics


def print_test_metrics(results: dict) -> None:
    """Prints the test split's metrics at the end of a recipe run (they are also in all_results.json and the card)."""
    test = {key: value for key, value in results.items() if key.startswith("test_") and isinstance(value, (int, float))}
    if test:
        print("test metrics: " + json.dumps(test, sort_keys=True), flush=True)


class RDropTrainer(Trainer):
    """``Trainer`` with R-Drop (Liang et al. 2021) for single-label classifiers, a regulariser for small training sets.

    Each training batch goes through the model twice, as one batch of twice the size so that dropout (and the text
    classifier's word dropout) draw different masks for the two copies. The loss is the mean of the two
    cross-entropies (with the Trainer's ``--label_smoothing_factor``) plus ``rdrop_alpha`` times the symmetric KL
    divergence between the two predicted distributions: the model is taught to predict the same under any dropout
    mask. Evaluation and prediction are the plain Trainer's; ``rdrop_alpha=0`` is the plain Trainer throughout.
    """

    def __init__(self, *args, rdrop_alpha: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if rdrop_alpha < 0:
            raise ValueError(f"--rdrop_alpha must be >= 0, got {rdrop_alpha}")
        self.rdrop_alpha = rdrop_alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.rdrop_alpha or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        if labels.dim() != 1 or labels.is_floating_point():
            raise ValueError("R-Drop (--rdrop_alpha) is for single-label classification: labels must be class ids")
        outputs = model(**{name: torch.cat([value, value]) for name, value in inputs.items()})
        first, second = outputs.logits.float().chunk(2)
        smoothing = self.args.label_smoothing_factor
        cross_entropy = (
            F.cross_entropy(first, labels, label_smoothing=smoothing) + F.cross_entropy(second, labels, label_smoothing=smoothing)
        ) / 2
        log_p, log_q = F.log_softmax(first, dim=-1), F.log_softmax(second, dim=-1)
        symmetric_kl = (
            F.kl_div(log_p, log_q, log_target=True, reduction="batchmean") + F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        ) / 2
        loss = cross_entropy + self.rdrop_alpha * symmetric_kl
        return (loss, outputs) if return_outputs else loss
