"""Mixed precision as the recipes run it: bf16 really autocasts on CPU, fp16 is refused where it would do nothing,
and fp16 on a GPU scales the loss. (The FFT layers' fp32 islands inside autocast are tested with GFNet and AFNO.)

On a CPU without bf16 instructions (some machines that run CI) a bf16 matrix product runs at about 1 GFLOP/s, so the bf16
run is one step of a tiny model.
"""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import Trainer, TrainingArguments

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "tests"))
from recipe_utils import prepare_training  # noqa: E402
from trainer_probe import probe_dataset, probe_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


def train_one_step_recording_linear_outputs(tmp_path, **precision) -> tuple[list, nn.Module]:
    """One training step of the probe model; returns (autocast enabled, autocast dtype, output dtype) of every
    call of its first Linear layer, and the model."""
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, max_steps=1, per_device_train_batch_size=4, save_strategy="no",
        report_to="none", disable_tqdm=True, **precision,
    )
    prepare_training(args)
    model = probe_model(num_examples=8)
    linear = next(module for module in model.modules() if isinstance(module, nn.Linear))
    calls = []
    linear.register_forward_hook(
        lambda module, inputs, output: calls.append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), output.dtype)
        )
    )
    Trainer(model=model, args=args, train_dataset=probe_dataset(8)).train()
    return calls, model


def test_bf16_runs_matrix_products_in_bfloat16_on_cpu(tmp_path):
    calls, model = train_one_step_recording_linear_outputs(tmp_path, bf16=True)
    assert calls and all(call == (True, torch.bfloat16, torch.bfloat16) for call in calls)
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}, "master weights stay fp32"


def test_without_mixed_precision_matrix_products_stay_fp32(tmp_path):
    calls, _ = train_one_step_recording_linear_outputs(tmp_path)
    assert calls and all(enabled is False and dtype == torch.float32 for enabled, _, dtype in calls)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_fp16_without_gpu_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="fp16 mixed precision needs a GPU"):
        prepare_training(TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fp16=True, report_to="none"))
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # what `accelerate launch` with gpu_fp16.yaml exports
    with pytest.raises(ValueError, match="use --bf16 instead"):
        prepare_training(TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 loss scaling needs a CUDA GPU")
def test_fp16_on_gpu_trains_with_loss_scaling(tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path), fp16=True, max_steps=2, per_device_train_batch_size=4, save_strategy="no",
        report_to="none", disable_tqdm=True,
    )
    prepare_training(args)
    trainer = Trainer(model=probe_model(num_examples=8), args=args, train_dataset=probe_dataset(8))
    trainer.train()
    assert isinstance(trainer.accelerator.scaler, torch.amp.GradScaler)
    assert trainer.accelerator.scaler.get_scale() > 1.0
