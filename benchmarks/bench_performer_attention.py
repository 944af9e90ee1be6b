"""Performer FAVOR+ attention against exact softmax attention: forward+backward time and peak memory of one attention
call (batch 1, 8 heads, head dim 64, float32, CPU) at sequence lengths 512 to 16,384, as ratios, with the crossover
length.

Three implementations of the same call, ``(q, k, v) -> output`` then ``output.backward(grad)``:
- ``performer``: ``hf_models.performer.favor_attention``, the function every performer layer of the package runs,
  with head_dim * ln(head_dim) = 266 orthogonal random features (the models' default);
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` (on CPU a fused flash-style kernel whose memory is
  linear in the length);
- ``eager``: ``hf_models.attention.eager_attention_forward``, which materialises the ``(L, L)`` attention matrix per
  head. Skipped, with the reason recorded, where its estimated peak (4 fp32 ``(heads, L, L)`` tensors: scores,
  weights and their gradients) exceeds ``--eager-cap-gib``.

Time: the three run in ONE process per length, repetitions interleaved (order reversed every round), median over
``--reps`` after ``--warmup``, on the wall clock and this process's CPU clock (trust the CPU clock with ``--threads 1``
on a shared machine). Peak memory: every (implementation, length) runs once in a fresh subprocess, which warms the
implementation up on a tiny input, allocates the inputs and the output gradient, resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``) and reports ``VmHWM - VmRSS`` across the call: the extra memory the call needs on top of
its inputs (output, input gradients and every temporary). The subprocesses run with ``MALLOC_MMAP_THRESHOLD_=65536``,
so that freed tensors go back to the OS instead of glibc's heap cache and RSS follows the live tensors (without it,
allocator caching inflates the figures of implementations that make many mid-sized temporaries). A baseline
subprocess that only imports and allocates the inputs is reported too.

``causal`` mode repeats everything for decoder self-attention (performer prefix sums, ``is_causal=True`` SDPA, the
eager path's causal mask). Prints one JSON object.

    .venv/bin/python benchmarks/bench_performer_attention.py --threads 1 > benchmarks/results/performer_attention_DATE.json
    .venv/bin/python benchmarks/bench_performer_attention.py --quick     # tiny lengths, seconds
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_models.attention import eager_attention_forward  # noqa: E402
from hf_models.performer import (  # noqa: E402
    default_num_random_features,
    favor_attention,
    gaussian_orthogonal_random_matrix,
)

METHODS = ("performer", "sdpa", "eager")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
TARGET_LENGTH = 8192
TARGETS = {"speedup_vs_sdpa_min": 3.0, "memory_vs_sdpa_max": 1.0, "memory_eager_over_performer_min": 5.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--modes", nargs="+", default=["bidirectional", "causal"], choices=["bidirectional", "causal"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--features", type=int, default=None, help="random features; default head_dim * ln(head_dim)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eager-cap-gib", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="lengths 128 and 256, one rep: checks the script runs")
    parser.add_argument("--memory-case", nargs=3, metavar=("METHOD", "LENGTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.reps, args.warmup = [128, 256], 1, 1
    if args.features is None:
        args.features = default_num_random_features(args.head_dim)
    return args


def eager_peak_bytes(args, length: int) -> int:
    return 4 * args.batch * args.heads * length * length * 4


def make_call(method: str, causal: bool, projection: torch.Tensor):
    module = nn.Module()  # what eager_attention_forward reads: .training (dropout is 0 anyway)
    if method == "performer":
        return lambda q, k, v: favor_attention(q, k, v, projection, causal=causal)[0]
    if method == "sdpa":
        return lambda q, k, v: nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return lambda q, k, v: eager_attention_forward(module, q, k, v, None, is_causal=causal)[0]


def make_inputs(args, length: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    shape = (args.batch, args.heads, length, args.head_dim)
    q, k, v = (torch.randn(shape, generator=generator).requires_grad_() for _ in range(3))
    return q, k, v, torch.randn(shape, generator=generator)


def forward_backward(call, inputs) -> None:
    q, k, v, grad = inputs
    output = call(q, k, v)
    # the eager path returns (batch, length, heads, head_dim); the gradient only needs the same number of elements
    output.backward(grad.view(output.shape) if output.shape != grad.shape else grad)
    q.grad = k.grad = v.grad = None


def read_status_mib(key: str) -> float:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


def memory_case(args) -> dict:
    """Child process: the extra peak RSS of one forward+backward call (see the module docstring)."""
    method, length, mode = args.memory_case[0], int(args.memory_case[1]), args.memory_case[2]
    torch.set_num_threads(args.threads)
    projection = gaussian_orthogonal_random_matrix(args.features, args.head_dim, torch.Generator().manual_seed(args.seed))
    call = make_call(method, mode == "causal", projection) if method != "none" else None
    if call is not None:
        forward_backward(call, make_inputs(args, 64, args.seed))  # load kernels, first-call allocations
    inputs = make_inputs(args, length, args.seed)
    Path("/proc/self/clear_refs").write_text("5")
    before = read_status_mib("VmRSS")
    start = time.perf_counter()
    if call is not None:
        forward_backward(call, inputs)
    return {
        "extra_peak_mib": round(read_status_mib("VmHWM") - before, 1),
        "process_peak_mib": round(read_status_mib("VmHWM"), 1),
        "seconds": round(time.perf_counter() - start, 3),
    }


def measure_memory(args, method: str, length: int, mode: str) -> dict:
    command = [sys.executable, __file__, "--memory-case", method, str(length), mode, "--threads", str(args.threads),
               "--batch", str(args.batch), "--heads", str(args.heads), "--head-dim", str(args.head_dim),
               "--features", str(args.features), "--seed", str(args.seed)]  # fmt: skip
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(args.threads)}
    run = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if run.returncode != 0:
        return {"error": run.stderr[-500:]}
    return json.loads(run.stdout)


def time_length(args, length: int, causal: bool, methods: list[str], projection) -> dict:
    """Median seconds per forward+backward of each method, interleaved rounds."""
    inputs = make_inputs(args, length, args.seed)
    calls = {method: make_call(method, causal, projection) for method in methods}
    seconds = {clock: {method: [] for method in methods} for clock in CLOCKS}
    for round_index in range(args.warmup + args.reps):
        order = methods if round_index % 2 == 0 else methods[::-1]
        for method in order:
            start = {clock: read() for clock, read in CLOCKS.items()}
            forward_backward(calls[method], inputs)
            if round_index >= args.warmup:
                for clock, read in CLOCKS.items():
                    seconds[clock][method].append(read() - start[clock])
    return {clock: {m: round(statistics.median(s), 4) for m, s in per.items()} for clock, per in seconds.items()}


def crossover(lengths: list[int], ratios: list[float | None]) -> dict:
    """Smallest measured length from which performer is faster (ratio > 1) at every longer length, and the length
    where the ratio crosses 1, interpolated linearly in log(length) / log(ratio) between the bracketing lengths."""
    pairs = [(length, ratio) for length, ratio in zip(lengths, ratios) if ratio is not None]
    first = None
    for index in range(len(pairs)):
        if all(ratio > 1 for _, ratio in pairs[index:]):
            first = pairs[index][0]
            break
    result = {"first_measured_length_faster_from_then_on": first, "interpolated_length": None}
    if first is not None and first != pairs[0][0]:
        index = [length for length, _ in pairs].index(first)
        (l0, r0), (l1, r1) = pairs[index - 1], pairs[index]
        fraction = -math.log(r0) / (math.log(r1) - math.log(r0))
        result["interpolated_length"] = round(math.exp(math.log(l0) + fraction * (math.log(l1) - math.log(l0))))
    elif first is not None:
        result["note"] = "performer is faster at every measured length"
    return result


def run_mode(args, mode: str, projection) -> dict:
    causal = mode == "causal"
    per_length = {}
    for length in args.lengths:
        methods = ["performer", "sdpa"]
        skipped = {}
        if eager_peak_bytes(args, length) <= args.eager_cap_gib * 2**30:
            methods.append("eager")
        else:
            skipped["eager"] = (
                f"estimated peak {eager_peak_bytes(args, length) / 2**30:.1f} GiB (4 fp32 (heads, L, L) tensors) "
                f"exceeds --eager-cap-gib {args.eager_cap_gib}"
            )
        seconds = time_length(args, length, causal, methods, projection)
        memory = {method: measure_memory(args, method, length, mode) for method in methods}
        peak = {method: memory[method].get("extra_peak_mib") for method in methods}
        entry = {"seconds": seconds, "extra_peak_mib": peak, "memory_runs": memory}
        if skipped:
            entry["skipped"] = skipped
        ratios = {}
        for clock in CLOCKS:
            ratios[f"time_sdpa_over_performer_{clock}"] = round(seconds[clock]["sdpa"] / seconds[clock]["performer"], 3)
            if "eager" in methods:
                ratios[f"time_eager_over_performer_{clock}"] = round(
                    seconds[clock]["eager"] / seconds[clock]["performer"], 3
                )
        if peak["performer"] and peak["sdpa"]:
            ratios["memory_performer_over_sdpa"] = round(peak["performer"] / peak["sdpa"], 3)
        if peak.get("eager") and peak["performer"]:
            ratios["memory_eager_over_performer"] = round(peak["eager"] / peak["performer"], 3)
        entry["ratios"] = ratios
        per_length[str(length)] = entry
        print(f"{mode} L={length}: {json.dumps(ratios)}", file=sys.stderr, flush=True)
    result = {"lengths": per_length}
    result["crossover_vs_sdpa"] = {
        clock: crossover(
            args.lengths, [per_length[str(n)]["ratios"][f"time_sdpa_over_performer_{clock}"] for n in args.lengths]
        )
        for clock in CLOCKS
    }
    if str(TARGET_LENGTH) in per_length:
        ratios = per_length[str(TARGET_LENGTH)]["ratios"]
        result[f"targets_at_{TARGET_LENGTH}"] = {
            "speedup_vs_sdpa_cpu": ratios["time_sdpa_over_performer_cpu"],
            "speedup_vs_sdpa_wall": ratios["time_sdpa_over_performer_wall"],
            "memory_performer_over_sdpa": ratios.get("memory_performer_over_sdpa"),
            "memory_eager_over_performer": ratios.get("memory_eager_over_performer"),
            "met": {
                "speed_>=3x_sdpa": min(ratios["time_sdpa_over_performer_cpu"], ratios["time_sdpa_over_performer_wall"])
                >= TARGETS["speedup_vs_sdpa_min"],
                "memory_<=_sdpa": ratios.get("memory_performer_over_sdpa", math.inf) <= TARGETS["memory_vs_sdpa_max"],
                "memory_>=5x_below_eager": ratios.get("memory_eager_over_performer", 0)
                >= TARGETS["memory_eager_over_performer_min"],
            },
        }
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.memory_case:
        result = memory_case(args)
        print(json.dumps(result))
        return result
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    projection = gaussian_orthogonal_random_matrix(args.features, args.head_dim, torch.Generator().manual_seed(args.seed))
    result = {
        "benchmark": "performer_attention",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "settings": {
            "batch": args.batch, "heads": args.heads, "head_dim": args.head_dim, "random_features": args.features,
            "dtype": "float32", "reps": args.reps, "warmup": args.warmup, "eager_cap_gib": args.eager_cap_gib,
            "quick": args.quick, "lengths": args.lengths,
            "memory_method": "fresh subprocess per case, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS across the call",
        },  # fmt: skip
        "targets": TARGETS,
        "baseline_process_peak_mib": {
            str(length): measure_memory(args, "none", length, "bidirectional")["process_peak_mib"]
            for length in args.lengths
        },
    }
    for mode in args.modes:
        result[mode] = run_mode(args, mode, projection)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
