"""Inference speed of ViT, GFNet and AFNO at the same width and depth, 3-channel images in 16x16 patches at 224, 384
and 512 pixels (196, 576 and 1,024 patch tokens), with parameters and FLOPs; and our ViT against transformers'
ViTForImageClassification of the same sizes (ratio ours / transformers, target >= 1.0).

All models of one resolution run in ONE process with their repetitions interleaved (the order reversed every round),
so load from other processes on a shared machine hits them alike. Every figure is a median over repetitions after
warm-up, in ``torch.inference_mode()``, float32, random weights and random pixels, on two clocks: wall time (what a
user waits) and this process's CPU time (what the model costs; it moves far less when other processes compete for
the cores, so trust it with ``--threads 1`` on a shared machine). Prints one JSON object.

FLOPs are counted analytically per image (a multiply-add = 2 FLOPs; LayerNorm, activations, softmax, biases and
residual additions ignored): linear layers and the patch projection 2 * in * out per token; attention scores and the
weighted sum 2 * N^2 * D each; a real 2-D FFT over N tokens 2.5 * N * log2(N) per channel (half the classic
5 N log2 N of a complex FFT), one forward and one inverse per Fourier layer; GFNet's filter one complex multiply
(6 FLOPs) per frequency and channel; AFNO's block-diagonal complex MLP 8 FLOPs per complex multiply-add.
``torch_counted_flops`` is torch's FlopCounterMode on the same forward pass, which counts matrix products,
convolutions and attention but NOT FFTs (and counts a complex multiply-add as 2): a cross-check of the analytic
counts' non-FFT part.

    .venv/bin/python benchmarks/bench_vision_speed.py                 # width 192, depth 12 (ViT-Ti), batch 8
    .venv/bin/python benchmarks/bench_vision_speed.py --quick         # tiny sizes, a few seconds
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics

import numpy as np
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode
from transformers import ViTConfig, ViTForImageClassification

from bench_translation_speed import CLOCKS, interleaved_seconds
from hf_models import (
    AFNOConfig,
    AFNOForImageClassification,
    GFNetConfig,
    GFNetForImageClassification,
    VisionTransformerConfig,
    VisionTransformerForImageClassification,
)

MODELS = ("vit", "gfnet", "afno", "transformers_vit")
QUICK = dict(hidden_size=32, depth=2, heads=2, blocks=4, resolutions=[64, 96], batch=2, reps=2, warmup=1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--heads", type=int, default=3, help="ViT attention heads")
    parser.add_argument("--blocks", type=int, default=8, help="AFNO blocks")
    parser.add_argument("--mlp-ratio", type=float, default=4.0)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 384, 512])
    parser.add_argument("--num-labels", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def build_models(args, image_size: int) -> dict[str, torch.nn.Module]:
    shared = dict(
        image_size=image_size, patch_size=args.patch_size, num_channels=3, hidden_size=args.hidden_size,
        num_hidden_layers=args.depth, mlp_ratio=args.mlp_ratio, num_labels=args.num_labels,
    )
    torch.manual_seed(0)
    models = {
        "vit": VisionTransformerForImageClassification(VisionTransformerConfig(num_attention_heads=args.heads, **shared)),
        "gfnet": GFNetForImageClassification(GFNetConfig(**shared)),
        "afno": AFNOForImageClassification(AFNOConfig(num_blocks=args.blocks, **shared)),
        "transformers_vit": ViTForImageClassification(
            ViTConfig(
                image_size=image_size, patch_size=args.patch_size, num_channels=3, hidden_size=args.hidden_size,
                num_hidden_layers=args.depth, num_attention_heads=args.heads,
                intermediate_size=round(args.hidden_size * args.mlp_ratio), num_labels=args.num_labels,
            )
        ),
    }
    for name in ("vit", "transformers_vit"):
        models[name].config._attn_implementation = args.attn_implementation
    return {name: model.eval() for name, model in models.items()}


def analytic_flops(family: str, config, image_size: int) -> int:
    """FLOPs of one forward pass for one image; see the module docstring for what is counted."""
    grid = image_size // config.patch_size
    tokens, width, inner = grid * grid, config.hidden_size, config.intermediate_size
    flops = 2 * tokens * width * config.num_channels * config.patch_size**2  # patch projection
    per_block = 4 * tokens * width * inner  # the MLP's two linear layers
    fft = 2 * 2.5 * tokens * math.log2(tokens) * width  # forward + inverse real 2-D FFT
    frequencies = grid * (grid // 2 + 1)
    if family == "vit":
        sequence = tokens + 1  # + CLS
        per_block = 4 * sequence * width * inner + 8 * sequence * width**2 + 4 * sequence**2 * width
    elif family == "gfnet":
        per_block += fft + 6 * frequencies * width
    elif family == "afno":
        block = width // config.num_blocks
        per_block += fft + 2 * 8 * frequencies * width * block * config.hidden_size_factor
    return int(flops + config.num_hidden_layers * per_block + 2 * width * config.num_labels)


def torch_counted_flops(model, pixel_values) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(pixel_values)
    return int(counter.get_total_flops() / pixel_values.shape[0])


def summarise_clock(per_model: dict[str, list[float]], batch: int) -> dict:
    """Median images per second of each model on one clock, and our ViT over transformers' ViT: the ratio of the
    medians and the range of the per-round paired ratios (how much the machine's load moved the figures)."""
    rates = {name: [batch / s for s in values] for name, values in per_model.items()}
    paired = [o / t for o, t in zip(rates["vit"], rates["transformers_vit"])]
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "median": {name: round(value, 2) for name, value in medians.items()},
        "ratio_ours_vit_over_transformers_vit": round(medians["vit"] / medians["transformers_vit"], 3),
        "paired_ratio_range": [round(min(paired), 3), round(max(paired), 3)],
    }


def scaling_exponent(tokens: list[int], seconds_per_image: list[float]) -> float | None:
    """Least-squares slope of log(time per image) against log(tokens): 1 = linear in the tokens, 2 = quadratic."""
    if len(tokens) < 2:
        return None
    return round(float(np.polyfit(np.log(tokens), np.log(seconds_per_image), 1)[0]), 3)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    per_resolution = {}
    for image_size in args.resolutions:
        models = build_models(args, image_size)
        pixel_values = torch.randn(args.batch, 3, image_size, image_size)

        def forward(model):
            def run():
                with torch.inference_mode():
                    model(pixel_values)

            return run

        seconds = interleaved_seconds({name: forward(model) for name, model in models.items()}, args.reps, args.warmup)
        per_resolution[image_size] = {
            "tokens": (image_size // args.patch_size) ** 2,
            **{f"images_per_s_{clock}": summarise_clock(per_model, args.batch) for clock, per_model in seconds.items()},
            "parameters": {name: model.num_parameters() for name, model in models.items()},
            "analytic_gflops_per_image": {
                family: float(f"{analytic_flops(family, models[family].config, image_size) / 1e9:.4g}")
                for family in ("vit", "gfnet", "afno")
            },
            "torch_counted_gflops_per_image": {
                name: float(f"{torch_counted_flops(model, pixel_values[:1]) / 1e9:.4g}") for name, model in models.items()
            },
        }
    tokens = [per_resolution[size]["tokens"] for size in args.resolutions]
    scaling = {
        clock: {
            name: scaling_exponent(
                tokens, [1 / per_resolution[size][f"images_per_s_{clock}"]["median"][name] for size in args.resolutions]
            )
            for name in MODELS
        }
        for clock in CLOCKS
    }
    result = {
        "benchmark": "vision_speed",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "sizes": {
            "hidden_size": args.hidden_size, "depth": args.depth, "vit_heads": args.heads, "afno_blocks": args.blocks,
            "mlp_ratio": args.mlp_ratio, "patch_size": args.patch_size, "num_channels": 3, "num_labels": args.num_labels,
            "batch": args.batch, "reps": args.reps, "warmup": args.warmup, "attn_implementation": args.attn_implementation,
        },
        "per_resolution": per_resolution,
        "time_per_image_scaling_exponent_vs_tokens": scaling,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
