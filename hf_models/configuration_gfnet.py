"""Configuration of the Global Filter Network (GFNet) of Rao et al. (2021), "Global Filter Networks for Image
Classification"."""

from .configuration_vision import PatchImageConfig


class GFNetConfig(PatchImageConfig):
    """GFNet: the attention of ViT replaced by a learned global filter in the 2-D Fourier domain (one complex weight
    per frequency and channel), with learned positions and mean pooling.

    Defaults are GFNet-XS (hidden 384, 12 layers) at 224 pixels, patch 16. The filter of every layer has
    ``grid_size x (grid_size // 2 + 1)`` frequencies; it needs no extra field. All fields are those of
    ``PatchImageConfig``.
    """

    model_type = "gfnet"

    def __init__(self, hidden_size: int = 384, **kwargs):
        super().__init__(hidden_size=hidden_size, **kwargs)
