"""The Adaptive Fourier Neural Operator (AFNO) of Guibas et al. (2022), "Adaptive Fourier Neural Operators: Efficient
Token Mixers for Transformers", as an image classifier and Hugging Face model.

AFNO mixes tokens in the 2-D Fourier domain like GFNet, but instead of one fixed complex weight per frequency it
applies a small complex MLP to every frequency's channel vector (the same MLP at every frequency, so it adapts to the
input like attention does), with block-diagonal weights to keep it cheap, soft-thresholding that makes the spectrum
sparse, and optional hard truncation of the high frequencies.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from .configuration_afno import AFNOConfig
from .layers import FourierGridEncoder, FourierGridModelMixin, ImageClassificationMixin, init_patch_model_weights


def complex_relu(z: torch.Tensor) -> torch.Tensor:
    """ReLU on the real and imaginary parts separately, as in the AFNO code."""
    return torch.complex(torch.relu(z.real), torch.relu(z.imag))


class AFNOSpectralMixing(nn.Module):
    """``irfft2(S_lambda(MLP(rfft2(x))))`` over the token grid, with ``norm="ortho"``.

    The channels of every Fourier mode are split into ``num_blocks`` blocks; each block goes through its own
    two-layer complex MLP ``W2 ReLU(W1 z + b1) + b2`` (weights shared across modes). ``S_lambda`` is the soft-shrink
    with ``lambda = sparsity_threshold`` on real and imaginary parts. Only the lowest ``hard_thresholding_fraction``
    of the frequencies along each axis are computed; the others are set to zero.

    Weights are REAL tensors with a trailing (real, imaginary) axis, viewed as complex in ``forward`` (complex
    parameters would break ``model.dtype``). The FFTs and the spectral MLP run in float32 with autocast disabled.

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

    def kept_modes(self, height: int, width: int, device=None) -> tuple | None:
        """Index of the computed modes in a ``(batch, height, width // 2 + 1, hidden)`` spectrum, or ``None`` when
        all are kept.

        The lowest frequencies are those with the smallest absolute value: along the height axis (full FFT, stored
        0, 1, ..., -2, -1) rows at both ends, along the width axis (``rfft``, stored 0..w/2) the first columns.
        """
        kept_rows = max(1, int((height // 2 + 1) * self.hard_thresholding_fraction))
        kept_cols = max(1, int((width // 2 + 1) * self.hard_thresholding_fraction))
        if kept_rows == height // 2 + 1 and kept_cols == width // 2 + 1:
            return None
        row_frequencies = torch.fft.fftfreq(height, 1.0 / height, device=device).abs()
        rows = (row_frequencies < kept_rows).nonzero().squeeze(1)
        return slice(None), rows, slice(0, kept_cols)

    def spectral_mlp(self, modes: torch.Tensor) -> torch.Tensor:
        """``modes``: complex ``(..., hidden)``; the block-diagonal complex MLP and the soft-shrink."""
        blocks = modes.unflatten(-1, (self.num_blocks, -1))
        weight1, bias1, weight2, bias2 = (
            torch.view_as_complex(p.float().contiguous()) for p in (self.weight1, self.bias1, self.weight2, self.bias2)
        )
        hidden = complex_relu(torch.einsum("...ni,nio->...no", blocks, weight1) + bias1)
        mixed = torch.einsum("...ni,nio->...no", hidden, weight2) + bias2
        if self.sparsity_threshold > 0:
            mixed = torch.view_as_complex(nn.functional.softshrink(torch.view_as_real(mixed), self.sparsity_threshold))
        return mixed.flatten(-2)

    def forward(
        self, hidden_states: torch.Tensor, grid_size: tuple[int, int], **kwargs
    ) -> tuple[torch.Tensor, None]:
        """``hidden_states``: tokens ``(batch, height * width, hidden)`` of a ``grid_size = (height, width)`` grid in
        row-major order; returns the mixed tokens, same shape."""
        dtype = hidden_states.dtype
        height, width = grid_size
        modes = self.kept_modes(height, width, hidden_states.device)
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            grid = hidden_states.float().unflatten(1, (height, width))
            spectrum = torch.fft.rfft2(grid, dim=(1, 2), norm="ortho")
            if modes is None:
                spectrum = self.spectral_mlp(spectrum)
            else:
                truncated = torch.zeros_like(spectrum)
                truncated[modes] = self.spectral_mlp(spectrum[modes])
                spectrum = truncated
            mixed = torch.fft.irfft2(spectrum, s=(height, width), dim=(1, 2), norm="ortho")
        mixed = mixed.flatten(1, 2).to(dtype)
        return (mixed + hidden_states if self.spectral_residual else mixed), None


class AFNOPreTrainedModel(PreTrainedModel):
    config_class = AFNOConfig
    base_model_prefix = "afno"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["MixerBlock"]
    supports_gradient_checkpointing = True  # the blocks are GradientCheckpointingLayers

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """Truncated-normal linear weights and positions; spectral weights and biases ~ N(0, 0.02^2) as in the AFNO
        code."""
        init_patch_model_weights(module, self.config.initializer_range)
        if isinstance(module, AFNOSpectralMixing):
            for parameter in (module.weight1, module.bias1, module.weight2, module.bias2):
                init.normal_(parameter, std=0.02)
        elif isinstance(module, FourierGridEncoder):
            init.trunc_normal_(module.position_embeddings, std=self.config.initializer_range)


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
        self.num_labels = config.num_labels
        self.afno = AFNOModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()
