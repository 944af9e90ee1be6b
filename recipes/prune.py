"""Prune a trained image or text classifier to a target fraction, fine-tune it to recover, evaluate it, and say in
its card what was pruned.

    python recipes/prune.py --model_name_or_path outputs/vit --head_fraction 0.5 --mlp_fraction 0.5 \
        --output_dir outputs/vit_pruned50 -- --num_train_epochs 2 --learning_rate 5e-4
    python recipes/prune.py --model_name_or_path outputs/text_classification_base --output_dir outputs/text_pruned50 \
        -- --max_seq_length 48 --num_train_epochs 1 --learning_rate 5e-4

1. Importance on ``--calibration_batches`` batches of training examples (``hf_models.pruning``: Michel et al. head
   importance, Taylor or L1 MLP-unit importance), then every layer loses ``floor(fraction * size)`` of its heads and
   MLP units. The pruned, not yet fine-tuned model is saved in ``OUTPUT_DIR/pruned_before_finetuning``.
2. The model's recipe (``train_image_classification.py`` or ``train_text_classification.py``) with
   ``--model_name_or_path <that folder> --output_dir OUTPUT_DIR`` plus every argument after ``--`` (epochs, learning
   rate, ...): the usual training, test evaluation and model card.
3. The card (``README.md``) gains a "Pruning" section and ``results.json`` a ``pruning`` entry: fractions, importance
   method, the remaining heads and units per layer, parameters before and after.

Data: the recipe's (MNIST or THUCNews from ``--data_dir`` unless the arguments after ``--`` give the user's files).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from transformers import AutoImageProcessor, AutoTokenizer, HfArgumentParser, set_seed

import train_image_classification
import train_text_classification
from model_card import portable
from hf_models.export_onnx import IMAGE, TEXT, load_model, task_of
from hf_models.pruning import check_fraction, prune

RECIPES = {IMAGE: train_image_classification, TEXT: train_text_classification}
PROCESSING_CLASSES = {IMAGE: AutoImageProcessor, TEXT: AutoTokenizer}

logger = logging.getLogger("prune")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", required=True, help="the trained image or text classifier to prune")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--head_fraction", type=float, default=0.5, help="share of every layer's heads to remove")
    parser.add_argument("--mlp_fraction", type=float, default=0.5, help="share of every MLP's units to remove")
    parser.add_argument("--mlp_importance", choices=["taylor", "l1"], default="taylor")
    parser.add_argument("--calibration_batches", type=int, default=8)
    parser.add_argument("--calibration_batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def calibration_batches(task: str, model_dir: str, recipe_argv: list[str], count: int, batch_size: int, seed: int):
    """Training examples through the model's own processor or tokenizer (truncated to its ``model_max_length``, as
    the pipeline does), with their labels: the importance is a loss gradient."""
    recipe = RECIPES[task]
    parser = HfArgumentParser(recipe.DataArguments)
    data_args, _ = parser.parse_args_into_dataclasses(args=recipe_argv, return_remaining_strings=True)
    splits, _ = recipe.load_splits(data_args)
    train = splits["train"].shuffle(seed=seed).select(range(min(count * batch_size, len(splits["train"]))))
    processing_class = PROCESSING_CLASSES[task].from_pretrained(model_dir)
    batches = []
    for start in range(0, len(train), batch_size):
        rows = train[start : start + batch_size]
        if task == IMAGE:
            inputs = processing_class(rows["image"], return_tensors="pt")
        else:
            inputs = processing_class(rows["text"], truncation=True, padding=True, return_tensors="pt")
            inputs.pop("token_type_ids", None)
        batches.append({**inputs, "labels": torch.tensor(rows["label"])})
    return batches


def pruning_section(report: dict, source: str) -> str:
    sizes = "\n".join(f"| `{field}` | {values} |" for field, values in report["sizes"].items())
    return (
        f"Pruned from `{source}` with `hf_models.pruning` before the fine-tuning above: "
        f"{report['head_fraction']:.0%} of every attention layer's heads (Michel et al. 2019 head importance: "
        f"gradient of the loss w.r.t. a head mask over {report['calibration_examples']} training examples) and "
        f"{report['mlp_fraction']:.0%} of every MLP's hidden units ({report['mlp_importance']} importance) removed. "
        f"Parameters: {report['parameters_before']:,} before, {report['parameters_after']:,} after. Remaining sizes "
        f"per layer (recorded in config.json, so the model loads like any other):\n\n| field | per layer |\n| --- | --- |\n"
        f"{sizes}"
    )


def main(argv: list[str] | None = None) -> dict:
    args, recipe_argv = parse_args(argv)
    check_fraction("head_fraction", args.head_fraction)  # before minutes of loading and calibration
    check_fraction("mlp_fraction", args.mlp_fraction)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)
    model = load_model(args.model_name_or_path)
    task = task_of(model)
    if task not in RECIPES:
        raise ValueError(f"{args.model_name_or_path}: {type(model).__name__} is not a classifier; prune it with hf_models.pruning")
    batches = calibration_batches(
        task, args.model_name_or_path, recipe_argv, args.calibration_batches, args.calibration_batch_size, args.seed
    )
    report = prune(model, batches, args.head_fraction, args.mlp_fraction, args.mlp_importance)
    report["calibration_examples"] = sum(len(batch["labels"]) for batch in batches)
    logger.info("pruned: %s", json.dumps(report["sizes"]))
    output_dir = Path(args.output_dir)
    pruned_dir = output_dir / "pruned_before_finetuning"
    model.save_pretrained(pruned_dir)
    PROCESSING_CLASSES[task].from_pretrained(args.model_name_or_path).save_pretrained(pruned_dir)
    recipe_args = ["--model_name_or_path", str(pruned_dir), "--output_dir", str(output_dir), "--seed", str(args.seed)]
    results = RECIPES[task].main(recipe_args + recipe_argv)
    card = output_dir / "README.md"
    card.write_text(card.read_text() + f"\n## Pruning\n\n{pruning_section(report, portable(Path(args.model_name_or_path).resolve()))}\n")
    results_file = output_dir / "results.json"
    saved = json.loads(results_file.read_text()) if results_file.exists() else {}
    results_file.write_text(json.dumps({**saved, "pruning": report}, indent=2) + "\n")
    return {**results, "pruning": report}


if __name__ == "__main__":
    main()
