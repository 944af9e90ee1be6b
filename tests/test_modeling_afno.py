"""AFNO: the filter and the block equal the official AFNO code (re-implemented here, same weights); with identity
weights and thresholds disabled the spectral mixing is the identity on the token grid; the soft- and hard-thresholding
do what the paper says; configs saved before ``spectral_residual`` load with the old block; the model saves/loads,
interpolates, keeps a real dtype."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForImageClassification
from vision_testing import assert_save_load_identical, tiny_classifier

from hf_models import AFNOConfig
from hf_models.layers import MixerBlock
from hf_models.modeling_afno import AFNOSpectralMixing

LEGACY = Path(__file__).parent / "legacy_checkpoints" / "afno"

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


def mix_grid(mixing: AFNOSpectralMixing, x: torch.Tensor) -> torch.Tensor:
    """The mixing applied to a ``(batch, height, width, channels)`` grid (the model passes it as tokens)."""
    tokens, weights = mixing(x.flatten(1, 2), grid_size=x.shape[1:3])
    assert weights is None
    return tokens.unflatten(1, x.shape[1:3])


def identity_mixing(hidden_size: int, num_blocks: int, **thresholds) -> AFNOSpectralMixing:
    """The filter alone (no spectral residual). W2 ReLU(W1 z) = z for every complex z when W1 = [I, -I] and W2 = [I; -I] (ReLU acts on real and imaginary
    parts separately, and relu(a) - relu(-a) = a); all biases and imaginary weights zero."""
    config = AFNOConfig(
        hidden_size=hidden_size, num_blocks=num_blocks, hidden_size_factor=2, spectral_residual=False, **thresholds
    )
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


def official_afno2d(x, w1, b1, w2, b2, num_blocks, sparsity_threshold, spatial_size):
    """``AFNO2D.forward`` of NVlabs/AFNO-transformer (afno/afno2d.py) in closed form, hard_thresholding_fraction=1:
    weights laid out as there, ``(2, blocks, in, out)`` with real and imaginary parts first."""
    batch, tokens, channels = x.shape
    height, width = spatial_size
    z = torch.fft.rfft2(x.reshape(batch, height, width, channels), dim=(1, 2), norm="ortho")
    z = z.reshape(batch, height, width // 2 + 1, num_blocks, channels // num_blocks)

    def mul(real, imag, weight):
        return (torch.einsum("...bi,bio->...bo", real, weight[0]) - torch.einsum("...bi,bio->...bo", imag, weight[1]),
                torch.einsum("...bi,bio->...bo", imag, weight[0]) + torch.einsum("...bi,bio->...bo", real, weight[1]))

    real, imag = mul(z.real, z.imag, w1)
    real, imag = F.relu(real + b1[0]), F.relu(imag + b1[1])
    real, imag = mul(real, imag, w2)
    out = F.softshrink(torch.stack([real + b2[0], imag + b2[1]], dim=-1), lambd=sparsity_threshold)
    out = torch.view_as_complex(out).reshape(batch, height, width // 2 + 1, channels)
    return torch.fft.irfft2(out, s=(height, width), dim=(1, 2), norm="ortho").reshape(batch, tokens, channels) + x


def official_weights(mixing: AFNOSpectralMixing) -> list[torch.Tensor]:
    """Our ``(..., 2)`` parameters in the official ``(2, ...)`` layout."""
    return [p.movedim(-1, 0) for p in (mixing.weight1, mixing.bias1, mixing.weight2, mixing.bias2)]


@pytest.mark.parametrize("hidden_size_factor", [1, 2])
def test_filter_equals_the_official_afno2d(hidden_size_factor):
    config = AFNOConfig(hidden_size=16, num_blocks=4, hidden_size_factor=hidden_size_factor, sparsity_threshold=0.01)
    assert config.spectral_residual
    torch.manual_seed(0)
    mixing = AFNOSpectralMixing(config)
    with torch.no_grad():
        for parameter in mixing.parameters():
            parameter.normal_(std=0.5)  # large enough that ReLU and the soft-shrink both bite
        x = torch.randn(3, 4 * 6, 16)
        expected = official_afno2d(x, *official_weights(mixing), 4, 0.01, (4, 6))
        actual, _ = mixing(x, grid_size=(4, 6))
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_block_equals_the_official_double_skip_block():
    """afnonet.py ``Block.forward`` with double_skip: ``x = filter(norm1(x)) + x; x = x + drop_path(mlp(norm2(x)))``,
    the filter returning ``irfft2(...) + norm1(x)``. In training, stochastic depth drops the MLP branch only."""
    model = tiny_classifier("afno", drop_path_rate=0.5)
    block = model.afno.encoder.layers[1]
    assert isinstance(block, MixerBlock) and block.drop_path.drop_prob == 0.5
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
        x = torch.randn(8, 16, 16)
        skipped = official_afno2d(block.norm1(x), *official_weights(block.token_mixer), 4, 0.01, (4, 4)) + x
        mlp_branch = block.mlp(block.norm2(skipped))
        torch.testing.assert_close(block(x, grid_size=(4, 4)), skipped + mlp_branch, rtol=0, atol=1e-5)
        block.train()
        torch.manual_seed(5)
        trained = block(x, grid_size=(4, 4))
    # each sample: dropped keeps the filter branch; kept has the MLP branch scaled by 1 / (1 - 0.5)
    dropped = [torch.allclose(trained[i], skipped[i], atol=1e-5) for i in range(8)]
    kept = [torch.allclose(trained[i], skipped[i] + 2 * mlp_branch[i], atol=1e-5) for i in range(8)]
    assert all(d != k for d, k in zip(dropped, kept)) and any(dropped) and any(kept)


def test_config_saved_before_spectral_residual_loads_the_old_block():
    """The old checkpoint's outputs are checked in test_vision_contracts (test_checkpoint_saved_by_the_old_code...)."""
    assert "spectral_residual" not in (LEGACY / "config.json").read_text()
    assert AutoConfig.from_pretrained(LEGACY).spectral_residual is False
    assert AutoConfig.from_pretrained(LEGACY, spectral_residual=True).spectral_residual is True
    model = AutoModelForImageClassification.from_pretrained(LEGACY)
    assert not model.afno.encoder.layers[0].token_mixer.spectral_residual
    assert model.afno.encoder.layers[0].mixer_drop_path


def test_new_configs_have_the_spectral_residual_and_keep_it_through_save_and_load(tmp_path):
    model = tiny_classifier("afno")
    assert model.config.spectral_residual is True and not model.afno.encoder.layers[0].mixer_drop_path
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).spectral_residual is True
    assert AFNOConfig.from_dict(AFNOConfig(spectral_residual=False).to_dict()).spectral_residual is False
    with pytest.raises(ValueError, match="spectral_residual"):
        AFNOConfig(spectral_residual="yes")
