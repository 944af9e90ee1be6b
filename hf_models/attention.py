"""Multi-head attention, masks and key/value caching, written once for every attention model of the package.

Heads split the FEATURE dimension: ``(batch, length, hidden)`` is viewed as ``(batch, length, heads, head_dim)``
and each head attends over the whole sequence with its own ``head_dim``-sized slice of the projections (Vaswani
et al. 2017, section 3.2.2). The source text this project replaces reshaped ``(b, l, n)`` into ``(b, heads, -1, n)``,
which splits the SEQUENCE into chunks so that no head ever sees the whole input; that is not multi-head attention.

The score computation is pluggable through transformers' attention interface: ``config._attn_implementation`` picks
``"eager"`` (this file's reference path, which can return the attention weights), ``"sdpa"``
(``torch.nn.functional.scaled_dot_product_attention``, fused and memory-efficient) or ``"flex_attention"``
(``torch.nn.attention.flex_attention``, compiled block-sparse kernels).

A real config field, ``attention_type``, picks the score function itself through the registry of
hf_models.attention_registry: ``"softmax"`` (this file) or ``"performer"`` (FAVOR+, hf_models.performer).

Masks are made by transformers' own helpers (``masking_utils.create_causal_mask`` / ``create_bidirectional_mask``),
in the form the chosen implementation wants: an additive float tensor ``(batch, 1, query_len, key_len)`` for eager (0
where a query may attend, the dtype's most negative finite value where it may not), a boolean one (True = attend) for
SDPA, a ``BlockMask`` for flex attention, or ``None`` when nothing needs masking. The helpers size the key axis from
the cache (a static cache's keys are its full length), and they read no tensor values while exporting.
"""

import torch
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from .validation import per_layer_size


def causal_mask_bool(query_length: int, key_length: int, device=None) -> torch.Tensor:
    """``(query_length, key_length)``, True where query i may see key j: the queries are the LAST ``query_length``
    positions of the keys (cached decoding), so query i sits at absolute position ``key_length - query_length + i``."""
    offset = key_length - query_length
    query_positions = torch.arange(query_length, device=device)[:, None] + offset
    return torch.arange(key_length, device=device)[None, :] <= query_positions


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    is_causal: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T * scaling + mask) V with the weights materialised. Inputs ``(batch, heads, length, head_dim)``;
    returns ``(batch, query_len, heads, head_dim)`` and the weights ``(batch, heads, query_len, key_len)``."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # an SDPA-style mask (output_attentions)
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    elif is_causal and query.size(-2) > 1:
        allowed = causal_mask_bool(query.size(-2), key.size(-2), device=query.device)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with one packed input projection, laid out like ``torch.nn.MultiheadAttention``.

    ``in_proj`` maps ``hidden_size -> 3 * hidden_size`` (query, key, value stacked in that order; ``3 * heads *
    head_dim`` after head pruning), so weights copy
    one-to-one from ``nn.MultiheadAttention.in_proj_weight``. Self-attention does one matrix product for Q, K and V;
    cross-attention projects the query from the decoder and K, V from the encoder states with the two slices.

    Caching (``layer_idx`` set and a transformers ``Cache`` passed): self-attention appends this step's K, V to the
    cache; cross-attention computes the encoder's K, V once and reuses them at every later step.

    The score computation is this class's; :class:`hf_models.performer.PerformerAttention` subclasses it with FAVOR+.
    """

    def __init__(
        self,
        config,
        is_cross_attention: bool = False,
        is_causal: bool = False,
        layer_idx: int | None = None,
        heads_field: str = "num_attention_heads_per_layer",
    ):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.head_dim = self.hidden_size // config.num_attention_heads
        # a pruned model records this layer's remaining heads in the config list ``heads_field`` (hf_models.pruning)
        self.heads_field = heads_field
        self.num_heads = per_layer_size(config, heads_field, layer_idx, config.num_attention_heads)
        self.inner_size = self.num_heads * self.head_dim
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_cross_attention = is_cross_attention
        self.is_causal = is_causal
        self.layer_idx = layer_idx
        self.in_proj = nn.Linear(self.hidden_size, 3 * self.inner_size)
        self.out_proj = nn.Linear(self.inner_size, self.hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, length, hidden) -> (batch, heads, length, head_dim): the feature dimension is split."""
        return x.view(*x.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)

    def _query_key_value(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention: one packed product for the query, key and value of every head."""
        return tuple(self._split_heads(t) for t in self.in_proj(hidden_states).chunk(3, dim=-1))

    def _cross_attention_query(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None) -> torch.Tensor:
        """Cross-attention: the query projection alone (keys and values come from the encoder output or the cache)."""
        if key_value_states is None:
            raise ValueError("cross-attention needs key_value_states (the encoder output)")
        weight, bias = self.in_proj.weight[: self.inner_size], self.in_proj.bias[: self.inner_size]
        return self._split_heads(nn.functional.linear(hidden_states, weight, bias))

    def _key_value(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = self.in_proj.weight[self.inner_size :], self.in_proj.bias[self.inner_size :]
        key, value = nn.functional.linear(source, weight, bias).chunk(2, dim=-1)
        return self._split_heads(key), self._split_heads(value)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(output, weights)``: the weights (for transformers' output recorder) only on the eager path, which
        ``output_attentions=True`` selects by itself."""
        kwargs.pop("is_causal", None)  # this layer knows whether it is causal; the mask carries the rest
        output_attentions = bool(kwargs.get("output_attentions"))
        batch_size, query_length, _ = hidden_states.shape
        if self.is_cross_attention:
            query = self._cross_attention_query(hidden_states, key_value_states)
            cross_cache = cache.cross_attention_cache if isinstance(cache, EncoderDecoderCache) else None
            if cross_cache is not None and cache.is_updated.get(self.layer_idx):
                key, value = cross_cache.layers[self.layer_idx].keys, cross_cache.layers[self.layer_idx].values
            else:
                key, value = self._key_value(key_value_states)
                if cross_cache is not None:
                    key, value = cross_cache.update(key, value, self.layer_idx)
                    cache.is_updated[self.layer_idx] = True
        else:
            query, key, value = self._query_key_value(hidden_states)
            self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
            if self_cache is not None:
                key, value = self_cache.update(key, value, self.layer_idx)

        implementation = self.config._attn_implementation
        if output_attentions and implementation != "eager":
            if not isinstance(attention_mask, torch.Tensor | None):
                raise ValueError(
                    "output_attentions=True needs attn_implementation='eager' or 'sdpa': flex attention's block mask "
                    "cannot be replayed on the eager path that returns the weights"
                )
            implementation = "eager"
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=self.is_causal and attention_mask is None and query_length == key.size(-2),
            **kwargs,
        )
        output = self.out_proj(output.reshape(batch_size, query_length, self.inner_size))
        return output, weights
