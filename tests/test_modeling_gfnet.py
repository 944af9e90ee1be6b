"""GFNet: the global filter is the circular convolution it stands for, runs its FFTs in float32 under autocast,
resizes for other grids; the model trains, saves/loads, interpolates, keeps a real dtype."""

import pytest
import torch
from vision_testing import assert_save_load_identical, tiny_classifier

from hf_models import GFNetConfig
from hf_models.modeling_gfnet import GlobalFilter

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


def filter_grid(global_filter: GlobalFilter, x: torch.Tensor) -> torch.Tensor:
    """The filter applied to a ``(batch, height, width, channels)`` grid (the model passes it as tokens)."""
    tokens, weights = global_filter(x.flatten(1, 2), grid_size=x.shape[1:3])
    assert weights is None
    return tokens.unflatten(1, x.shape[1:3])


def random_filter(height: int, width: int, channels: int) -> GlobalFilter:
    global_filter = GlobalFilter(GFNetConfig(image_size=height * 2, patch_size=2, hidden_size=channels))
    assert global_filter.complex_weight.shape == (height, width // 2 + 1, channels, 2)
    with torch.no_grad():
        global_filter.complex_weight.normal_()
    return global_filter


def test_global_filter_is_a_circular_convolution():
    """irfft2(rfft2(x) * K) with norm="ortho" equals sum_{m,n} k[m, n] x[i - m, j - n] (indices mod the grid) per
    channel, where k = irfft2(K) is the filter's spatial kernel (the ortho factors cancel)."""
    torch.manual_seed(0)
    height = width = 4
    channels = 3
    global_filter = random_filter(height, width, channels)
    x = torch.randn(2, height, width, channels)
    kernel = torch.fft.irfft2(torch.view_as_complex(global_filter.complex_weight), s=(height, width), dim=(0, 1))
    expected = torch.zeros_like(x)
    for m in range(height):
        for n in range(width):
            expected += kernel[m, n] * torch.roll(x, shifts=(m, n), dims=(1, 2))
    with torch.no_grad():
        actual = filter_grid(global_filter, x)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_fft_runs_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    global_filter = random_filter(4, 4, 8)
    x = torch.randn(2, 4, 4, 8)
    with torch.no_grad():
        reference = filter_grid(global_filter, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = filter_grid(global_filter, x.bfloat16())
    assert mixed.dtype == torch.bfloat16
    # Only the bf16 rounding of input and output remains: a bf16 FFT would be far worse (or refuse to run).
    torch.testing.assert_close(mixed.float(), reference, rtol=0.02, atol=0.05)


def test_filter_is_resized_for_other_grids_and_the_all_pass_filter_stays_all_pass():
    global_filter = random_filter(4, 4, 2)
    assert torch.equal(torch.view_as_real(global_filter.filter_for(4, 4)), global_filter.complex_weight)
    assert global_filter.filter_for(6, 10).shape == (6, 6, 2)
    with torch.no_grad():
        global_filter.complex_weight.zero_()
        global_filter.complex_weight[..., 0] = 1.0  # K = 1 at every frequency: the identity
        x = torch.randn(1, 6, 10, 2)
        torch.testing.assert_close(filter_grid(global_filter, x), x, rtol=0, atol=1e-5)


def test_model_keeps_a_real_dtype_and_runs_in_bfloat16():
    model = tiny_classifier("gfnet")
    assert model.dtype == torch.float32
    model = model.to(torch.bfloat16)
    assert model.dtype == torch.bfloat16
    with torch.no_grad():
        assert model(torch.randn(1, 1, 16, 16)).logits.dtype == torch.bfloat16


def test_other_image_sizes_need_interpolate_pos_encoding():
    model = tiny_classifier("gfnet")
    with torch.no_grad():
        outputs = model(torch.randn(2, 1, 24, 20), interpolate_pos_encoding=True, output_hidden_states=True)
    assert outputs.logits.shape == (2, 3) and outputs.hidden_states[-1].shape == (2, 30, 16)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(torch.randn(2, 1, 24, 20))


def test_training_step_reaches_every_parameter_and_lowers_the_loss():
    model = tiny_classifier("gfnet", drop_path_rate=0.1).train()
    pixel_values, labels = torch.randn(6, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = model(pixel_values, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5


def test_save_load_gives_identical_logits(tmp_path):
    assert_save_load_identical(tiny_classifier("gfnet"), tmp_path)
