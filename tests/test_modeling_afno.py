"""AFNO: with identity weights and thresholds disabled the spectral mixing is the identity on the token grid; the
soft- and hard-thresholding do what the paper says; the model saves/loads, interpolates, keeps a real dtype."""

import pytest
import torch
from vision_testing import assert_save_load_identical, tiny_classifier

from hf_models import AFNOConfig
from hf_models.modeling_afno import AFNOSpectralMixing

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


def mix_grid(mixing: AFNOSpectralMixing, x: torch.Tensor) -> torch.Tensor:
    """The mixing applied to a ``(batch, height, width, channels)`` grid (the model passes it as tokens)."""
    tokens, weights = mixing(x.flatten(1, 2), grid_size=x.shape[1:3])
    assert weights is None
    return tokens.unflatten(1, x.shape[1:3])


def identity_mixing(hidden_size: int, num_blocks: int, **thresholds) -> AFNOSpectralMixing:
    """W2 ReLU(W1 z) = z for every complex z when W1 = [I, -I] and W2 = [I; -I] (ReLU acts on real and imaginary
    parts separately, and relu(a) - relu(-a) = a); all biases and imaginary weights zero."""
    config = AFNOConfig(hidden_size=hidden_size, num_blocks=num_blocks, hidden_size_factor=2, **thresholds)
    mixing = AFNOSpectralMixing(config)
    block = hidden_size // num_blocks
    eye = torch.eye(block)
    with torch.no_grad():
        for parameter in mixing.parameters():
            parameter.zero_()
        mixing.weight1[..., 0] = torch.cat([eye, -eye], dim=1)
        mixing.weight2[..., 0] = torch.cat([eye, -eye], dim=0)
    return mixing


def test_identity_weights_without_thresholding_give_the_identity():
    torch.manual_seed(0)
    mixing = identity_mixing(12, 3, sparsity_threshold=0.0, hard_thresholding_fraction=1.0)
    x = torch.randn(2, 5, 6, 12)
    with torch.no_grad():
        mixed = mix_grid(mixing, x)
    torch.testing.assert_close(mixed, x, rtol=0, atol=1e-5)


def test_soft_and_hard_thresholding_act_on_the_spectrum():
    """With identity weights the output spectrum is softshrink(input spectrum) on the kept lowest modes (|f_h| < 2
    and f_w < 2 of a 6x6 grid at fraction 0.5) and zero elsewhere."""
    torch.manual_seed(0)
    mixing = identity_mixing(8, 2, sparsity_threshold=0.3, hard_thresholding_fraction=0.5)
    x = torch.randn(1, 6, 6, 8)
    spectrum = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
    shrunk = torch.view_as_complex(torch.nn.functional.softshrink(torch.view_as_real(spectrum), 0.3))
    row_frequency = torch.tensor([0, 1, 2, 3, 2, 1])  # |frequency| of the rows 0, 1, 2, -3, -2, -1
    column_frequency = torch.arange(4)
    kept = (row_frequency[:, None] < 2) & (column_frequency[None, :] < 2)
    expected = torch.fft.irfft2(shrunk * kept[None, :, :, None], s=(6, 6), dim=(1, 2), norm="ortho")
    with torch.no_grad():
        torch.testing.assert_close(mix_grid(mixing, x), expected, rtol=0, atol=1e-5)


def test_fft_runs_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    mixing = identity_mixing(8, 2, sparsity_threshold=0.0)
    x = torch.randn(1, 4, 4, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = mix_grid(mixing, x.bfloat16())
    assert mixed.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), x, rtol=0.02, atol=0.05)


def test_model_keeps_a_real_dtype_interpolates_and_trains():
    model = tiny_classifier("afno", hard_thresholding_fraction=0.75)
    assert model.dtype == torch.float32
    with torch.no_grad():
        assert model(torch.randn(2, 1, 20, 28), interpolate_pos_encoding=True).logits.shape == (2, 3)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(torch.randn(2, 1, 20, 28))
    model.train()
    outputs = model(torch.randn(2, 1, 16, 16), labels=torch.tensor([0, 2]))
    outputs.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_save_load_gives_identical_logits(tmp_path):
    assert_save_load_identical(tiny_classifier("afno"), tmp_path)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"hidden_size": 30, "num_blocks": 4}, "num_blocks"),
        ({"sparsity_threshold": -1.0}, "sparsity_threshold"),
        ({"hard_thresholding_fraction": 0.0}, "hard_thresholding_fraction"),
        ({"hidden_size_factor": 0}, "hidden_size_factor"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AFNOConfig(**kwargs)
