"""Runs a script the way a user without this package would: a fresh interpreter in which ``import hf_models``
fails, an empty Hugging Face cache, no token, stdin closed (a "trust remote code?" prompt fails instead of waiting)."""

import os
import subprocess
import sys
from pathlib import Path

BLOCK_PACKAGE = 'import sys\n\nsys.modules["hf_models"] = None  # the folders must be self-contained\n'


def run_fresh(script: str, jobs, work_dir: Path, timeout: int = 540):
    """Runs ``script`` with ``sys.argv[1]`` = a ``torch.save``-d file of ``jobs`` and ``sys.argv[2]`` = the file it
    must ``torch.save`` its results to; returns those results. The script's stderr is in the error if it fails."""
    import torch

    torch.save(jobs, work_dir / "jobs.pt")
    env = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}  # downloads need no token
    env.update(HF_HOME=str(work_dir / "home"), HF_MODULES_CACHE=str(work_dir / "modules"), OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-c", BLOCK_PACKAGE + script, "jobs.pt", "results.pt"],
        cwd=work_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(work_dir / "results.pt")
