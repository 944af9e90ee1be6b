"""The shared attention layer against torch.nn.MultiheadAttention, eager against SDPA, and the masks."""

import pytest
import torch
from torch import nn
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

from hf_models import TransformerConfig
from hf_models.attention import MultiHeadAttention, causal_mask_bool

HIDDEN, HEADS = 32, 4


def make_pair(implementation="eager", is_cross_attention=False, is_causal=False):
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=10, hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=64)
    config._attn_implementation = implementation
    ours = MultiHeadAttention(config, is_cross_attention=is_cross_attention, is_causal=is_causal, layer_idx=0).eval()
    reference = nn.MultiheadAttention(HIDDEN, HEADS, batch_first=True).eval()
    with torch.no_grad():
        ours.in_proj.weight.copy_(reference.in_proj_weight)
        ours.in_proj.bias.copy_(reference.in_proj_bias)
        ours.out_proj.weight.copy_(reference.out_proj.weight)
        ours.out_proj.bias.copy_(reference.out_proj.bias)
    return ours, reference


def mask_for(layer, attention_mask, query, memory=None, causal=False):
    """The mask the models build, in the format of ``layer``'s attention implementation (transformers' helpers)."""
    config = layer.config
    if causal:
        return create_causal_mask(config=config, inputs_embeds=query, attention_mask=attention_mask, cache=None)
    return create_bidirectional_mask(
        config=config, inputs_embeds=query, attention_mask=attention_mask, encoder_hidden_states=memory
    )


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_self_attention_matches_torch_multihead_attention(implementation):
    ours, reference = make_pair(implementation)
    x = torch.randn(3, 7, HIDDEN)
    expected, _ = reference(x, x, x, need_weights=False)
    actual, _ = ours(x)
    assert (actual - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_padding_mask_matches_key_padding_mask(implementation):
    ours, reference = make_pair(implementation)
    x = torch.randn(3, 7, HIDDEN)
    attention_mask = torch.ones(3, 7, dtype=torch.long)
    attention_mask[1, 4:] = 0
    attention_mask[2, 2:] = 0
    expected, _ = reference(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)
    actual, _ = ours(x, attention_mask=mask_for(ours, attention_mask, x))
    assert (actual - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_causal_self_attention_matches_attn_mask(implementation):
    ours, reference = make_pair(implementation, is_causal=True)
    x = torch.randn(2, 6, HIDDEN)
    expected, _ = reference(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(6), need_weights=False)
    # the fast path: no mask tensor, the kernel's is_causal flag
    actual, _ = ours(x)
    assert (actual - expected).abs().max() <= 1e-5
    # the explicit path: a causal mask tensor combined with padding (here: none)
    explicit, _ = ours(x, attention_mask=mask_for(ours, torch.ones(2, 6, dtype=torch.long), x, causal=True))
    assert (explicit - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_cross_attention_matches_torch_with_padded_memory(implementation):
    ours, reference = make_pair(implementation, is_cross_attention=True)
    query, memory = torch.randn(2, 5, HIDDEN), torch.randn(2, 9, HIDDEN)
    memory_mask = torch.ones(2, 9, dtype=torch.long)
    memory_mask[0, 6:] = 0
    expected, _ = reference(query, memory, memory, key_padding_mask=memory_mask == 0, need_weights=False)
    actual, _ = ours(query, key_value_states=memory, attention_mask=mask_for(ours, memory_mask, query, memory))
    assert (actual - expected).abs().max() <= 1e-5


def test_heads_split_the_feature_dimension_not_the_sequence():
    """Each head sees every position: permuting the sequence permutes the output (no per-chunk attention)."""
    ours, _ = make_pair()
    x = torch.randn(1, 8, HIDDEN)
    permutation = torch.randperm(8)
    assert torch.allclose(ours(x)[0][:, permutation], ours(x[:, permutation])[0], atol=1e-6)
    _, weights = ours(x, output_attentions=True)
    assert weights.shape == (1, HEADS, 8, 8)


def test_eager_and_sdpa_agree_with_masks_and_dropout_off():
    eager, _ = make_pair("eager", is_causal=True)
    sdpa, _ = make_pair("sdpa", is_causal=True)
    x = torch.randn(4, 10, HIDDEN)
    attention_mask = torch.ones(4, 10, dtype=torch.long)
    attention_mask[3, 7:] = 0
    eager_output = eager(x, attention_mask=mask_for(eager, attention_mask, x, causal=True))[0]
    sdpa_output = sdpa(x, attention_mask=mask_for(sdpa, attention_mask, x, causal=True))[0]
    assert (eager_output - sdpa_output).abs().max() <= 1e-5


def test_output_attentions_falls_back_to_eager_weights():
    sdpa, _ = make_pair("sdpa")
    x = torch.randn(2, 5, HIDDEN)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    output, weights = sdpa(x, attention_mask=mask_for(sdpa, attention_mask, x), output_attentions=True)
    assert torch.allclose(weights.sum(-1), torch.ones(2, HEADS, 5))
    assert weights[1, :, :, 3:].abs().max() == 0


def test_causal_mask_puts_the_queries_at_the_end_of_the_keys():
    assert causal_mask_bool(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_self_attention_cache_gives_same_result_as_full_sequence(implementation):
    ours, _ = make_pair(implementation, is_causal=True)
    x = torch.randn(2, 6, HIDDEN)
    full, _ = ours(x)
    cache = DynamicCache()
    steps = [ours(x[:, t : t + 1], cache=cache)[0] for t in range(6)]
    assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5
    assert cache.get_seq_length() == 6


def test_cross_attention_cache_computes_memory_projection_once():
    ours, _ = make_pair(is_cross_attention=True)
    memory = torch.randn(1, 4, HIDDEN)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    first, _ = ours(torch.randn(1, 1, HIDDEN), key_value_states=memory, cache=cache)
    assert cache.is_updated[0]
    # a different memory is ignored once cached: the keys/values come from the cache
    query = torch.randn(1, 1, HIDDEN)
    cached, _ = ours(query, key_value_states=torch.zeros_like(memory), cache=cache)
    fresh, _ = ours(query, key_value_states=memory)
    assert torch.allclose(cached, fresh, atol=1e-6)
