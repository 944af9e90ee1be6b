"""Fault campaign, checkpoint kind: resumes from checkpoints that would not really resume (issue 16, item 3)."""

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from recipe_utils import prepare_training, verify_checkpoint  # noqa: E402


def fake_checkpoint(folder: Path, rng_files=("rng_state.pth",)) -> Path:
    """What Trainer writes into checkpoint-N: weights, the training state (torch.save zips) and trainer_state.json."""
    folder.mkdir(parents=True)
    save_file({"weight": torch.zeros(2)}, folder / "model.safetensors")
    for name in ("optimizer.pt", "scheduler.pt", "training_args.bin", *rng_files):
        torch.save({"state": 1}, folder / name)
    (folder / "config.json").write_text("{}")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    return folder


def test_a_complete_checkpoint_passes(tmp_path):
    verify_checkpoint(fake_checkpoint(tmp_path / "checkpoint-2"))
    verify_checkpoint(fake_checkpoint(tmp_path / "ddp", ["rng_state_0.pth", "rng_state_1.pth"]), world_size=2, process_index=1)


@pytest.mark.parametrize(
    "missing, restarted", [("optimizer.pt", "optimizer"), ("scheduler.pt", "learning-rate schedule"), ("rng_state.pth", "random")]
)
def test_a_resume_without_training_state_is_refused(tmp_path, missing, restarted):
    folder = fake_checkpoint(tmp_path / "checkpoint-2")
    (folder / missing).unlink()
    with pytest.raises(ValueError, match=f"checkpoint file {folder / missing} is missing: .*restart the {restarted}"):
        verify_checkpoint(folder)


def test_each_rank_needs_its_own_rng_state(tmp_path):
    folder = fake_checkpoint(tmp_path / "checkpoint-2", ["rng_state_0.pth"])
    with pytest.raises(ValueError, match="rng_state_1.pth is missing"):
        verify_checkpoint(folder, world_size=2, process_index=1)


def test_the_recipes_check_before_anything_starts(tmp_path):
    folder = fake_checkpoint(tmp_path / "checkpoint-2")
    (folder / "optimizer.pt").unlink()
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", resume_from_checkpoint=str(folder))
    with pytest.raises(ValueError, match="optimizer.pt is missing"):
        prepare_training(args)


def test_a_resume_re_ties_shared_weights_without_a_missing_keys_warning(tmp_path, monkeypatch, tiny_transformer_translator):
    """A checkpoint holds each tied weight once; the other copies are "missing" on every translation resume."""
    import transformers.trainer
    from train_translation import InOrderSeq2SeqTrainer
    from transformers import Seq2SeqTrainingArguments

    model = tiny_transformer_translator
    warnings = []
    monkeypatch.setattr(transformers.trainer.logger, "warning", lambda message, *args: warnings.append(message))
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = InOrderSeq2SeqTrainer(model=model, args=args)
    tied = set(model.all_tied_weights_keys)
    assert tied, "the tiny translator shares its embeddings"
    state = {key: value for key, value in model.state_dict().items() if key not in tied}
    trainer._issue_warnings_after_load(model.load_state_dict(state, strict=False))
    assert warnings == []
    some_weight = next(key for key in state if key.endswith("out_proj.weight"))
    trainer._issue_warnings_after_load(model.load_state_dict({k: v for k, v in state.items() if k != some_weight}, strict=False))
    assert len(warnings) == 1 and some_weight in warnings[0] and not any(key in warnings[0] for key in tied)
