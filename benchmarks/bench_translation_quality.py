"""Quality of the published translation recipes: train each `base` model to completion, then report its test
BLEU/chrF, wall-clock minutes and parameters as JSON, next to the targets of the foundation issue.

    python benchmarks/bench_translation_quality.py                 # trains both (about an hour each on 2 cores)
    python benchmarks/bench_translation_quality.py --arch gru
    python benchmarks/bench_translation_quality.py --report_only   # read results of runs already in outputs/

Each run is `accelerate launch recipes/train_translation.py --args_file recipes/published/translation_<arch>_base.args`
with one OpenMP thread per process (on 2 shared cores a second thread slows the small matrix products down).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_BLEU = {"transformer": 25.0, "gru": 15.0}  # sacreBLEU (zh) on the 1,000-pair test split
TIME_LIMIT_MINUTES = 60


def args_file(arch: str) -> Path:
    return ROOT / "recipes" / "published" / f"translation_{arch}_base.args"


def output_dir(arch: str) -> Path:
    tokens = args_file(arch).read_text().split()
    return ROOT / tokens[tokens.index("--output_dir") + 1]


def train(arch: str) -> float:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "recipes" / "train_translation.py"), "--args_file", str(args_file(arch)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def report(arch: str, wall_seconds: float | None) -> dict:
    results = json.loads((output_dir(arch) / "results.json").read_text())
    minutes = (wall_seconds if wall_seconds is not None else results["training_seconds"]) / 60
    return {
        "arch": arch,
        "test_bleu": round(results["BLEU"], 2),
        "test_chrf": round(results["chrF"], 2),
        "target_bleu": TARGET_BLEU[arch],
        "meets_bleu_target": results["BLEU"] >= TARGET_BLEU[arch],
        "training_minutes": round(results["training_seconds"] / 60, 1),
        "wall_minutes_including_test": None if wall_seconds is None else round(minutes, 1),
        "within_time_limit": results["training_seconds"] / 60 <= TIME_LIMIT_MINUTES,
        "num_parameters": results["num_parameters"],
        "args_file": str(args_file(arch).relative_to(ROOT)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["transformer", "gru", "all"], default="all")
    parser.add_argument("--report_only", action="store_true", help="Do not train; read outputs/*/results.json.")
    args = parser.parse_args()
    archs = ["transformer", "gru"] if args.arch == "all" else [args.arch]
    rows = [report(arch, None if args.report_only else train(arch)) for arch in archs]
    print(json.dumps({"benchmark": "translation_quality", "test_pairs": 1000, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
