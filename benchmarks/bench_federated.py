"""Federated vs centralised training on THUCNews (the published `base` classifier) and MNIST (the published `base`
ViT), 10 clients: centralised, FedAvg and FedProx, IID and Dirichlet alpha 0.5 / 0.1, and FedAvg under central DP.
Prints JSON (and writes it to benchmarks/results/ with --save): final test accuracy, the first round within 1 point
of the centralised accuracy, total bytes communicated, wall time, epsilon.

    nice -n 10 python benchmarks/bench_federated.py --save             # the reduced table (see REDUCED below)
    python benchmarks/bench_federated.py --tasks image --runs centralised fedavg_iid
    python benchmarks/bench_federated.py --quick                       # tiny models, 2 rounds: checks the script

Every federated run is `python recipes/train_federated.py` in Flower's simulation runtime (Ray, 2 CPUs, one CPU per
ClientApp) with the task's published model size; every centralised run is the task's own recipe on the same
training subset, for as many epochs as a client sees in all rounds (rounds x local epochs), with the same learning
rate, batch size and constant schedule (a schedule with warm-up restarts every round on a client). Both are scored on
the centralised recipe's full test split (THUCNews test.txt, 10,000 headlines; MNIST's 2,000-image test split).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# What this 2-core machine allows in about 30 CPU-minutes, instead of the full table (full training sets,
# tens of rounds): training subsets, 5 rounds of one local epoch, FedProx only where it should matter (alpha 0.1).
REDUCED = {
    "text": {
        "recipe": "train_text_classification.py",
        "model": ["--model_size", "base", "--max_seq_length", "48"],
        "data": ["--max_train_samples", "4000", "--max_eval_samples", "500"],
        "training": ["--learning_rate", "2e-3", "--per_device_train_batch_size", "32", "--weight_decay", "0.1"],
    },
    "image": {
        "recipe": "train_image_classification.py",
        "model": ["--arch", "vit", "--model_size", "base"],
        "data": ["--max_train_samples", "2000"],
        "training": ["--learning_rate", "1.5e-3", "--per_device_train_batch_size", "32", "--weight_decay", "0.05"],
    },
}
QUICK = {
    "text": {**REDUCED["text"], "model": ["--model_size", "tiny"], "data": ["--max_train_samples", "200", "--max_eval_samples", "50", "--max_test_samples", "200"]},
    "image": {**REDUCED["image"], "model": ["--arch", "vit", "--model_size", "tiny"], "data": ["--max_train_samples", "200", "--max_test_samples", "200"]},
}
COMMON = ["--lr_scheduler_type", "constant", "--warmup_steps", "0", "--seed", "42", "--report_to", "none", "--per_device_eval_batch_size", "256"]
RUNS = {
    "centralised": None,
    "fedavg_iid": ["--strategy", "fedavg"],
    "fedavg_alpha0.5": ["--strategy", "fedavg", "--alpha", "0.5"],
    "fedavg_alpha0.1": ["--strategy", "fedavg", "--alpha", "0.1"],
    "fedprox_alpha0.1": ["--strategy", "fedprox", "--proximal_mu", "0.01", "--alpha", "0.1"],
    "fedavg_iid_dp": ["--strategy", "fedavg", "--dp_noise_multiplier", "1.0", "--dp_clipping_norm", "1.0"],
}


def run(command: list[str], log: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the command and the processes it waited for (Ray's workers included as far
    as their parents reaped them)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.perf_counter() - start, cpu


def centralised(task: str, settings: dict, epochs: int, output_dir: Path) -> dict:
    command = [
        sys.executable, str(ROOT / "recipes" / settings["recipe"]), *settings["model"], *settings["data"], *settings["training"],
        *COMMON, "--num_train_epochs", str(epochs), "--output_dir", str(output_dir),
    ]
    seconds, cpu = run(command, output_dir.with_suffix(".log"))
    results = json.loads((output_dir / "all_results.json").read_text()) if task == "text" else json.loads((output_dir / "results.json").read_text())
    accuracy = results["test_accuracy"] if task == "text" else results["accuracy (%)"] / 100
    return {"test_accuracy": accuracy, "wall_seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "epochs": epochs}


def federated(task: str, settings: dict, flags: list[str], rounds: int, clients: int, output_dir: Path) -> dict:
    command = [
        sys.executable, str(ROOT / "recipes" / "train_federated.py"), "--task", task, *settings["model"], *settings["data"],
        *settings["training"], *COMMON, *flags, "--num_clients", str(clients), "--num_rounds", str(rounds),
        "--num_train_epochs", "1", "--simulation_cpus", "2", "--output_dir", str(output_dir),
    ]
    seconds, cpu = run(command, output_dir.with_suffix(".log"))
    results = json.loads((output_dir / "federated_results.json").read_text())
    return {
        "test_accuracy": results["test_accuracy"],
        "accuracy_per_round": [round(row["test_accuracy"], 4) for row in results["history"]],
        "total_bytes": results["total_bytes"],
        "failures": results["failures"],
        "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "epsilon": results["privacy"]["epsilon"] if results["privacy"] else None,
        "delta": results["privacy"]["delta"] if results["privacy"] else None,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["text", "image"], choices=["text", "image"])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny models, 2 rounds, 3 clients, 200 examples")
    parser.add_argument("--output_root", default=str(ROOT / "outputs" / "bench_federated"))
    parser.add_argument("--save", action="store_true", help="also write benchmarks/results/federated_<date>.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.clients = 2, 3
    table = QUICK if args.quick else REDUCED
    root = Path(args.output_root)
    root.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "omp_threads": 1, "simulation_cpus": 2},
        "reduced": {
            "rounds": args.rounds, "local_epochs": 1, "clients": args.clients, "fraction_train": 1.0,
            "settings": {task: table[task] for task in args.tasks}, "common": COMMON,
        },
        "results": {},
    }
    for task in args.tasks:
        rows = report["results"][task] = {}
        for name in args.runs:
            output_dir = root / f"{task}_{name}"
            print(f"{task} {name} ...", file=sys.stderr, flush=True)
            if RUNS[name] is None:
                rows[name] = centralised(task, table[task], args.rounds, output_dir)
            else:
                rows[name] = federated(task, table[task], RUNS[name], args.rounds, args.clients, output_dir)
        if "centralised" in rows:
            target = rows["centralised"]["test_accuracy"] - 0.01
            for row in rows.values():
                per_round = row.get("accuracy_per_round")
                if per_round:
                    row["gap_to_centralised_points"] = round(100 * (row["test_accuracy"] - rows["centralised"]["test_accuracy"]), 2)
                    row["first_round_within_1_point"] = next((index for index, value in enumerate(per_round) if value >= target), None)
    print(json.dumps(report, indent=2))
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"federated_{datetime.date.today().isoformat()}{'_quick' if args.quick else ''}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {path}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
