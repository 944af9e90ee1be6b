"""Fault campaign: runs that go wrong while training must stop with an error naming the step (issue 16, item 7),
and recipe runs must not mislead (issue 16, items 8-9; issue 15's recipe defects)."""

import sys
from pathlib import Path

import pytest
from transformers import TrainerState, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from recipe_utils import DivergedError, DivergenceCallback, prepare_training, training_callbacks  # noqa: E402


def state_with_losses(*losses: float, first_step: int = 1) -> TrainerState:
    return TrainerState(
        global_step=first_step + len(losses) - 1,
        log_history=[{"step": first_step + index, "loss": loss} for index, loss in enumerate(losses)],
    )


def test_a_finite_divergence_stops_the_run_naming_the_step():
    callback = DivergenceCallback()
    with pytest.raises(DivergedError, match=r"loss was 3\.4e\+07 at step 3, more than 10 times its first logged value 9\.1"):
        for logged in range(1, 6):  # GRU at --learning_rate 1e6: 9.1, 40, 3.4e7, 2e7, 5e7
            callback.on_log(None, state_with_losses(*[9.1, 40, 3.4e7, 2e7, 5e7][:logged]), None, logs={"loss": 0})


def test_a_run_that_ends_diverged_is_not_saved():
    with pytest.raises(DivergedError, match="at step 3"):
        DivergenceCallback().on_train_end(None, state_with_losses(9.1, 5.0, 200.0), None)


@pytest.mark.parametrize("losses", [(9.1, 4.0, 2.0, 1.0), (9.1, 95.0, 3.0, 2.0, 95.0, 1.0), (2.3,)], ids=["learning", "spikes", "one-log"])
def test_a_healthy_or_spiky_run_goes_on(losses):
    callback = DivergenceCallback()
    for logged in range(1, len(losses) + 1):
        callback.on_log(None, state_with_losses(*losses[:logged]), None, logs={"loss": 0})
    callback.on_train_end(None, state_with_losses(*losses), None)


def test_every_recipe_trainer_gets_the_guard_and_logs_the_first_step(tmp_path):
    assert any(isinstance(callback, DivergenceCallback) for callback in training_callbacks())
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    prepare_training(args)
    assert args.logging_first_step


# ---- recipe defects (issue 15) and the resumed train_loss (issue 16, item 9) ----

import json  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from recipe_utils import print_test_metrics, train  # noqa: E402
from train_translation import QUICK_TRIAL_TEST_PAIRS, bound_quick_trial, parse_arguments  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], "inverse_sqrt"),
        (["--lr_scheduler_type", "linear"], "linear"),
        (["--lr_scheduler_type=cosine"], "cosine"),
        (["--args_file", "FILE"], "constant"),
        (["--arch", "gru"], "linear"),
    ],
    ids=["transformer-default", "flag", "flag=value", "args-file", "gru-default"],
)
def test_translation_schedule_is_the_one_asked_for(tmp_path, flags, expected):
    args_file = tmp_path / "run.args"
    args_file.write_text("--lr_scheduler_type constant\n")
    flags = [str(args_file) if flag == "FILE" else flag for flag in flags]
    _, _, training_args = parse_arguments([*flags, "--output_dir", str(tmp_path / "out"), "--report_to", "none"])
    assert training_args.lr_scheduler_type.value == expected


def test_published_args_files_do_not_pin_the_cpu():
    for args_file in sorted((ROOT / "recipes" / "published").glob("*.args")):
        assert "--use_cpu" not in args_file.read_text().split(), f"{args_file.name} would train on CPU under a GPU launch"


def test_a_quick_trial_decodes_a_bounded_test_split(caplog):
    data_args = SimpleNamespace(max_test_samples=None)
    bound_quick_trial(SimpleNamespace(max_steps=5), data_args)
    assert data_args.max_test_samples == QUICK_TRIAL_TEST_PAIRS and "--max_test_samples 0" in caplog.text
    for max_steps, given in ((-1, None), (5000, None), (5, 0)):
        data_args = SimpleNamespace(max_test_samples=given)
        bound_quick_trial(SimpleNamespace(max_steps=max_steps), data_args)
        assert data_args.max_test_samples == given


class FinishedTrainer:
    """What train() reads from a Trainer that resumed at step 4 and ran to step 6 (losses 6, 5, 4, 3 | 2, 1)."""

    def __init__(self):
        history = [{"step": 1, "loss": 6.0}, {"step": 2, "loss": 5.0}, {"step": 4, "loss": 3.5}, {"step": 6, "loss": 1.5}]
        self.state = SimpleNamespace(global_step=6, log_history=history)

    def train(self, resume_from_checkpoint=None):
        return SimpleNamespace(metrics={"train_loss": 1.5, "train_runtime": 1.0})


def test_a_resumed_train_loss_covers_the_whole_run(tmp_path):
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    assert train(FinishedTrainer(), str(tmp_path))["train_loss"] == pytest.approx((6 + 5 + 4 + 3 + 2 + 1) / 6)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 5}))  # no log at the checkpoint's step
    metrics = train(FinishedTrainer(), str(tmp_path))
    assert "train_loss" not in metrics and metrics["train_loss_resumed_steps"] == 1.5


def test_test_metrics_are_printed(capsys):
    print_test_metrics({"test_accuracy": 0.5, "train_loss": 1.0, "test_confusion_matrix": [[1]]})
    assert capsys.readouterr().out == 'test metrics: {"test_accuracy": 0.5}\n'


def test_cards_carry_no_machine_paths(tmp_path):
    from model_card import REPO_ROOT, portable, recipe_command

    assert portable(str(REPO_ROOT / ".." / "shared" / "data")) == "../shared/data"
    assert portable(str(REPO_ROOT / "recipes" / "published" / "x.args")) == "recipes/published/x.args"
    assert portable("/home/someone/corpora/train.tsv") == "train.tsv" and portable("relative/x.tsv") == "relative/x.tsv"
    assert portable(None) is None and portable(3) == 3
    command = recipe_command(REPO_ROOT / "recipes" / "train_translation.py", ["--data_dir", str(REPO_ROOT.parent / "shared" / "data")])
    assert command == "accelerate launch recipes/train_translation.py --data_dir ../shared/data"
    for card in sorted((ROOT / "model_cards").glob("*.md")):
        text = card.read_text()
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, card.name
