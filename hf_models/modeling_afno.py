"""The Adaptive Fourier Neural Operator (AFNO) of Guibas et al. (2022), "Adaptive Fourier Neural Operators: Efficient
Token Mixers for Transformers", as an image classifier and Hugging Face model.

AFNO mixes tokens in the 2-D Fourier domain like GFNet, but instead of one fixed complex weight per frequency it
applies a small complex MLP to every frequency's channel vector (the same MLP at every frequency, so it adapts to the
input like attention does), with block-diagonal weights to keep it cheap, soft-thresholding that makes the spectrum
sparse, and optional hard truncation of the high frequencies.
"""

import torch
from torch import nn
from transformers import initialization as init

from .configuration_afno import AFNOConfig
from .layers import (
    FourierGridEncoder,
    FourierGridModelMixin,
    ImageClassificationMixin,
    VisionPreTrainedModel,
    init_patch_model_weights,
    irfft2_ortho,
    rfft2_ortho,
)


def complex_linear(modes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``W z + b`` per block, in real arithmetic, for complex modes stored as interleaved real numbers
    ``(..., blocks, in * 2)`` (real, imaginary, real, ... as ``torch.view_as_real`` lays them out) and
    ``(blocks, in, out, 2)`` weights; returns ``(..., blocks, out * 2)``, interleaved alike.

    ``(Wr + i Wi)(zr + i zi) = (Wr zr - Wi zi) + i (Wi zr + Wr zi)`` is one real product with the ``(2 in, 2 out)``
    matrix ``[[Wr, Wi], [-Wi, Wr]]`` per input/output pair: one real einsum, which the ONNX exporter supports where it
    has no complex einsum. The bias's (real, imaginary) layout is already the interleaved one."""
    real, imag = weight.float().unbind(-1)
    # [i, s, o, t]: input part s (0 real, 1 imaginary) -> output part t
    real_matrix = torch.stack((torch.stack((real, imag), dim=-1), torch.stack((-imag, real), dim=-1)), dim=2)
    product = torch.einsum("...ni,nio->...no", modes, real_matrix.flatten(1, 2).flatten(-2))
    return product + bias.float().flatten(-2)


class AFNOSpectralMixing(nn.Module):
    """``irfft2(S_lambda(MLP(rfft2(x))))`` over the token grid, with ``norm="ortho"``.

    The channels of every Fourier mode are split into ``num_blocks`` blocks; each block goes through its own
    two-layer complex MLP ``W2 ReLU(W1 z + b1) + b2`` (weights shared across modes). ``S_lambda`` is the soft-shrink
    with ``lambda = sparsity_threshold`` on real and imaginary parts. Only the lowest ``hard_thresholding_fraction``
    of the frequencies along each axis are computed; the others are set to zero.

    Weights are REAL tensors with a trailing (real, imaginary) axis (complex parameters would break
    ``model.dtype``), and the spectrum is computed on as interleaved real and imaginary parts
    (:func:`complex_linear`), so the whole mixer exports to ONNX. The FFTs and the spectral MLP run in float32 with autocast disabled.

    ``config.spectral_residual=True`` adds the input back, ``irfft2(...) + x``, as the official ``AFNO2D`` does.
    Hard thresholding keeps the lowest ``hard_thresholding_fraction`` of the modes along BOTH axes, as the paper
    describes; the official code keeps the first ``int((H * W // 2 + 1) * fraction)`` columns of the width axis
    only, which for the fraction 1.0 its classifiers use keeps every mode, as here.
    """

    def __init__(self, config: AFNOConfig):
        super().__init__()
        self.num_blocks = config.num_blocks
        self.sparsity_threshold = config.sparsity_threshold
        self.hard_thresholding_fraction = config.hard_thresholding_fraction
        self.spectral_residual = config.spectral_residual
        block_size = config.hidden_size // config.num_blocks
        inner_size = block_size * config.hidden_size_factor
        self.weight1 = nn.Parameter(torch.zeros(config.num_blocks, block_size, inner_size, 2))
        self.bias1 = nn.Parameter(torch.zeros(config.num_blocks, inner_size, 2))
        self.weight2 = nn.Parameter(torch.zeros(config.num_blocks, inner_size, block_size, 2))
        self.bias2 = nn.Parameter(torch.zeros(config.num_blocks, block_size, 2))

    def kept_modes(self, height: int, width: int) -> tuple[int, int, int]:
        """``(top, bottom, columns)``: the computed modes of a ``(batch, height, width // 2 + 1, ...)`` spectrum are
        rows ``[:top]`` and ``[bottom:]`` of its first ``columns`` columns; all of them when ``top == bottom`` and
        ``columns == width // 2 + 1``.

        The lowest frequencies are those with the smallest absolute value: along the height axis (full FFT, stored
        0, 1, ..., -2, -1) rows at both ends, along the width axis (``rfft``, stored 0..w/2) the first columns.
        Python integers from the grid size, so an exported graph has no data-dependent indexing.
        """
        kept_rows = max(1, int((height // 2 + 1) * self.hard_thresholding_fraction))
        kept_cols = max(1, int((width // 2 + 1) * self.hard_thresholding_fraction))
        # rows with |frequency| < kept_rows: 0 .. kept_rows - 1 and, from the end, -(kept_rows - 1) .. -1
        return kept_rows, max(kept_rows, height - kept_rows + 1), kept_cols

    def spectral_mlp(self, modes: torch.Tensor) -> torch.Tensor:
        """The block-diagonal complex MLP and the soft-shrink on modes ``(..., hidden, 2)`` (real, imaginary).
        ReLU and soft-shrink act on real and imaginary parts separately, as in the AFNO code."""
        blocks = modes.flatten(-2).unflatten(-1, (self.num_blocks, -1))
        hidden = torch.relu(complex_linear(blocks, self.weight1, self.bias1))
        mixed = complex_linear(hidden, self.weight2, self.bias2)
        if self.sparsity_threshold > 0:
            mixed = nn.functional.softshrink(mixed, self.sparsity_threshold)
        return mixed.flatten(-2).unflatten(-1, (-1, 2))

    def forward(
        self, hidden_states: torch.Tensor, grid_size: tuple[int, int], **kwargs
    ) -> tuple[torch.Tensor, None]:
        """``hidden_states``: tokens ``(batch, height * width, hidden)`` of a ``grid_size = (height, width)`` grid in
        row-major order; returns the mixed tokens, same shape."""
        dtype = hidden_states.dtype
        height, width = grid_size
        top, bottom, columns = self.kept_modes(height, width)
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            grid = hidden_states.float().unflatten(1, (height, width))
            # (batch, height, width // 2 + 1, hidden, 2): real and imaginary parts, computed on as real tensors
            spectrum = torch.view_as_real(rfft2_ortho(grid))
            kept = torch.cat((spectrum[:, :top, :columns], spectrum[:, bottom:, :columns]), dim=1)
            mixed = self.spectral_mlp(kept)
            if bottom > top:  # the dropped rows are zero
                zeros = mixed.new_zeros(mixed.shape[0], bottom - top, *mixed.shape[2:])
                mixed = torch.cat((mixed[:, :top], zeros, mixed[:, top:]), dim=1)
            # the dropped columns are zero
            mixed = nn.functional.pad(mixed, (0, 0, 0, 0, 0, spectrum.shape[2] - columns))
            mixed = irfft2_ortho(torch.view_as_complex(mixed), (height, width))
        mixed = mixed.flatten(1, 2).to(dtype)
        return (mixed + hidden_states if self.spectral_residual else mixed), None


class AFNOPreTrainedModel(VisionPreTrainedModel):
    config_class = AFNOConfig
    base_model_prefix = "afno"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """Truncated-normal linear weights and positions; spectral weights and biases ~ N(0, 0.02^2) as in the AFNO
        code."""
        init_patch_model_weights(module, self.config.initializer_range)
        if isinstance(module, AFNOSpectralMixing):
            for parameter in (module.weight1, module.bias1, module.weight2, module.bias2):
                init.normal_(parameter, std=0.02)


class AFNOModel(FourierGridModelMixin, AFNOPreTrainedModel):
    """Patch embedding + positions -> AFNO blocks (pre-LN, residuals around the spectral mixing and the MLP; see
    ``AFNOConfig.spectral_residual`` for the official code's block) -> LayerNorm; ``pooler_output`` is the mean
    token. ``last_hidden_state`` is ``(batch, patches, hidden)``."""

    def __init__(self, config: AFNOConfig):
        super().__init__(config)
        self.encoder = FourierGridEncoder(
            config, AFNOSpectralMixing, mixer_residual=True, mixer_drop_path=not config.spectral_residual
        )
        self.post_init()


class AFNOForImageClassification(ImageClassificationMixin, AFNOPreTrainedModel):
    """AFNO with a linear classifier on the mean of the final tokens."""

    def __init__(self, config: AFNOConfig):
        super().__init__(config)
        self.afno = AFNOModel(config)
        self.init_classification_head(config)
        self.post_init()
