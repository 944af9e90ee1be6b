"""Training throughput of the translation recipe on CPU, for 1 process and for 2 data-parallel processes (gloo DDP).

Three settings, each the real recipe (Transformer, Tatoeba) launched as a user launches it, one thread per process:

* ``1proc_b64``: one process, batch 64;
* ``2proc_b32``: ``accelerate launch --config_file recipes/accelerate/cpu_ddp_2proc.yaml``, 32 per device (the same
  64 examples per optimizer step, so the same training);
* ``2proc_b64``: the same launch, 64 per device (128 per step).

Optimizer steps 6 to ``--max_steps`` are timed on every rank (start-up, data loading, the first steps and the final
test are left out), by wall clock and by this process's CPU time. Tokens are source + target tokens without padding:
samples times the mean length of a training pair. CPU-time figures (summed over ranks) move much less than wall-clock
ones when other processes share the machine. Prints one JSON object.

    .venv/bin/python benchmarks/bench_ddp_cpu.py                     # Transformer small, 45 steps
    .venv/bin/python benchmarks/bench_ddp_cpu.py --model_size tiny --max_steps 15
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMED_STEPS_START = 5  # timing starts when this many optimizer steps are done
SETTINGS = {  # name: (launcher, per-device batch)
    "1proc_b64": ([sys.executable], 64),
    "2proc_b32": ([str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
                   str(ROOT / "recipes" / "accelerate" / "cpu_ddp_2proc.yaml")], 32),
    "2proc_b64": ([str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
                   str(ROOT / "recipes" / "accelerate" / "cpu_ddp_2proc.yaml")], 64),
}


def worker() -> None:
    """Runs the recipe (its command line is ours) with a callback that writes this rank's timing to $TIMING_DIR."""
    sys.path.insert(0, str(ROOT / "recipes"))
    import transformers
    import train_translation

    class StepTimer(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == TIMED_STEPS_START:
                self.start = (time.perf_counter(), time.process_time())

        def on_train_end(self, args, state, control, train_dataloader=None, **kwargs):
            dataset = train_dataloader.dataset
            tokens_per_pair = (sum(map(len, dataset["input_ids"])) + sum(map(len, dataset["labels"]))) / len(dataset)
            record = {
                "rank": args.process_index,
                "world_size": args.world_size,
                "timed_steps": state.global_step - TIMED_STEPS_START,
                "batch_per_step": args.per_device_train_batch_size * args.world_size,
                "tokens_per_pair": tokens_per_pair,
                "wall_seconds": time.perf_counter() - self.start[0],
                "cpu_seconds": time.process_time() - self.start[1],
            }
            Path(os.environ["TIMING_DIR"], f"rank{args.process_index}.json").write_text(json.dumps(record))

    class TimedTrainer(train_translation.InOrderSeq2SeqTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(StepTimer())

    train_translation.InOrderSeq2SeqTrainer = TimedTrainer
    train_translation.main()


def measure(name: str, model_size: str, max_steps: int, folder: Path) -> dict:
    launcher, batch = SETTINGS[name]
    timing_dir = folder / name
    timing_dir.mkdir()
    command = [
        *launcher, str(Path(__file__).resolve()), "--arch", "transformer", "--model_size", model_size,
        "--output_dir", str(folder / f"{name}_output"), "--max_steps", str(max_steps),
        "--per_device_train_batch_size", str(batch), "--eval_strategy", "no", "--save_strategy", "no",
        "--report_to", "none", "--max_test_samples", "8", "--test_num_beams", "1", "--disable_tqdm", "true",
        "--seed", "42",
    ]
    env = {**os.environ, "TIMING_DIR": str(timing_dir), "BENCH_DDP_WORKER": "1", "OMP_NUM_THREADS": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    ranks = [json.loads(path.read_text()) for path in sorted(timing_dir.glob("rank*.json"))]
    samples = ranks[0]["timed_steps"] * ranks[0]["batch_per_step"]
    tokens = samples * ranks[0]["tokens_per_pair"]
    wall = max(rank["wall_seconds"] for rank in ranks)
    cpu = sum(rank["cpu_seconds"] for rank in ranks)
    return {
        "processes": len(ranks),
        "batch_per_step": ranks[0]["batch_per_step"],
        "timed_steps": ranks[0]["timed_steps"],
        "tokens_per_pair": round(ranks[0]["tokens_per_pair"], 2),
        "wall_seconds": round(wall, 2),
        "samples_per_second": round(samples / wall, 1),
        "tokens_per_second": round(tokens / wall),
        "cpu_seconds_all_ranks": round(cpu, 2),
        "tokens_per_cpu_second": round(tokens / cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_size", default="small")
    parser.add_argument("--max_steps", type=int, default=45)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = {name: measure(name, options.model_size, options.max_steps, Path(folder)) for name in options.settings}
    print(json.dumps({
        "benchmark": "bench_ddp_cpu",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]},
        "model": f"transformer {options.model_size}",
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    worker() if os.environ.get("BENCH_DDP_WORKER") else main()
