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
