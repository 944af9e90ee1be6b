"""Sinusoidal positions against the closed form of Vaswani et al. (2017), section 3.5."""

import math

import pytest
import torch

from hf_models.positional import SinusoidalPositionalEmbedding, sinusoidal_position_encoding


@pytest.mark.parametrize("dim", [8, 7, 512])
def test_matches_closed_form(dim):
    table = sinusoidal_position_encoding(torch.arange(50), dim)
    for pos in (0, 1, 17, 49):
        for i in range(dim):
            angle = pos / 10000 ** ((i - i % 2) / dim)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert abs(table[pos, i].item() - expected) < 1e-5


def test_module_casts_and_rejects_positions_beyond_maximum():
    module = SinusoidalPositionalEmbedding(16, max_positions=10)
    assert module(torch.arange(10), dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="max_position_embeddings=10"):
        module(torch.arange(11))


def test_relative_position_is_a_fixed_rotation():
    """The paper's motivation: PE(pos + k) is a linear function (a rotation per frequency) of PE(pos)."""
    dim, k = 16, 3
    table = sinusoidal_position_encoding(torch.arange(40), dim)
    omega = 10000 ** (-torch.arange(0, dim, 2) / dim)
    sin_k, cos_k = torch.sin(omega * k), torch.cos(omega * k)
    sin_p, cos_p = table[:30, 0::2], table[:30, 1::2]
    assert torch.allclose(sin_p * cos_k + cos_p * sin_k, table[k : 30 + k, 0::2], atol=1e-5)
    assert torch.allclose(cos_p * cos_k - sin_p * sin_k, table[k : 30 + k, 1::2], atol=1e-5)
