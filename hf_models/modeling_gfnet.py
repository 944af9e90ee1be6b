"""The Global Filter Network (GFNet) of Rao et al. (2021), "Global Filter Networks for Image Classification", as a
Hugging Face model.

GFNet replaces ViT's self-attention with a *global filter*: the token grid goes to the 2-D Fourier domain
(``rfft2``), every frequency of every channel is multiplied by a learned complex weight, and ``irfft2`` brings it back.
By the convolution theorem this is a circular convolution of each channel with a learned kernel as large as the whole
grid, in O(N log N) for N tokens instead of attention's O(N^2). (The seed text of this project described GFNet as
grouped convolutions with channel attention; that is not the published model.)
"""

import torch
from torch import nn
from transformers import initialization as init

from .configuration_gfnet import GFNetConfig
from .layers import (
    FourierGridEncoder,
    FourierGridModelMixin,
    ImageClassificationMixin,
    VisionPreTrainedModel,
    init_patch_model_weights,
    irfft2_ortho,
    resize_grid,
    rfft2_ortho,
)


class GlobalFilter(nn.Module):
    """``irfft2(rfft2(x) * K)`` over the token grid, channel by channel, with ``norm="ortho"``.

    ``complex_weight`` holds K as a REAL tensor ``(grid, grid // 2 + 1, hidden, 2)`` (real, imaginary), viewed as
    complex in ``forward``: a complex parameter would break ``model.dtype`` and mixed-precision casting. The FFTs run
    in float32 with autocast disabled, whatever the input dtype (half-precision FFTs are inaccurate, and limited to
    power-of-two sizes on GPU). For a grid of another size, the filter's frequency response is resized (see
    ``filter_for``).
    """

    def __init__(self, config: GFNetConfig):
        super().__init__()
        grid = config.grid_size
        self.complex_weight = nn.Parameter(torch.zeros(grid, grid // 2 + 1, config.hidden_size, 2))

    def filter_for(self, height: int, width: int) -> torch.Tensor:
        """The complex filter for a ``height x width`` grid, shape ``(height, width // 2 + 1, hidden)``.

        Along the height axis the FFT stores frequencies 0, 1, ..., -2, -1; they are put in increasing order
        (``fftshift``) before the bilinear resize and back after, so that interpolation blends neighbouring
        frequencies instead of the highest positive with the most negative one. The width axis holds only
        frequencies 0..w/2 (``rfft``), already in order.
        """
        weight = self.complex_weight.float()
        if weight.shape[:2] != (height, width // 2 + 1):
            ordered = torch.fft.fftshift(weight, dim=0).flatten(2)
            resized = resize_grid(ordered, height, width // 2 + 1, mode="bilinear")
            weight = torch.fft.ifftshift(resized.unflatten(2, (-1, 2)), dim=0)
        return torch.view_as_complex(weight.contiguous())

    def forward(
        self, hidden_states: torch.Tensor, grid_size: tuple[int, int], **kwargs
    ) -> tuple[torch.Tensor, None]:
        """``hidden_states``: tokens ``(batch, height * width, hidden)`` of a ``grid_size = (height, width)`` grid in
        row-major order; returns the filtered tokens, same shape."""
        dtype = hidden_states.dtype
        height, width = grid_size
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            grid = hidden_states.float().unflatten(1, (height, width))
            spectrum = rfft2_ortho(grid) * self.filter_for(height, width)
            filtered = irfft2_ortho(spectrum, (height, width))
        return filtered.flatten(1, 2).to(dtype), None


class GFNetPreTrainedModel(VisionPreTrainedModel):
    config_class = GFNetConfig
    base_model_prefix = "gfnet"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """As in the GFNet code: truncated-normal weights and positions, filters ~ N(0, 0.02^2)."""
        init_patch_model_weights(module, self.config.initializer_range)
        if isinstance(module, GlobalFilter):
            init.normal_(module.complex_weight, std=0.02)


class GFNetModel(FourierGridModelMixin, GFNetPreTrainedModel):
    """Patch embedding + positions -> GFNet blocks -> LayerNorm; ``pooler_output`` is the mean token.
    ``last_hidden_state`` is ``(batch, patches, hidden)``, patches in row-major order."""

    def __init__(self, config: GFNetConfig):
        super().__init__(config)
        self.encoder = FourierGridEncoder(config, GlobalFilter, mixer_residual=False)
        self.post_init()


class GFNetForImageClassification(ImageClassificationMixin, GFNetPreTrainedModel):
    """GFNet with a linear classifier on the mean of the final tokens."""

    def __init__(self, config: GFNetConfig):
        super().__init__(config)
        self.gfnet = GFNetModel(config)
        self.init_classification_head(config)
        self.post_init()
