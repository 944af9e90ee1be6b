"""The translation speed and inference optimisation benchmarks run end to end and report what the README promises.
No timing is asserted: on a shared machine speed is not a test outcome, only that every figure is there and positive."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_translation_speed.py"


def test_translation_speed_quick_prints_complete_json():
    run = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick"], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)

    assert result["sizes"]["quick"] is True
    assert result["machine"]["torch_threads"] >= 1
    for model in ("ours", "marian"):
        assert result["parameters"][model]["trainable"] > 0
    # Same shapes: only Marian's frozen sinusoid tables make its total larger.
    assert result["parameters"]["ours"]["trainable"] == result["parameters"]["marian"]["trainable"]
    for workload in ("train", "generate"):
        summary = result[workload]
        assert summary["tokens_per_rep"] > 0 and summary["reps"] == 2
        for clock in ("wall", "cpu"):
            figures = summary[clock]
            assert figures["ours_tokens_per_s"] > 0 and figures["marian_tokens_per_s"] > 0
            assert figures["ratio_ours_over_marian"] > 0
            assert len(figures["paired_ratio_quartiles"]) == 3
    assert result["target_ratio"] == 1.0


INFERENCE = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_inference_optimisation.py"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ONE_STEP = ["--max_steps", "1", "--per_device_train_batch_size", "4", "--save_strategy", "no", "--eval_strategy", "no",
            "--report_to", "none", "--use_cpu", "--max_train_samples", "8", "--max_eval_samples", "4",
            "--max_test_samples", "4"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, flags, metric",
    [
        ("train_text_classification.py", ["--model_size", "tiny", "--max_seq_length", "16"], "test_accuracy"),
        ("train_translation.py", ["--arch", "transformer", "--model_size", "tiny"], "test_bleu"),
    ],
)
def test_inference_optimisation_scores_and_times_every_variant(tmp_path, recipe, flags, metric):
    """A one-step model of the recipe through every variant: each row has its test metric, its agreement with fp32
    eager (1 for fp32 itself and for onnxruntime fp32, which must match it), its size and its speed-ups; and the
    saved report renders as the README's table."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    train = subprocess.run([sys.executable, str(RECIPES / recipe), *flags, *ONE_STEP, "--output_dir", str(tmp_path / "m")],
                           capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    report_file = tmp_path / "report.json"
    bench = subprocess.run(
        [sys.executable, str(INFERENCE), "--model_dir", str(tmp_path / "m"), "--max_test_samples", "24",
         "--bf16_samples", "4", "--calibration_examples", "8", "--reps", "2", "--warmup", "1", "--max_new_tokens", "6",
         "--output", str(report_file)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stderr[-3000:]
    variants = json.loads(report_file.read_text())["variants"]
    assert {"fp32 eager", "bf16", "torchao int8 dynamic", "onnxruntime fp32", "onnxruntime int8 dynamic"} <= set(variants)
    for name, row in variants.items():
        assert metric in row and row["bytes"] > 0 and 0 <= row["agreement_with_fp32"] <= 1, name
        assert row["test_samples"] == (4 if name == "bf16" else 24), name
        if name != "fp32 eager":
            assert row["batch1_speedup"] > 0, name
    assert variants["fp32 eager"]["agreement_with_fp32"] == variants["onnxruntime fp32"]["agreement_with_fp32"] == 1.0
    table = subprocess.run([sys.executable, str(INFERENCE), "--table", str(report_file)], capture_output=True, text=True,
                           timeout=60, env=env)  # fmt: skip
    assert table.returncode == 0 and table.stdout.count("\n") == len(variants) + 2 and "| onnxruntime fp32 |" in table.stdout
