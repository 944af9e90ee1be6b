"""Performer attention: FAVOR+, the random-feature attention of Choromanski et al. (2021), "Rethinking Attention
with Performers", whose cost is linear in the sequence length (see :func:`favor_attention`).

``config.attention_type = "performer"`` selects :class:`PerformerAttention` (hf_models.attention_registry). It is a
config field, not an ``attn_implementation``, because it changes the model (its random features are a saved buffer)
and must survive ``save_pretrained``.
"""

import functools
import math
from typing import NamedTuple

import torch
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicLayer, EncoderDecoderCache
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs

from .attention import MultiHeadAttention

# ---------------------------------------------------------------------------------------------------------------------
# Performer FAVOR+ (Choromanski et al. 2021): softmax attention through positive orthogonal random features
# ---------------------------------------------------------------------------------------------------------------------
#
# softmax(Q K^T / sqrt(d)) V is D^-1 A V with A_ij = exp(q_i . k_j / sqrt(d)). FAVOR+ writes the kernel as an
# expectation over Gaussian w of positive features, exp(x . y) = E[phi(x) . phi(y)] with
# phi(x) = exp(w . x - |x|^2 / 2) / sqrt(m) (Lemma 1), applied to x = q * d^-1/4 and y = k * d^-1/4. With m features
# drawn once, A ~ phi(Q) phi(K)^T and the products re-associate: D^-1 A V ~ phi(Q) (phi(K)^T V) / (phi(Q) phi(K)^T 1),
# linear in the length instead of quadratic. Orthogonal rows (with chi-distributed norms) lower the estimator's
# variance (Theorem 2). The positive features keep every weight >= 0, unlike sin/cos random Fourier features, whose
# denominators can cross zero. The 1/sqrt(m) factor cancels in the ratio and is not applied.
#
# Numerical stabilisers (constants subtracted inside exp, so nothing overflows; each cancels in the ratio):
# queries use their own row maximum; keys use the maximum over every real key seen so far per (batch, head), a
# constant for all keys of the row. During cached generation that maximum is a running one: the cached sums are
# rescaled when a new key raises it, so a cached step uses exactly the stabiliser an uncached pass over the same
# prefix uses. The whole feature computation runs in fp32 (autocast off): exp of the features underflows in fp16.

FAVOR_BLOCK_SIZE = 256  # tokens per block whose features are recomputed in backward: bounds the temporaries
FAVOR_CAUSAL_BLOCK_SIZE = 1024  # causal: tokens between the running states kept for backward
FAVOR_CHUNK_SIZE = 64  # tokens per chunk of the causal prefix sums (the masked (chunk, chunk) products)


def default_num_random_features(head_dim: int) -> int:
    """m = d ln d, the order of features Performer's analysis asks for (266 for head_dim 64), at least d."""
    return max(head_dim, round(head_dim * math.log(head_dim)))



def gaussian_orthogonal_random_matrix(
    num_features: int, dim: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(num_features, dim)`` rows w_i ~ N(0, I_d) made exactly orthogonal within each block of ``dim`` rows (the QR
    of a Gaussian matrix), each row rescaled to the norm of an independent Gaussian vector (chi distribution with
    ``dim`` degrees of freedom), so every row is still marginally N(0, I_d): FAVOR+'s orthogonal random features.

    Drawn in fp32 whatever the default dtype (``from_config(..., dtype=torch.bfloat16)`` sets it while the model is
    built, and there is no bf16 QR); the caller's buffer takes its own dtype on copy."""
    blocks = []
    for _ in range(math.ceil(num_features / dim)):
        orthogonal, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float32))
        blocks.append(orthogonal.T)
    norms = torch.randn(num_features, dim, generator=generator, dtype=torch.float32).norm(dim=1, keepdim=True)
    return torch.cat(blocks)[:num_features] * norms


class FavorState(NamedTuple):
    """What the keys seen so far contribute: ``kv = sum_j phi(k_j) v_j^T`` ``(batch, heads, m, head_dim)``,
    ``z = sum_j phi(k_j)`` ``(batch, heads, m)``, both computed with the key stabiliser ``stabiliser``
    ``(batch, heads)`` (-inf before any key). Constant size whatever the length: the performer's cache."""

    kv: torch.Tensor
    z: torch.Tensor
    stabiliser: torch.Tensor


def feature_logits(x: torch.Tensor, projection: torch.Tensor, data_scale: float) -> torch.Tensor:
    """log of the unnormalised positive feature, w . x' - |x'|^2 / 2 with x' = x * data_scale: ``(..., m)``."""
    x = x * data_scale
    return torch.matmul(x, projection.T) - 0.5 * x.square().sum(-1, keepdim=True)


def query_features(query: torch.Tensor, projection: torch.Tensor, data_scale: float) -> torch.Tensor:
    """phi(q) up to a per-query factor (its row maximum, subtracted before exp), which cancels in that query's ratio."""
    logits = feature_logits(query, projection, data_scale)
    return torch.exp(logits - logits.detach().amax(-1, keepdim=True))


def key_features(key, projection, data_scale: float, stabiliser: torch.Tensor, key_mask=None) -> torch.Tensor:
    """phi(k) times exp(-stabiliser) (one constant per batch and head); padded keys (``key_mask`` False) get zero
    features, so they add nothing to either sum. Masked before exp, so their values cannot overflow."""
    logits = feature_logits(key, projection, data_scale) - stabiliser[..., None, None]
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, :, None], -math.inf)
    return torch.exp(logits)


@torch.no_grad()
def key_stabiliser(key, projection, data_scale: float, key_mask=None, block_size: int = FAVOR_BLOCK_SIZE):
    """Maximum feature logit over the real keys, per (batch, head): ``(batch, heads)``, -inf where there is none."""
    maxima = []
    for start in range(0, key.size(-2), block_size):
        logits = feature_logits(key[..., start : start + block_size, :], projection, data_scale).amax(-1)
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask[:, None, start : start + block_size], -math.inf)
        maxima.append(logits.amax(-1))
    return torch.stack(maxima).amax(0)


def _normalise(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """D^-1 (numerator); a query that sees no real key (denominator 0) gets 0 instead of NaN."""
    return numerator * _inverse(denominator)


def _inverse(denominator: torch.Tensor) -> torch.Tensor:
    tiny = torch.finfo(denominator.dtype).tiny
    return torch.where(denominator > tiny, 1.0 / denominator.clamp_min(tiny), 0.0)


def _readout(query, kv, z, projection, data_scale):
    phi = query_features(query, projection, data_scale)
    return _normalise(torch.matmul(phi, kv), torch.matmul(phi, z.unsqueeze(-1)))


def _feature_input_gradient(x, d_logits, projection, data_scale):
    """Gradient w.r.t. x of feature_logits(x) given the gradient of the logits: (W - x') d_logits, times the data
    scale. The stabilisers count as constants: the attention output does not depend on them."""
    x = x * data_scale
    return (torch.matmul(d_logits, projection) - x * d_logits.sum(-1, keepdim=True)) * data_scale


class _BidirectionalFavor(torch.autograd.Function):
    """Bidirectional FAVOR+ with a hand-written backward that recomputes the features block by block.

    Nothing of size ``(length, m)`` is kept between the passes, and the output and the input gradients are written in
    place, so training memory is the inputs, the output, their gradients and one block of temporaries: at 8k tokens
    no more than SDPA's fused kernel needs (see benchmarks/bench_performer_attention.py). The key state (kv, z) is
    returned for caching, without gradient.
    """

    @staticmethod
    def forward(ctx, query, key, value, key_mask, projection, data_scale, stabiliser, block_size):
        batch, heads, _, head_dim = value.shape
        kv = value.new_zeros(batch, heads, projection.size(0), head_dim)
        z = value.new_zeros(batch, heads, projection.size(0))
        for start in range(0, key.size(-2), block_size):
            block = slice(start, start + block_size)
            mask = None if key_mask is None else key_mask[:, block]
            phi = key_features(key[..., block, :], projection, data_scale, stabiliser, mask)
            kv += torch.matmul(phi.transpose(-1, -2), value[..., block, :])
            z += phi.sum(-2)
        output = query.new_empty(*query.shape[:-1], head_dim)
        for start in range(0, query.size(-2), block_size):
            block = slice(start, start + block_size)
            output[..., block, :] = _readout(query[..., block, :], kv, z, projection, data_scale)
        ctx.save_for_backward(query, key, value, key_mask, projection, stabiliser, kv, z)
        ctx.data_scale, ctx.block_size = data_scale, block_size
        ctx.mark_non_differentiable(kv, z)
        return output, kv, z

    @staticmethod
    def backward(ctx, grad_output, _grad_kv, _grad_z):
        query, key, value, key_mask, projection, stabiliser, kv, z = ctx.saved_tensors
        data_scale, block_size = ctx.data_scale, ctx.block_size
        grad_query, grad_key, grad_value = torch.empty_like(query), torch.empty_like(key), torch.empty_like(value)
        grad_kv, grad_z = torch.zeros_like(kv), torch.zeros_like(z)
        for start in range(0, query.size(-2), block_size):  # queries: d phi(q), and what flows into kv and z
            block = slice(start, start + block_size)
            q = query[..., block, :]
            phi = query_features(q, projection, data_scale)
            inverse = _inverse(torch.matmul(phi, z.unsqueeze(-1)))  # (b, h, n, 1)
            grad_numerator = grad_output[..., block, :] * inverse  # d loss / d (phi kv)
            output = torch.matmul(phi, kv) * inverse
            grad_denominator = -(grad_numerator * output).sum(-1, keepdim=True)  # d loss / d (phi z)
            grad_phi = torch.matmul(grad_numerator, kv.transpose(-1, -2)) + grad_denominator * z.unsqueeze(-2)
            grad_kv += torch.matmul(phi.transpose(-1, -2), grad_numerator)
            grad_z += torch.matmul(phi.transpose(-1, -2), grad_denominator).squeeze(-1)
            grad_query[..., block, :] = _feature_input_gradient(q, grad_phi.mul_(phi), projection, data_scale)
        for start in range(0, key.size(-2), block_size):  # keys and values from d kv and d z
            block = slice(start, start + block_size)
            k, v = key[..., block, :], value[..., block, :]
            mask = None if key_mask is None else key_mask[:, block]
            phi = key_features(k, projection, data_scale, stabiliser, mask)
            grad_value[..., block, :] = torch.matmul(phi, grad_kv)
            grad_phi = torch.matmul(v, grad_kv.transpose(-1, -2)) + grad_z.unsqueeze(-2)
            grad_key[..., block, :] = _feature_input_gradient(k, grad_phi.mul_(phi), projection, data_scale)
        return grad_query, grad_key, grad_value, None, None, None, None, None


class _CausalFavor(torch.autograd.Function):
    """Causal FAVOR+ by chunked prefix sums, with a hand-written backward that recomputes the features chunk by chunk.

    The running key state [kv | z] ``(batch, heads, m, head_dim + 1)`` carries the past across chunks; within a chunk
    the ``(chunk, chunk)`` product phi(Q) phi(K)^T is masked to j <= i. Forward keeps only the inputs, the output, the
    row normalisers D^-1 and the state at the start of every block of ``block_size`` tokens. Backward walks the blocks
    in reverse, rebuilds a block's per-chunk states from its saved start, and carries the reverse running sum
    sum_i phi(q_i) [d numerator_i | d denominator_i]^T: what later queries (and the returned state) pass back to
    earlier keys and values. Gradients are written in place, so training memory is the inputs, the output, their
    gradients, one state per block and, in backward, one per chunk of the current block: at 8k tokens less than
    SDPA's causal kernel needs (benchmarks/bench_performer_attention.py). The returned state (kv, z) is
    differentiable, like the prefix state passed in.
    """

    @staticmethod
    def forward(ctx, query, key, value, key_mask, projection, data_scale, stabiliser, kv, z, block_size, chunk_size):
        terms = functools.partial(_chunk_terms, query, key, value, key_mask, projection, data_scale, stabiliser)
        state = torch.cat([kv, z.unsqueeze(-1)], -1)
        output, inverse = torch.empty_like(value), value.new_empty(*value.shape[:-1], 1)
        block_states = []
        for block in _chunks(0, key.size(-2), block_size):
            block_states.append(state.clone())
            for chunk in _chunks(block.start, block.stop, chunk_size):
                _causal_chunk_forward(*terms(chunk), state, output[..., chunk, :], inverse[..., chunk, :])
        ctx.save_for_backward(query, key, value, key_mask, projection, stabiliser, output, inverse, *block_states)
        ctx.data_scale, ctx.block_size, ctx.chunk_size = data_scale, block_size, chunk_size
        return output, state[..., :-1].contiguous(), state[..., -1].contiguous()

    @staticmethod
    def backward(ctx, grad_output, grad_kv, grad_z):
        query, key, value, key_mask, projection, stabiliser, output, inverse, *block_states = ctx.saved_tensors
        data_scale, block_size, chunk_size = ctx.data_scale, ctx.block_size, ctx.chunk_size
        terms = functools.partial(_chunk_terms, query, key, value, key_mask, projection, data_scale, stabiliser)
        grads = torch.empty_like(query), torch.empty_like(key), torch.empty_like(value)
        reverse = torch.cat([grad_kv, grad_z.unsqueeze(-1)], -1)  # d loss / d [kv | z] after the current chunk
        for block, state in reversed(list(zip(_chunks(0, key.size(-2), block_size), block_states))):
            chunks = _chunks(block.start, block.stop, chunk_size)
            states = [state]  # the state before each chunk of the block, rebuilt from the block's start
            for chunk in chunks[:-1]:
                _, phi_k, value_1 = terms(chunk, query_too=False)
                states.append(states[-1] + torch.matmul(phi_k.transpose(-1, -2), value_1))
            for chunk in reversed(chunks):
                inputs = query[..., chunk, :], key[..., chunk, :], projection, data_scale
                saved = output[..., chunk, :], inverse[..., chunk, :], grad_output[..., chunk, :]
                chunk_grads = [grad[..., chunk, :] for grad in grads]
                _causal_chunk_backward(*terms(chunk), states.pop(), reverse, *inputs, *saved, *chunk_grads)
        return *grads, None, None, None, None, reverse[..., :-1], reverse[..., -1], None, None


def _chunks(start: int, end: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, end)) for s in range(start, end, size)]


def _chunk_terms(query, key, value, key_mask, projection, data_scale, stabiliser, chunk, query_too=True):
    """phi(q), phi(k) and [v | 1] of one chunk: with the ones column, one product gives the numerator phi(q) kv and
    the denominator phi(q) z together."""
    mask = None if key_mask is None else key_mask[:, chunk]
    phi_q = query_features(query[..., chunk, :], projection, data_scale) if query_too else None
    phi_k = key_features(key[..., chunk, :], projection, data_scale, stabiliser, mask)
    value = value[..., chunk, :]
    return phi_q, phi_k, torch.cat([value, value.new_ones(*value.shape[:-1], 1)], -1)


def _causal_chunk_forward(phi_q, phi_k, value_1, state, output, inverse):
    """One chunk's output and normaliser, written into ``output`` / ``inverse``; adds the chunk's keys to ``state``."""
    scores = torch.matmul(phi_q, phi_k.transpose(-1, -2)).tril_()  # j <= i within the chunk
    numerator = torch.matmul(scores, value_1).add_(torch.matmul(phi_q, state))
    inverse.copy_(_inverse(numerator[..., -1:]))
    torch.mul(numerator[..., :-1], inverse, out=output)
    state += torch.matmul(phi_k.transpose(-1, -2), value_1)


def _causal_chunk_backward(
    phi_q, phi_k, value_1, state, reverse, query, key, projection, data_scale, output, inverse, grad_output,
    grad_query, grad_key, grad_value,
):  # fmt: skip
    """One chunk's input gradients, written in place; adds what its queries pass back to earlier keys to ``reverse``.
    A function of its own so that its temporaries are freed before the next chunk's are made."""
    scores = torch.matmul(phi_q, phi_k.transpose(-1, -2)).tril_()
    grad_numerator = grad_output * inverse  # d loss / d (phi(q) kv)
    grad_denominator = (grad_numerator * output).sum(-1, keepdim=True).neg_()  # d loss / d (phi(q) z)
    grad_both = torch.cat([grad_numerator, grad_denominator], -1)
    grad_scores = torch.matmul(grad_both, value_1.transpose(-1, -2)).tril_()
    grad_phi_q = torch.matmul(grad_scores, phi_k).add_(torch.matmul(grad_both, state.transpose(-1, -2)))
    grad_query.copy_(_feature_input_gradient(query, grad_phi_q.mul_(phi_q), projection, data_scale))
    del grad_phi_q
    grad_phi_k = torch.matmul(grad_scores.transpose(-1, -2), phi_q)
    grad_phi_k += torch.matmul(value_1, reverse.transpose(-1, -2))
    torch.matmul(scores.transpose(-1, -2), grad_numerator, out=grad_value)
    grad_value += torch.matmul(phi_k, reverse[..., :-1])
    reverse += torch.matmul(phi_q.transpose(-1, -2), grad_both)
    grad_key.copy_(_feature_input_gradient(key, grad_phi_k.mul_(phi_k), projection, data_scale))


def favor_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    projection: torch.Tensor,
    scaling: float | None = None,
    key_mask: torch.Tensor | None = None,
    causal: bool = False,
    state: FavorState | None = None,
    block_size: int | None = None,
    chunk_size: int = FAVOR_CHUNK_SIZE,
) -> tuple[torch.Tensor, FavorState]:
    """FAVOR+ attention ``(batch, heads, query_len, head_dim)`` of ``(batch, heads, length, head_dim)`` inputs, and the
    state of the keys (``state`` plus these keys) that later queries can reuse (without gradient when bidirectional).

    ``projection``: the ``(m, head_dim)`` random features. ``scaling``: the softmax temperature (default
    head_dim^-1/2), split evenly between queries and keys. ``key_mask``: ``(batch, key_len)`` bool, False for padding.
    ``causal``: query i sees keys 0..i of ``key`` (query and key have the same length) plus everything in ``state``.
    Bidirectional when False: every query sees every key (encoder, ViT, cross-attention); ``state`` is then ignored.

    Runs in (at least) fp32 with autocast off and returns the input dtype. Both directions have a hand-written
    backward that recomputes the features instead of keeping them, so training memory grows with the length like
    SDPA's does: bidirectional in blocks of ``block_size`` tokens (default 256); causal in chunks of ``chunk_size``
    tokens, with a running state kept every ``block_size`` tokens (default 1024).
    """
    dtype = query.dtype
    if block_size is None:
        block_size = FAVOR_CAUSAL_BLOCK_SIZE if causal else FAVOR_BLOCK_SIZE
    with torch.autocast(query.device.type, enabled=False):
        compute = torch.promote_types(dtype, torch.float32)
        query, key, value, projection = (t.to(compute) for t in (query, key, value, projection))
        data_scale = (query.size(-1) ** -0.5 if scaling is None else scaling) ** 0.5
        stabiliser = key_stabiliser(key, projection, data_scale, key_mask, block_size)
        batch, heads, features, head_dim = query.size(0), query.size(1), projection.size(0), value.size(-1)
        if not causal:
            stabiliser = torch.where(torch.isfinite(stabiliser), stabiliser, 0.0)  # no key at all: any constant
            output, kv, z = _BidirectionalFavor.apply(
                query, key, value, key_mask, projection, data_scale, stabiliser, block_size
            )
            return output.to(dtype), FavorState(kv, z, stabiliser)
        if state is None:
            kv = value.new_zeros(batch, heads, features, head_dim)
            z = value.new_zeros(batch, heads, features)
        else:  # bring the cached sums to the (possibly higher) new stabiliser
            stabiliser = torch.maximum(stabiliser, state.stabiliser)
            rescale = torch.exp(state.stabiliser - torch.where(torch.isfinite(stabiliser), stabiliser, 0.0))
            kv, z = state.kv * rescale[..., None, None], state.z * rescale[..., None]
        stabiliser = torch.where(torch.isfinite(stabiliser), stabiliser, 0.0)
        if query.size(-2) != key.size(-2):
            raise ValueError("causal FAVOR+ needs as many queries as keys (earlier keys belong in `state`)")
        output, kv, z = _CausalFavor.apply(
            query, key, value, key_mask, projection, data_scale, stabiliser, kv, z, block_size, chunk_size
        )
    return output.to(dtype), FavorState(kv, z, stabiliser)


def favor_readout(query: torch.Tensor, state: FavorState, projection: torch.Tensor, scaling: float | None = None):
    """Bidirectional FAVOR+ attention of ``query`` over keys already summarised in ``state`` (cached cross-attention)."""
    dtype = query.dtype
    with torch.autocast(query.device.type, enabled=False):
        query = query.to(state.kv.dtype)
        data_scale = (query.size(-1) ** -0.5 if scaling is None else scaling) ** 0.5
        return _readout(query, state.kv, state.z, projection.to(state.kv.dtype), data_scale).to(dtype)


def key_padding_from_mask(attention_mask: torch.Tensor | None, key_length: int) -> torch.Tensor | None:
    """The ``(batch, key_len)`` bool key-padding mask (True = real key) of a 4-D eager (additive) or SDPA (boolean)
    mask from transformers' mask helpers, for the last ``key_length`` keys.

    Performer attention can honour key padding and causality only, not an arbitrary ``(query, key)`` pattern. Padding
    masks the same keys for every query, and with causality the last query sees every real key, so the mask's last
    query row is the padding pattern."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor):
        raise ValueError(
            "attention_type='performer' takes eager or sdpa masks, not a flex-attention BlockMask: load the model with "
            "attn_implementation='eager' or 'sdpa' (flex_attention applies to softmax attention only)"
        )
    if attention_mask.dim() != 4 or attention_mask.size(1) != 1:
        raise ValueError("performer attention takes a (batch, 1, query_len, key_len) mask from transformers' mask helpers")
    row = attention_mask[:, 0, -1, -key_length:]
    return row if row.dtype == torch.bool else row > torch.finfo(attention_mask.dtype).min / 2


class FavorCacheLayer(DynamicLayer):
    """The generation cache of one performer attention layer: a :class:`FavorState`, whose size does not grow with
    the generated length, and the number of tokens it summarises. ``keys`` / ``values`` point at the state's ``kv`` /
    ``z`` for code that inspects a cache layer; beam search reorders (and expands) all three tensors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state: FavorState | None = None
        self.seq_length = 0

    def store(self, state: FavorState, seq_length: int) -> None:
        self.state, self.seq_length = state, seq_length
        self.keys, self.values, self.is_initialized = state.kv, state.z, True

    def update(self, *args, **kwargs):
        raise TypeError("a performer cache layer holds running sums, not keys and values: use FavorCacheLayer.store")

    def get_seq_length(self) -> int:
        return self.seq_length

    def _map(self, function) -> None:
        if self.state is not None:
            self.store(FavorState(*(function(t) for t in self.state)), self.seq_length)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda t: t[indices, ...])

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a performer cache is a running sum: tokens cannot be removed from it")

    def reset(self) -> None:
        self.state, self.seq_length, self.keys, self.values, self.is_initialized = None, 0, None, None, False


def favor_cache_layer(cache: Cache, layer_idx: int) -> FavorCacheLayer:
    """Layer ``layer_idx`` of ``cache`` as a :class:`FavorCacheLayer`, replacing the (still empty) key/value layer a
    ``DynamicCache`` made for it, so ``generate()``'s default cache works unchanged."""
    while len(cache.layers) <= layer_idx:
        cache.layers.append(FavorCacheLayer())
    layer = cache.layers[layer_idx]
    if not isinstance(layer, FavorCacheLayer):
        if layer.get_seq_length() > 0:
            raise ValueError(f"cache layer {layer_idx} already holds softmax keys/values; performer attention needs its own")
        layer = cache.layers[layer_idx] = FavorCacheLayer()
    return layer


class PerformerAttention(MultiHeadAttention):
    """:class:`MultiHeadAttention` with FAVOR+ (:func:`favor_attention`) in place of softmax.

    Each layer has its own ``(num_random_features, head_dim)`` random features, a persistent buffer (saved and loaded
    with the weights). The cache then holds a constant-size :class:`FavorState` per layer instead of the keys and values. Masks may only pad
    keys (plus causality); ``output_attentions`` is an error, as there are no attention weights to return. With
    ``config.performer_redraw_interval = N > 0`` the features are redrawn before every N-th training forward call.
    """

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        features = getattr(config, "num_random_features", None) or default_num_random_features(self.head_dim)
        # the (m, head_dim) random features of FAVOR+; persistent, so a reloaded model computes the same outputs
        self.register_buffer("feature_projection", torch.empty(features, self.head_dim), persistent=True)
        self.redraw_interval = getattr(config, "performer_redraw_interval", 0)
        self._training_calls_since_redraw = 0

    @torch.no_grad()
    def redraw_random_features(self) -> None:
        """Draws new orthogonal random features into the buffer (FAVOR+'s feature redrawing during training)."""
        self.feature_projection.copy_(gaussian_orthogonal_random_matrix(*self.feature_projection.shape))

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, None]:
        """FAVOR+ in place of softmax attention; the cache holds running sums (see :class:`FavorCacheLayer`)."""
        if kwargs.get("output_attentions"):
            raise ValueError(
                "output_attentions needs attention_type='softmax': performer attention never forms the attention matrix"
            )
        if torch.compiler.is_exporting():
            raise NotImplementedError(
                "attention_type='performer' cannot be exported: FAVOR+ loops in Python over blocks of the sequence, "
                "which torch.export would freeze to the example input's length; export a softmax-attention model"
            )
        if self.training and self.redraw_interval:
            if self._training_calls_since_redraw >= self.redraw_interval:
                self.redraw_random_features()
                self._training_calls_since_redraw = 0
            self._training_calls_since_redraw += 1
        batch_size, query_length, _ = hidden_states.shape
        projection = self.feature_projection
        if self.is_cross_attention:
            query = self._cross_attention_query(hidden_states, key_value_states)
            cross_cache = cache.cross_attention_cache if isinstance(cache, EncoderDecoderCache) else None
            if cross_cache is not None and cache.is_updated.get(self.layer_idx):
                output = favor_readout(query, favor_cache_layer(cross_cache, self.layer_idx).state, projection, self.scaling)
            else:
                key, value = self._key_value(key_value_states)
                key_mask = key_padding_from_mask(attention_mask, key.size(-2))
                output, state = favor_attention(query, key, value, projection, self.scaling, key_mask)
                if cross_cache is not None:
                    favor_cache_layer(cross_cache, self.layer_idx).store(state, key.size(-2))
                    cache.is_updated[self.layer_idx] = True
        else:
            query, key, value = self._query_key_value(hidden_states)
            key_mask = key_padding_from_mask(attention_mask, query_length)  # the mask's columns of these keys
            self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
            layer = favor_cache_layer(self_cache, self.layer_idx) if self_cache is not None else None
            if layer is not None and not self.is_causal:
                raise ValueError("a cache needs causal self-attention: bidirectional attention has no running state")
            state = layer.state if layer is not None else None
            output, state = favor_attention(
                query, key, value, projection, self.scaling, key_mask, causal=self.is_causal, state=state
            )
            if layer is not None:
                layer.store(state, layer.seq_length + query_length)
        output = self.out_proj(output.transpose(1, 2).reshape(batch_size, query_length, self.inner_size))
        return output, None


@torch.no_grad()
def init_random_features(module: nn.Module) -> None:
    """``_init_weights`` hook: draws a performer layer's random features (kept when they were loaded)."""
    if isinstance(module, PerformerAttention) and not module.feature_projection.is_meta:
        projection = module.feature_projection
        init.copy_(projection, gaussian_orthogonal_random_matrix(*projection.shape))

