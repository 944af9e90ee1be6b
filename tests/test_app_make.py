"""`make app`: with every demo model folder present it trains nothing and serves the page on the asked port; with
one missing it says so and hands recipes/demo.sh the job, which keeps the trained folders and trains the missing one."""

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from app_testing import free_port, save_tiny_app_models

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = ".venv/.installed"  # `make -o` this: the tests run inside the installed venv, never reinstall it


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, tiny_transformer_translator, tiny_translation_tokenizer):
    return save_tiny_app_models(
        tmp_path_factory.mktemp("outputs"), tiny_transformer_translator, tiny_translation_tokenizer, ["财经新闻标题"]
    )


def test_missing_folder_is_trained_by_demo_sh_and_the_rest_kept(outputs, tmp_path):
    partial = tmp_path / "outputs"
    shutil.copytree(outputs, partial)
    shutil.rmtree(partial / "demo_translation_gru")
    # BIN without an accelerate: demo.sh stops at the first training, after saying what it keeps and trains.
    result = subprocess.run(
        ["make", "-o", INSTALLED, "app", f"OUTPUTS={partial}", f"BIN={tmp_path / 'no_bin'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert f"make app: training the demo models it lacks ( {partial / 'demo_translation_gru'} )" in result.stdout
    assert f"== {partial / 'demo_translation_transformer'} is already trained: kept" in result.stdout
    assert f"== training {partial / 'demo_translation_gru'}" in result.stdout


@pytest.mark.slow
def test_all_folders_present_serves_the_page(outputs):
    port = free_port()
    process = subprocess.Popen(
        ["make", "-o", INSTALLED, "app", f"OUTPUTS={outputs}", f"APP_PORT={port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, f"make app exited with {process.returncode}:\n{process.stdout.read()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"make app did not serve http://127.0.0.1:{port}/ in 240 s"
                time.sleep(1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # make and the app it started, one session
        output = process.communicate(timeout=30)[0]
    assert "training" not in output, output
    assert f"Running on local URL:  http://127.0.0.1:{port}" in output, output
