"""Position encodings shared by every model of the package.

The sinusoidal table of Vaswani et al. (2017), section 3.5:

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

It is computed from the position ids on every call rather than stored: a stored non-persistent buffer comes back as
uninitialised memory after ``from_pretrained`` in transformers 5 (meta-device loading), and a persistent one would
put a constant table into every checkpoint. Computing it is a handful of element-wise ops on a (length, d_model)
tensor, negligible next to one attention layer.
"""

import math

import torch
from torch import nn


def sinusoidal_position_encoding(position_ids: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Closed-form table for arbitrary (possibly batched) integer positions: ``(*position_ids.shape, dim)``, fp32.

    Even feature indices hold sines and odd ones cosines, interleaved as in the paper (not concatenated halves as
    some implementations do). An odd ``dim`` ends with a sine.
    """
    two_i = torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float32)
    inv_freq = torch.exp(-math.log(base) * two_i / dim)
    angles = position_ids.to(torch.float32).unsqueeze(-1) * inv_freq
    table = torch.empty(*position_ids.shape, dim, device=position_ids.device, dtype=torch.float32)
    table[..., 0::2] = torch.sin(angles)
    table[..., 1::2] = torch.cos(angles[..., : dim // 2])
    return table


class SinusoidalPositionalEmbedding(nn.Module):
    """Adds nothing learnable: maps ``position_ids`` to the fixed sinusoidal table in the activations' dtype."""

    def __init__(self, dim: int, max_positions: int, base: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.max_positions = max_positions
        self.base = base

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The over-long check reads the positions, so it runs in eager mode only: ``torch.export`` /
        ``torch.compile`` trace no data-dependent branch, and an exported graph extrapolates the sinusoids instead."""
        tracing = torch.compiler.is_compiling()
        if not tracing and position_ids.numel() and int(position_ids.max()) >= self.max_positions:
            raise ValueError(
                f"position {int(position_ids.max())} is beyond max_position_embeddings={self.max_positions}; "
                "truncate the input or raise max_position_embeddings in the config"
            )
        return sinusoidal_position_encoding(position_ids, self.dim, self.base).to(dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_positions={self.max_positions}, base={self.base}"
