"""The translation speed benchmark runs end to end and reports what its README promises. No timing is asserted:
on a shared machine speed is not a test outcome, only that every figure is there and positive."""

import json
import subprocess
import sys
from pathlib import Path

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
