"""Deployment variants of a classifier against its fp32 eager self: test accuracy, file size and inference
throughput of bf16, int8 (torchao dynamic / weight-only through TorchAoConfig; onnxruntime dynamic and calibrated
static), pruned models, onnxruntime fp32, and the combination pruned + onnxruntime int8.

Two modes:

* ``--model_dir DIR [--pruned 50=DIR ...]``: a trained MNIST image classifier or THUCNews text classifier (and
  pruned + fine-tuned ones, see ``recipes/prune.py``); accuracy on the recipe's test split (``--max_test_samples``),
  speed at batch 1 and 32 on test images or headlines (headlines padded to the longest of the batch).
* ``--model_dir DIR`` of a Tatoeba translator (Transformer or GRU): greedy translation with the key/value cache
  (``generate()`` against onnxruntime's encoder + decoder-step graphs, ``OnnxSeq2SeqGenerator``), test BLEU on
  ``--max_test_samples`` pairs, speed translating 1 and 32 test sentences.
* ``--random vit|gfnet``: speed only, where compute dominates: ViT-S/16 (or a GFNet of the same width and depth) at
  224 pixels with random weights, as in bench_vision_speed.py; the pruned variants remove 25/50 % of heads and MLP
  units by L1 norm (random weights have no meaningful loss).

Every variant's repetitions are interleaved with fp32 eager's in one process (the order reversed every round), the
median taken after warm-up; ``speedup`` is fp32 eager's median CPU time over the variant's (so > 1 is faster), on
``--threads`` threads for torch and onnxruntime alike. bf16 runs only at batch 1 and on at most ``--bf16_samples``
test examples (slow where the CPU has no bf16 instructions). ``agreement_with_fp32`` is the share of test examples whose prediction
(class, or translation) equals fp32 eager's. Prints one JSON object and writes it to ``--output`` if given.

    nice -n 10 .venv/bin/python benchmarks/bench_inference_optimisation.py --model_dir outputs/vit_small \
        --pruned 50=outputs/vit_small_pruned50_ft --threads 1 --output benchmarks/results/x.json
    nice -n 10 .venv/bin/python benchmarks/bench_inference_optimisation.py --model_dir outputs/text_classification_base
    nice -n 10 .venv/bin/python benchmarks/bench_inference_optimisation.py --random vit --threads 1 --reps 3
    .venv/bin/python benchmarks/bench_inference_optimisation.py --table benchmarks/results/x.json  # markdown
"""

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoImageProcessor, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from bench_translation_speed import interleaved_seconds  # noqa: E402

from hf_models import (  # noqa: E402
    GFNetConfig,
    GFNetForImageClassification,
    VisionTransformerConfig,
    VisionTransformerForImageClassification,
)
from hf_models.export_onnx import IMAGE, SEQ2SEQ, OnnxClassifier, OnnxSeq2SeqGenerator, export, load_model, onnx_bytes  # noqa: E402
from hf_models.export_onnx import task_of  # noqa: E402
from hf_models.export_onnx import quantize_dynamic_onnx, quantize_static_onnx  # noqa: E402
from hf_models.pruning import mlp_unit_importance, lowest, prune_heads, prune_mlp_units  # noqa: E402
from hf_models.quantization import quantize_saved_model  # noqa: E402

RANDOM_MODELS = {  # ViT-S/16 at 224 pixels, and a GFNet of the same width and depth
    "vit": (VisionTransformerConfig, VisionTransformerForImageClassification, {"num_attention_heads": 6}),
    "gfnet": (GFNetConfig, GFNetForImageClassification, {}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", help="a trained image or text classifier (save_pretrained folder with its processor or tokenizer)")
    parser.add_argument("--pruned", nargs="*", default=[], help="FRACTION=DIR of pruned, fine-tuned models")
    parser.add_argument("--random", choices=sorted(RANDOM_MODELS), help="speed only, random weights at 224 pixels")
    parser.add_argument("--data_dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--max_test_samples", type=int, default=10000, help="spread evenly over the test split")
    parser.add_argument("--bf16_samples", type=int, default=200)
    parser.add_argument("--calibration_examples", type=int, default=256, help="training examples for onnxruntime static int8")
    parser.add_argument("--max_new_tokens", type=int, help="translators: the greedy length limit (default: the saved "
                        "generation config's max_length, start token excluded, as the recipe and the pipeline decode)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    if (args.model_dir is None) == (args.random is None):
        parser.error("give exactly one of --model_dir and --random")
    return args


def random_model(family: str, work: Path) -> Path:
    config_class, model_class, extra = RANDOM_MODELS[family]
    torch.manual_seed(0)
    config = config_class(image_size=224, patch_size=16, num_channels=3, hidden_size=384, num_hidden_layers=12,
                          mlp_ratio=4.0, num_labels=1000, **extra)  # fmt: skip
    model_class(config).eval().save_pretrained(work / "fp32")
    return work / "fp32"


def l1_pruned(model_dir: Path, fraction: float, target: Path) -> Path:
    """Random weights: heads ranked by the L1 norm of their out_proj columns, units by fc1/fc2 L1 norms."""
    from hf_models.pruning import attention_layers

    model = load_model(model_dir)
    heads = {
        name: module.out_proj.weight.abs().sum(0).view(module.num_heads, module.head_dim).sum(1)
        for name, module in attention_layers(model).items()
    }
    prune_heads(model, lowest(heads, fraction))
    prune_mlp_units(model, lowest(mlp_unit_importance(model, method="l1"), fraction))
    model.save_pretrained(target)
    return target


def batched(inputs: dict[str, torch.Tensor], batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Slices of ``batch_size`` examples; token ids are cut to the longest real text of each slice."""
    count = len(next(iter(inputs.values())))
    batches = []
    for start in range(0, count, batch_size):
        batch = {name: tensor[start : start + batch_size] for name, tensor in inputs.items()}
        if "attention_mask" in batch:
            length = int(batch["attention_mask"].sum(1).max())
            batch = {name: tensor[:, :length] for name, tensor in batch.items()}
        batches.append(batch)
    return batches


def spread(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``: THUCNews' test file is sorted by class, so its first
    examples would all be education headlines."""
    return np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()


def recipe_examples(task: str, model_dir: Path, data_dir: str, split: str, count: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """``count`` examples spread over the ``split`` of the ``task``'s recipe (MNIST images, THUCNews headlines or
    Tatoeba English sentences) through the model's own processor or tokenizer, as the pipeline would see them, and
    their labels (or reference translations)."""
    if task == SEQ2SEQ:
        from translation_data import load_tatoeba, split_translation_dataset

        rows = split_translation_dataset(load_tatoeba(data_dir))[split]
        rows = rows.select(spread(len(rows), count))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        inputs = tokenizer([pair["en"] for pair in rows["translation"]], truncation=True, padding=True, return_tensors="pt")
        return dict(inputs), [pair["zh"] for pair in rows["translation"]]
    if task == IMAGE:
        from mnist_data import load_mnist, split_mnist

        rows = split_mnist(load_mnist(data_dir))[split]
        rows = rows.select(spread(len(rows), count))
        processor = AutoImageProcessor.from_pretrained(model_dir)
        inputs = processor([image.convert("L") for image in rows["image"]], return_tensors="pt")
    else:
        from thucnews_data import load_thucnews

        rows = load_thucnews(data_dir)[split]
        rows = rows.select(spread(len(rows), count))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        inputs = tokenizer(rows["text"][:], truncation=True, padding=True, return_tensors="pt")
        inputs.pop("token_type_ids", None)
    return dict(inputs), np.array(rows["label"])


def torch_predict(model, dtype=None):
    def predict(inputs):
        with torch.inference_mode():
            cast = {name: tensor.to(dtype) if dtype and tensor.is_floating_point() else tensor for name, tensor in inputs.items()}
            return model(**cast).logits.float().numpy()

    return predict


def onnx_predict(folder: Path, file: str, threads: int):
    classifier = OnnxClassifier(folder, file, num_threads=threads)
    return lambda inputs: classifier(**{name: tensor.numpy() for name, tensor in inputs.items()})


def generate_predict(model, max_new_tokens: int):
    """Greedy translation with the key/value cache (the model's default), token ids out. Under ``no_grad`` as in
    ``generate()`` itself: torchao's int8 weights cannot be sliced (the packed cross-attention projection) inside
    ``inference_mode``."""

    def predict(inputs):
        with torch.no_grad():
            return model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False).numpy()

    return predict


def onnx_generate_predict(folder: Path, suffix: str, threads: int, max_new_tokens: int):
    generator = OnnxSeq2SeqGenerator(folder, suffix, num_threads=threads)
    return lambda inputs: generator.generate(inputs["input_ids"].numpy(), inputs["attention_mask"].numpy(), max_new_tokens)


class ClassifierScore:
    """Arg-max classes of the logits, and their accuracy."""

    batch_size = 256

    def predictions(self, predict, inputs: dict[str, torch.Tensor]) -> list:
        return np.concatenate([predict(batch).argmax(-1) for batch in batched(inputs, self.batch_size)]).tolist()

    def metrics(self, predictions: list, labels) -> dict:
        return {"test_accuracy": float(np.mean(np.asarray(predictions) == np.asarray(labels)))}


class TranslationScore:
    """Decoded greedy translations, and their sacreBLEU (zh tokenisation, as the translation recipe scores)."""

    batch_size = 64

    def __init__(self, model_dir: Path):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def predictions(self, predict, inputs: dict[str, torch.Tensor]) -> list:
        texts = []
        for batch in batched(inputs, self.batch_size):
            ids = predict(batch)
            texts += [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return texts

    def metrics(self, predictions: list, references) -> dict:
        import sacrebleu

        return {"test_bleu": sacrebleu.corpus_bleu(predictions, [list(references)], tokenize="zh").score}


def folder_bytes(path: Path, suffix: str) -> int:
    return sum(file.stat().st_size for file in path.glob(f"*{suffix}"))


def build_variants(args, model_dir: Path, work: Path, calibration: dict[str, torch.Tensor], pruned: dict[str, Path]) -> dict:
    """``{name: (predict(inputs) -> logits, bytes on disk, batch sizes to time)}``."""
    threads = args.threads
    all_batches = args.batch_sizes
    fp32 = load_model(model_dir)
    variants = {"fp32 eager": (torch_predict(fp32), folder_bytes(model_dir, ".safetensors"), all_batches)}
    bf16 = load_model(model_dir, dtype=torch.bfloat16)
    variants["bf16"] = (torch_predict(bf16, torch.bfloat16), folder_bytes(model_dir, ".safetensors"), [1])
    for mode in ("dynamic", "weight_only"):
        quantized = quantize_saved_model(model_dir, work / f"torchao_{mode}", mode)
        variants[f"torchao int8 {mode}"] = (
            torch_predict(quantized), folder_bytes(work / f"torchao_{mode}", ".safetensors"), all_batches
        )
    sources = {"": model_dir, **{f"pruned {fraction} % ": folder for fraction, folder in pruned.items()}}
    for prefix, folder in sources.items():
        onnx_dir = work / f"onnx_{prefix.strip().replace(' ', '_').replace('%', 'pct') or 'base'}"
        export(folder, onnx_dir)
        quantize_dynamic_onnx(onnx_dir / "model.onnx", onnx_dir / "model_int8.onnx")
        if prefix:
            model = load_model(folder)
            variants[f"{prefix}fp32 eager"] = (torch_predict(model), folder_bytes(folder, ".safetensors"), all_batches)
        else:
            variants["onnxruntime fp32"] = (
                onnx_predict(onnx_dir, "model.onnx", threads), onnx_bytes(onnx_dir / "model.onnx"), all_batches
            )
            batches = [{name: tensor.numpy() for name, tensor in batch.items()} for batch in batched(calibration, 32)]
            for symmetric in (False, True):
                name = f"model_static_{'sym' if symmetric else 'asym'}.onnx"
                quantize_static_onnx(onnx_dir / "model.onnx", onnx_dir / name, batches, symmetric)
                variants[f"onnxruntime int8 static {'symmetric' if symmetric else 'asymmetric'}"] = (
                    onnx_predict(onnx_dir, name, threads), onnx_bytes(onnx_dir / name), all_batches
                )
        variants[f"{prefix}onnxruntime int8 dynamic"] = (
            onnx_predict(onnx_dir, "model_int8.onnx", threads), onnx_bytes(onnx_dir / "model_int8.onnx"), all_batches
        )
    return variants


def build_translation_variants(args, model_dir: Path, work: Path) -> dict:
    """Greedy translation variants: ``generate()`` in fp32, bf16 and torchao int8, and onnxruntime's greedy loop over
    the exported encoder + decoder-step graphs in fp32 and dynamic int8. (No static int8 or pruned rows: the
    decoder step's calibration inputs would be caches, and the translator has no pruning recovery recipe.)"""
    threads, all_batches, tokens = args.threads, args.batch_sizes, args.max_new_tokens
    if tokens is None:
        tokens = args.max_new_tokens = transformers.GenerationConfig.from_pretrained(model_dir).max_length - 1
    size = folder_bytes(model_dir, ".safetensors")
    variants = {"fp32 eager": (generate_predict(load_model(model_dir), tokens), size, all_batches)}
    variants["bf16"] = (generate_predict(load_model(model_dir, dtype=torch.bfloat16), tokens), size, [1])
    for mode in ("dynamic", "weight_only"):
        quantized = quantize_saved_model(model_dir, work / f"torchao_{mode}", mode)
        quantized_size = folder_bytes(work / f"torchao_{mode}", ".safetensors")
        variants[f"torchao int8 {mode}"] = (generate_predict(quantized, tokens), quantized_size, all_batches)
    onnx_dir = work / "onnx"
    export(model_dir, onnx_dir, quantize="int8")
    for suffix, name in (("", "onnxruntime fp32"), ("_int8", "onnxruntime int8 dynamic")):
        graphs_size = sum(onnx_bytes(onnx_dir / f"{graph}{suffix}.onnx") for graph in ("encoder", "decoder"))
        variants[name] = (onnx_generate_predict(onnx_dir, suffix, threads, tokens), graphs_size, all_batches)
    return variants


def markdown_table(report: dict) -> str:
    """The README/card table of a report: one row per variant."""
    rows = report["variants"]
    metric = next((key for key in ("test_accuracy", "test_bleu") if key in rows["fp32 eager"]), None)
    batches = sorted({int(key[5:-8]) for row in rows.values() for key in row if key.endswith("_speedup")})
    header = ["variant"]
    if metric:
        header += ["test accuracy (%)" if metric == "test_accuracy" else "test BLEU", "same prediction as fp32"]
    header += ["size vs fp32", *[f"speed-up batch {batch}" for batch in batches]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, row in rows.items():
        cells = [name]
        if metric:
            value = 100 * row[metric] if metric == "test_accuracy" else row[metric]
            samples = "" if row["test_samples"] == rows["fp32 eager"]["test_samples"] else f" ({row['test_samples']} examples)"
            agreement = row.get("agreement_with_fp32")  # reports before 2026-12-03 lack it
            cells += [f"{value:.2f}{samples}", "-" if agreement is None else f"{100 * agreement:.1f} %"]
        cells.append(f"{100 * row['size_vs_fp32']:.0f} %")
        for batch in batches:
            speedup = row.get(f"batch{batch}_speedup")
            cells.append("1 (baseline)" if name == "fp32 eager" else f"{speedup:.2f}x" if speedup else "not run")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    if argv is None and sys.argv[1:2] == ["--table"]:  # a saved report as a markdown table
        print(markdown_table(json.loads(Path(sys.argv[2]).read_text())))
        return {}
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        if args.random:
            model_dir = random_model(args.random, work)
            pruned = {str(int(f * 100)): l1_pruned(model_dir, f, work / f"pruned{int(f * 100)}") for f in (0.25, 0.5)}
            config = transformers.AutoConfig.from_pretrained(model_dir)
            shape = (config.num_channels, config.image_size, config.image_size)
            generator = torch.Generator().manual_seed(0)
            calibration = {"pixel_values": torch.randn(args.calibration_examples, *shape, generator=generator)}
            timing = {"pixel_values": torch.randn(max(args.batch_sizes), *shape, generator=generator)}
            test = None
        else:
            model_dir = Path(args.model_dir)
            pruned = dict(item.split("=", 1) for item in args.pruned)
            pruned = {fraction: Path(folder) for fraction, folder in pruned.items()}
            task = task_of(load_model(model_dir))
            test = recipe_examples(task, model_dir, args.data_dir, "test", args.max_test_samples)
            timing = test[0]
        if args.model_dir and task == SEQ2SEQ:
            variants, score = build_translation_variants(args, model_dir, work), TranslationScore(model_dir)
        else:
            if args.model_dir:
                calibration, _ = recipe_examples(task, model_dir, args.data_dir, "train", args.calibration_examples)
            variants, score = build_variants(args, model_dir, work, calibration, pruned), ClassifierScore()
        results, fp32_predictions = {}, None
        for name, (predict, size, batch_sizes) in variants.items():
            row = {"bytes": size, "size_vs_fp32": size / variants["fp32 eager"][1]}
            if test is not None:
                chosen = spread(len(test[1]), args.bf16_samples if name == "bf16" else len(test[1]))
                predictions = score.predictions(predict, {key: value[chosen] for key, value in test[0].items()})
                row.update(score.metrics(predictions, [test[1][index] for index in chosen]))
                fp32_predictions = fp32_predictions or predictions  # fp32 eager comes first, on every example
                same = [predictions[i] == fp32_predictions[index] for i, index in enumerate(chosen)]
                row["agreement_with_fp32"], row["test_samples"] = float(np.mean(same)), len(chosen)
            results[name] = row
        for batch_size in args.batch_sizes:
            inputs = batched(timing, batch_size)[0]
            timed = {name: v[0] for name, v in variants.items() if batch_size in v[2]}
            for name in timed:
                if name == "fp32 eager":
                    continue
                pair = {"fp32 eager": lambda: timed["fp32 eager"](inputs), name: (lambda f=timed[name]: f(inputs))}
                reps = max(2, args.reps // 5) if name == "bf16" else args.reps
                seconds = interleaved_seconds(pair, reps, args.warmup if name != "bf16" else 1)
                base, own = (statistics.median(seconds["cpu"][key]) for key in ("fp32 eager", name))
                results[name][f"batch{batch_size}_speedup"] = base / own
                results[name][f"batch{batch_size}_ms"] = 1000 * statistics.median(seconds["wall"][name])
                results["fp32 eager"].setdefault(f"batch{batch_size}_ms", 1000 * statistics.median(seconds["wall"]["fp32 eager"]))
    report = {
        "benchmark": "bench_inference_optimisation",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(sys.argv),
        "model": args.model_dir or f"random {args.random} 224px (ViT-S/16 sizes)",
        "threads": args.threads,
        **({"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "variants": results,
    }
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
