"""Recipes publish with ``--push_to_hub --hub_model_id NAME``: the finished folder goes to the loopback Hub in one
commit after the local save, test evaluation and model card; when publishing fails (no token, refused, Hub
unreachable) the run ends with an error naming the endpoint and the repo, and the local folder is complete.

A new recipe is one entry in ``RECIPES``.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, constants
from model_card_checks import check_card, run_snippets, usage_snippet

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
sys.path.insert(0, str(RECIPES_DIR))  # recipes/ is a script folder, not a package
from recipe_utils import PublishError, publish_output_folder  # noqa: E402

# script, quick arguments, and files its output folder must hold
RECIPES = {
    "translation": (
        "train_translation.py",
        ["--arch", "transformer", "--model_size", "tiny", "--max_train_samples", "32", "--max_eval_samples", "4",
         "--max_test_samples", "4", "--max_target_length", "12", "--test_num_beams", "1", "--eval_strategy", "no",
         "--per_device_train_batch_size", "8", "--learning_rate", "1e-3"],
        ["model.safetensors", "config.json", "tokenizer.json", "pipeline_translation.py", "README.md", "results.json"],
    ),
    "text-classification": (
        "train_text_classification.py",
        ["--model_size", "tiny", "--max_train_samples", "32", "--max_eval_samples", "8", "--max_test_samples", "8",
         "--eval_strategy", "no", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3"],
        ["model.safetensors", "config.json", "tokenizer.json", "pipeline_text_classification.py", "README.md",
         "results.json"],
    ),
    "image-classification": (
        "train_image_classification.py",
        ["--arch", "vit", "--model_size", "tiny", "--max_train_samples", "32", "--max_test_samples", "8",
         "--per_device_train_batch_size", "8", "--learning_rate", "1e-3"],
        ["model.safetensors", "config.json", "preprocessor_config.json", "image_processing_classification.py",
         "README.md", "results.json"],
    ),
}  # fmt: skip
# Trainer saves a checkpoint at step 2 of 3: it must stay local.
COMMON = ["--max_steps", "3", "--save_strategy", "steps", "--save_steps", "2", "--report_to", "none", "--use_cpu"]


def run_recipe(recipe: str, output_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script, quick, _ = RECIPES[recipe]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    command = [sys.executable, str(RECIPES_DIR / script), *quick, *COMMON, "--output_dir", str(output_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=540)


def local_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def closed_port_endpoint() -> str:
    """An endpoint where nothing listens: a port the system just handed out and that is closed again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_publishes_its_final_folder(recipe, local_hub, tmp_path):
    repo_id = f"tester/{recipe}-recipe"
    output_dir = tmp_path / "output"
    run = run_recipe(recipe, output_dir, "--push_to_hub", "--hub_model_id", repo_id)
    assert run.returncode == 0, run.stderr[-3000:]

    local = local_files(output_dir)
    assert any(name.startswith("checkpoint-2/") for name in local), "the run saved a checkpoint"
    published = local_hub.files(repo_id)
    left_local = ("checkpoint-", "training_args.bin")  # Trainer's checkpoints and pickled arguments
    assert published == {name: data for name, data in local.items() if not name.startswith(left_local)}
    assert set(RECIPES[recipe][2]) <= published.keys()
    assert len(local_hub.commit_shas(repo_id)) == 2, "one upload (after the repo's creation), no checkpoint pushes"

    card = ModelCard(published["README.md"].decode())
    check_card(card)
    snippet = usage_snippet(card)
    assert repo_id in snippet, "the published card loads the published repo"
    # From the Hub, as a reader of the card would; a broken snippet beside it shows that failures are caught.
    failures = run_snippets({"usage": snippet, "broken": 'raise RuntimeError("no such model")'}, tmp_path)
    assert "usage" not in failures, failures["usage"]
    assert "RuntimeError: no such model" in failures["broken"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_unreachable_hub_fails_after_the_local_save(recipe, tmp_path):
    endpoint, output_dir = closed_port_endpoint(), tmp_path / "output"
    env = {"HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_some_token", "HF_HUB_OFFLINE": "0"}
    run = run_recipe(recipe, output_dir, "--push_to_hub", "--hub_model_id", "tester/unpublished", env=env)
    assert run.returncode != 0
    assert f"Could not publish to {endpoint} (repo tester/unpublished)" in run.stderr, run.stderr[-3000:]
    assert f"The trained model is saved in {output_dir}" in run.stderr
    assert set(RECIPES[recipe][2]) <= set(local_files(output_dir))
    check_card(ModelCard.load(output_dir / "README.md"))  # written, with the test results, before publishing


@pytest.fixture
def finished_folder(tmp_path) -> Path:
    """A model file, and what a recipe's output folder holds that is not published."""
    folder = tmp_path / "finished"
    for name in ("checkpoint-5/model.safetensors", "runs/events.out", "training_args.bin"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"local only")
    (folder / "config.json").write_text("{}")
    return folder


def test_no_token_is_a_clear_error(finished_folder, local_hub, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_saved_token"))
    with pytest.raises(PublishError, match=f"Cannot publish to {local_hub.endpoint} \\(repo tester/x\\): no Hugging"):
        publish_output_folder(finished_folder, "tester/x")
    assert "tester/x" not in local_hub.repos


def test_refused_upload_is_a_clear_error(finished_folder, local_hub):
    with pytest.raises(PublishError, match=f"Could not publish to {local_hub.endpoint} \\(repo tester/x\\)") as error:
        publish_output_folder(finished_folder, "tester/x", token="hf_revoked_token")
    assert "401" in str(error.value) and "Invalid credentials" in str(error.value)
    assert f"saved in {finished_folder}" in str(error.value)


def test_publishing_again_adds_a_commit_to_the_same_repo(finished_folder, local_hub):
    first = publish_output_folder(finished_folder, "tester/again")
    (finished_folder / "config.json").write_text('{"retrained": true}')
    second = publish_output_folder(finished_folder, "again")  # the token's user is the default namespace
    assert local_hub.commit_shas("tester/again")[1:] == [first.oid, second.oid]
    assert local_hub.files("tester/again", revision=first.oid) == {"config.json": b"{}"}
    assert local_hub.files("tester/again") == {"config.json": b'{"retrained": true}'}
