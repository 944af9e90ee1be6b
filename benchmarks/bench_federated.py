"""Federated vs centralised training on THUCNews (the published `base` classifier) and MNIST (the published `base` GFNet
or, with --image_arch vit, ViT), 10 clients: centralised, FedAvg IID and Dirichlet alpha 0.5 / 0.1, FedProx alpha 0.1,
FedAvg IID under central DP, FedAvgM (server momentum 0.9) IID and alpha 0.5 / 0.1, FedAvg with a server learning
rate of 3 IID, FedAdam (Reddi et al. 2021; server learning rate 1e-2, betas 0.9 / 0.99, tau 1e-3) IID and alpha 0.5.
Writes, per task and protocol, benchmarks/results/federated_<date>_<task>_R<rounds>E<local epochs>[C<fraction>]
[_<schedule>][_central<epochs>][_seed<seed>].json (one cell at a time: a run adds its row to the file of the same
protocol): final test accuracy, gap to centralised, the first round within 1 point of it, bytes communicated, wall
time, epsilon.

    nice -n 10 python benchmarks/bench_federated.py --tasks text --runs centralised --save    # one cell
    nice -n 10 python benchmarks/bench_federated.py --save                                     # the whole table
    nice -n 10 python benchmarks/bench_federated.py --tasks image --rounds 40 --lr_schedule cosine --runs centralised fedavg_iid fedavg_alpha0.5 --save
    nice -n 10 python benchmarks/bench_federated.py --tasks image --image_arch vit --rounds 200 --fraction_train 0.2 --centralised_epochs 80 --runs fedavg_iid --save
    nice -n 10 python benchmarks/bench_federated.py --tasks image --image_arch vit --rounds 800 --local_epochs 1 --fraction_train 0.2 --centralised_epochs 80 --runs fedavg_iid --save
    python benchmarks/bench_federated.py --quick                                               # tiny models: checks the script

Protocol: equal examples processed. McMahan et al. (2017) count a client's computation in local epochs E per round;
here every client trains E = --local_epochs epochs on its partition in each of R = --rounds rounds (all 10 clients
every round), and the centralised recipe trains R x E epochs on the same training subset, so every training example
goes through the optimiser R x E times in both, with the same AdamW, learning rate, batch size, weight decay and a
constant schedule (a warm-up would restart every round on a client), or with --lr_schedule cosine (linear) a decay to
0: over the epochs in the centralised run, over the rounds in the federated ones (round r trains at the rate of
(r - 1) / R, constant within the round). What differs is the number of sequential steps: a
FedAvg round of 10 clients moves the global model about as far as E epochs on a tenth of the data, so several local
epochs per round (McMahan's E = 5 regime) are what lets FedAvg approach the centralised model in few rounds; FedAvgM's
server momentum is the other remedy (Hsu et al. 2019): it keeps the direction of earlier rounds and lengthens the
server's step, at no extra client computation or communication; a server learning rate above 1 lengthens it
directly, and FedAdam scales it per weight by the root of its second moment. Every model is scored on its recipe's full test split
(THUCNews test.txt, 10,000 headlines; MNIST's 2,000-image test split); the server does so after every round, which
gives the round within 1 point of centralised. Every federated run is `python recipes/train_federated.py` in Flower's
simulation runtime (Ray, 2 CPUs, one per ClientApp). The training subsets and the default R = 5, E = 4 are what this
shared 2-core machine allows for the whole table; --rounds 20 or 40 lengthen single cells.

Equal sequential steps (--fraction_train F --centralised_epochs R x E / clients): a model that needs many optimiser
steps (the ViT: 31 % after the 1,000 steps of 8 centralised epochs, 90 % after 10,000) cannot reach the centralised
accuracy in R x E / 10 epochs' worth of steps, whatever the aggregation. Sampling a share F of the clients per round
costs F of a full round's computation and, on IID partitions, moves the global model about as far, so R = 200 rounds
of E = 4 epochs on 2 of 10 clients give a client's optimiser the 10,000 steps of the 80 centralised epochs, at 2x
the examples processed (R x E x F = 160 epochs' worth). R = 800 rounds of E = 1 give the same steps in shorter
local runs (less client drift, four times the rounds and bytes). --seed changes the recipes' seed and the
partition's (Flower's choice of clients per round is not seeded).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Training subsets and batch 16 (rather than the published 64) for more local steps per example: what fits the table
# into about an hour of this machine's two cores. The learning rates are the published ones.
SETTINGS = {
    "text": {
        "recipe": "train_text_classification.py",
        "model": ["--model_size", "base", "--max_seq_length", "48"],
        "data": ["--max_train_samples", "4000", "--max_eval_samples", "500"],
        "training": ["--learning_rate", "2e-3", "--per_device_train_batch_size", "16", "--weight_decay", "0.1"],
    },
    "image": {
        "recipe": "train_image_classification.py",
        "model": ["--arch", "gfnet", "--model_size", "base"],
        "data": ["--max_train_samples", "2000"],
        "training": ["--learning_rate", "1e-3", "--per_device_train_batch_size", "16", "--weight_decay", "0.05"],
    },
}
QUICK = {
    "text": {**SETTINGS["text"], "model": ["--model_size", "tiny"], "data": ["--max_train_samples", "200", "--max_eval_samples", "50", "--max_test_samples", "200"]},
    "image": {**SETTINGS["image"], "model": ["--arch", "gfnet", "--model_size", "tiny"], "data": ["--max_train_samples", "200", "--max_test_samples", "200"]},
}
COMMON = ["--lr_scheduler_type", "constant", "--warmup_steps", "0", "--seed", "42", "--report_to", "none", "--per_device_eval_batch_size", "256"]
RUNS = {
    "centralised": None,
    "fedavg_iid": ["--strategy", "fedavg"],
    "fedavg_alpha0.5": ["--strategy", "fedavg", "--alpha", "0.5"],
    "fedavg_alpha0.1": ["--strategy", "fedavg", "--alpha", "0.1"],
    "fedprox_alpha0.1": ["--strategy", "fedprox", "--proximal_mu", "0.01", "--alpha", "0.1"],
    "fedavgm_iid": ["--strategy", "fedavgm", "--server_momentum", "0.9"],
    "fedavgm_alpha0.5": ["--strategy", "fedavgm", "--server_momentum", "0.9", "--alpha", "0.5"],
    "fedavgm_alpha0.1": ["--strategy", "fedavgm", "--server_momentum", "0.9", "--alpha", "0.1"],
    "fedavg_server_lr3_iid": ["--strategy", "fedavgm", "--server_momentum", "0", "--server_learning_rate", "3"],
    "fedadam_iid": ["--strategy", "fedadam"],
    "fedadam_alpha0.5": ["--strategy", "fedadam", "--alpha", "0.5"],
    "fedavg_iid_dp": ["--strategy", "fedavg", "--dp_noise_multiplier", "1.0", "--dp_clipping_norm", "1.0"],
}


def run(command: list[str], log: Path) -> dict:
    """Wall seconds of the command, and the machine's load average around it (the machine is shared: a load above
    its 2 cores means the run waited for the CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    return {"wall_seconds": round(time.perf_counter() - start, 1), "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def centralised(task: str, settings: dict, common: list[str], protocol: dict, output_dir: Path) -> dict:
    epochs = protocol["centralised_epochs"]
    command = [
        sys.executable, str(ROOT / "recipes" / settings["recipe"]), *settings["model"], *settings["data"], *settings["training"],
        *common, "--lr_scheduler_type", protocol["lr_schedule"], "--num_train_epochs", str(epochs), "--output_dir", str(output_dir),
    ]
    timing = run(command, output_dir.parent / f"{output_dir.name}.log")
    results = json.loads((output_dir / "all_results.json").read_text()) if task == "text" else json.loads((output_dir / "results.json").read_text())
    accuracy = results["test_accuracy"] if task == "text" else results["accuracy (%)"] / 100
    return {"test_accuracy": accuracy, "epochs": epochs, **timing}


def federated(task: str, settings: dict, common: list[str], flags: list[str], protocol: dict, output_dir: Path, resume: bool) -> dict:
    """One federated cell; ``resume`` continues an interrupted one from the checkpoint in its output folder (its wall
    time is then the server's own count of the rounds' seconds, summed over the parts, without the runtime's starts)."""
    command = [
        sys.executable, str(ROOT / "recipes" / "train_federated.py"), "--task", task, *settings["model"], *settings["data"],
        *settings["training"], *common, *flags, "--num_clients", str(protocol["clients"]), "--num_rounds", str(protocol["rounds"]),
        "--num_train_epochs", str(protocol["local_epochs"]), "--round_lr_scheduler_type", protocol["lr_schedule"],
        "--fraction_train", str(protocol["fraction_train"]),
        "--simulation_cpus", "2", "--output_dir", str(output_dir), *(["--resume"] if resume else []),
    ]
    log = output_dir.parent / f"{output_dir.name}{'_resumed' if resume else ''}.log"
    timing = run(command, log)
    results = json.loads((output_dir / "federated_results.json").read_text())
    if resume:
        timing = {**timing, "wall_seconds": round(results["seconds"], 1), "resumed": True}
    return {
        "test_accuracy": results["test_accuracy"],
        "accuracy_per_round": [round(row["test_accuracy"], 4) for row in results["history"]],
        "seconds_per_round": [round(row["seconds"], 1) for row in results["history"][1:]],
        "total_bytes": results["total_bytes"],
        "failures": results["failures"],
        **timing,
        "epsilon": results["privacy"]["epsilon"] if results["privacy"] else None,
        "delta": results["privacy"]["delta"] if results["privacy"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["text", "image"], choices=["text", "image"])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--local_epochs", type=int, default=4, help="per client and round; the centralised run trains rounds x this")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument(
        "--fraction_train", type=float, default=1.0,
        help="clients sampled per round; below 1 a round costs that share of the clients' computation while it moves "
        "the global model about as far on IID partitions (each client's steps are what count)",
    )
    parser.add_argument(
        "--centralised_epochs", type=int, default=None,
        help="default: rounds x local epochs x fraction_train (equal examples processed); rounds x local epochs / "
        "clients gives the centralised run as many optimiser steps as a client's R x E epochs (equal sequential steps)",
    )
    parser.add_argument(
        "--lr_schedule", default="constant", choices=["constant", "linear", "cosine"],
        help="centralised: --lr_scheduler_type over its epochs; federated: --round_lr_scheduler_type over the rounds",
    )
    parser.add_argument(
        "--seed", type=int, default=42,
        help="of the model's initialisation, the batches and the partition; another seed writes its own file (_seed<N>), "
        "which measures the run-to-run spread",
    )
    parser.add_argument("--image_arch", default="gfnet", choices=["vit", "gfnet", "afno"], help="the MNIST family (its base size)")
    parser.add_argument("--quick", action="store_true", help="tiny models, 2 rounds of 1 local epoch, 3 clients, 200 examples")
    parser.add_argument("--output_root", default=str(ROOT / "outputs" / "bench_federated"))
    parser.add_argument("--save", action="store_true", help="add the rows to benchmarks/results/federated_<date>_<task>_R<r>E<e>.json")
    parser.add_argument("--resume", action="store_true", help="federated cells continue from the checkpoint their output folder holds")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.local_epochs, args.clients = 2, 1, 3
    table = QUICK if args.quick else SETTINGS
    table["image"]["model"] = ["--arch", args.image_arch, *table["image"]["model"][2:]]
    root = Path(args.output_root)
    root.mkdir(parents=True, exist_ok=True)
    if not 0 < args.fraction_train <= 1:
        raise SystemExit(f"--fraction_train must be in (0, 1], got {args.fraction_train}")
    common = [str(args.seed) if previous == "--seed" else flag for previous, flag in zip(["", *COMMON], COMMON)]
    equal_examples = round(args.rounds * args.local_epochs * args.fraction_train)
    centralised_epochs = equal_examples if args.centralised_epochs is None else args.centralised_epochs
    protocol = {
        "clients": args.clients, "fraction_train": args.fraction_train, "rounds": args.rounds, "local_epochs": args.local_epochs,
        "centralised_epochs": centralised_epochs, "lr_schedule": args.lr_schedule,
    }
    for task in args.tasks:
        name = task if task == "text" else f"image_{args.image_arch}"
        report = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "omp_threads": 1, "simulation_cpus": 2},
            "protocol": protocol, "settings": table[task], "common": common, "results": {},
        }
        schedule = "" if args.lr_schedule == "constant" else f"_{args.lr_schedule}"
        sampling = "" if args.fraction_train == 1 else f"C{args.fraction_train:g}"
        centralised_name = "" if centralised_epochs == equal_examples else f"_central{centralised_epochs}"
        seed_name = "" if args.seed == 42 else f"_seed{args.seed}"
        protocol_name = f"R{args.rounds}E{args.local_epochs}{sampling}{schedule}{centralised_name}{seed_name}{'_quick' if args.quick else ''}"
        path = RESULTS / f"federated_{datetime.date.today().isoformat()}_{name}_{protocol_name}.json"
        if args.save and path.is_file():
            saved = json.loads(path.read_text())
            if {key: saved.get(key) for key in ("protocol", "settings", "common")} != {key: report[key] for key in ("protocol", "settings", "common")}:
                raise SystemExit(f"{path} holds another protocol or other settings: move it away to start a new table")
            report = saved
        rows = report["results"]
        for run_name in args.runs:
            output_dir = root / f"{name}_{protocol_name}_{run_name}"
            print(f"{name} {run_name} ...", file=sys.stderr, flush=True)
            if RUNS[run_name] is None:
                rows[run_name] = centralised(task, table[task], common, protocol, output_dir)
            else:
                rows[run_name] = federated(task, table[task], common, RUNS[run_name], protocol, output_dir, args.resume)
            compare_with_centralised(rows)
            if args.save:  # after every run, so an interrupted benchmark keeps what it measured
                RESULTS.mkdir(exist_ok=True)
                path.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))


def compare_with_centralised(rows: dict) -> None:
    """Each federated row's gap to the centralised accuracy and the first round (0 = the initial model) whose
    global model is within 1 point of it."""
    if "centralised" not in rows:
        return
    target = rows["centralised"]["test_accuracy"]
    for row in rows.values():
        if "accuracy_per_round" in row:
            row["gap_to_centralised_points"] = round(100 * (row["test_accuracy"] - target), 2)
            row["first_round_within_1_point"] = next((index for index, value in enumerate(row["accuracy_per_round"]) if value >= target - 0.01), None)


if __name__ == "__main__":
    main()
