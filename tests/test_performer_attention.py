"""Performer FAVOR+ attention: the estimator against exact softmax, the causal prefix sums against an explicit mask,
padding, the constant-size generation cache, and the models with ``attention_type="performer"`` end to end (training,
generate(), save/load, bf16 autocast, feature redrawing, config checks)."""

import math

import pytest
import torch
from transformers import AutoModelForImageClassification, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask

import hf_models.performer as performer
from hf_models import (
    TransformerConfig,
    TransformerForConditionalGeneration,
    TransformerForSequenceClassification,
    VisionTransformerConfig,
)
from hf_models.performer import (
    FavorCacheLayer,
    PerformerAttention,
    default_num_random_features,
    favor_attention,
    gaussian_orthogonal_random_matrix,
    key_features,
    key_stabiliser,
    query_features,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

TINY = dict(vocab_size=40, hidden_size=32, num_attention_heads=4, intermediate_size=64, encoder_layers=2, decoder_layers=2)


def qkv(batch=2, heads=2, length=24, head_dim=8, seed=0, std=1.0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, head_dim, generator=generator) * std for _ in range(3)]


def softmax_attention(query, key, value, key_mask=None, causal=False):
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.size(-1))
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], -math.inf)
    if causal:
        scores = scores.masked_fill(~torch.ones(scores.shape[-2:], dtype=torch.bool).tril(), -math.inf)
    return torch.softmax(scores, -1) @ value


def test_random_features_are_orthogonal_blocks_with_chi_norms():
    projection = gaussian_orthogonal_random_matrix(20, 8, torch.Generator().manual_seed(0))
    assert projection.shape == (20, 8)
    for block in (projection[:8], projection[8:16], projection[16:]):
        directions = block / block.norm(dim=1, keepdim=True)
        gram = directions @ directions.T
        torch.testing.assert_close(gram, torch.eye(len(block)), atol=1e-5, rtol=0)
    # row norms are chi(8)-distributed, not all equal (E|w|^2 = 8)
    many = gaussian_orthogonal_random_matrix(4096, 8, torch.Generator().manual_seed(1))
    assert abs(many.square().sum(1).mean().item() - 8) < 0.3 and many.norm(dim=1).std() > 0.3
    assert default_num_random_features(64) == 266 and default_num_random_features(2) == 2


def test_approximation_error_falls_as_the_number_of_features_grows():
    """Mean relative error of FAVOR+ against exact softmax attention, over 8 seeds (inputs and features), bidirectional
    and causal. Measured: 0.34, 0.22, 0.093 for 16, 64, 512 features (the estimator's variance falls like 1/m; it
    grows quickly with the norms of q and k, which is why the inputs here are N(0, 0.25))."""
    errors = {}
    for features in (16, 64, 512):
        per_seed = []
        for seed in range(8):
            query, key, value = qkv(batch=1, heads=2, length=64, head_dim=16, seed=seed, std=0.5)
            projection = gaussian_orthogonal_random_matrix(features, 16, torch.Generator().manual_seed(100 + seed))
            for causal in (False, True):
                exact = softmax_attention(query, key, value, causal=causal)
                approximate, _ = favor_attention(query, key, value, projection, causal=causal)
                per_seed.append(((approximate - exact).norm() / exact.norm()).item())
        errors[features] = sum(per_seed) / len(per_seed)
    assert errors[16] > errors[64] > errors[512], errors
    assert errors[512] < 0.15 and errors[16] > 2.5 * errors[512], errors


def explicit_causal_kernel(query, key, value, projection, key_mask=None):
    """The same FAVOR+ kernel, materialised: A = phi(Q) phi(K)^T, causal mask applied, rows normalised."""
    data_scale = query.size(-1) ** -0.25
    stabiliser = key_stabiliser(key, projection, data_scale, key_mask)
    stabiliser = torch.where(torch.isfinite(stabiliser), stabiliser, 0.0)
    phi_q = query_features(query, projection, data_scale)
    phi_k = key_features(key, projection, data_scale, stabiliser, key_mask)
    kernel = (phi_q @ phi_k.transpose(-1, -2)).tril()
    return (kernel @ value) / kernel.sum(-1, keepdim=True)


@pytest.mark.parametrize("block_size, chunk_size", [(1024, 128), (16, 4), (8, 8)])
def test_causal_prefix_sums_equal_the_explicitly_masked_kernel(block_size, chunk_size):
    query, key, value = qkv(length=37)
    projection = gaussian_orthogonal_random_matrix(24, 8)
    key_mask = torch.ones(2, 37, dtype=torch.bool)
    key_mask[1, :5] = False  # left padding
    for mask in (None, key_mask):
        expected = explicit_causal_kernel(query, key, value, projection, mask)
        actual, state = favor_attention(
            query, key, value, projection, key_mask=mask, causal=True, block_size=block_size, chunk_size=chunk_size
        )
        real = slice(None) if mask is None else mask  # rows of padded queries attend to nothing: 0
        assert (actual.transpose(1, 2)[real] - expected.transpose(1, 2)[real]).abs().max() < 1e-5
    assert state.kv.shape == (2, 2, 24, 8) and state.z.shape == (2, 2, 24)


def autograd_reference(query, key, value, projection, key_mask=None, causal=False):
    """FAVOR+ written plainly with autograd: the features materialised, the kernel formed, rows normalised."""
    data_scale = query.size(-1) ** -0.25
    stabiliser = key_stabiliser(key, projection, data_scale, key_mask)
    stabiliser = torch.where(torch.isfinite(stabiliser), stabiliser, 0.0)
    phi_q = query_features(query, projection, data_scale)
    phi_k = key_features(key, projection, data_scale, stabiliser, key_mask)
    kernel = phi_q @ phi_k.transpose(-1, -2)
    kernel = kernel.tril() if causal else kernel
    return (kernel @ value) / kernel.sum(-1, keepdim=True)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block_size", [1024, 16])
def test_blocked_path_gives_the_reference_values_and_gradients(causal, block_size):
    """The custom backwards (bidirectional blocks, causal chunks) against plain autograd."""
    inputs = [t.requires_grad_() for t in qkv(length=50)]
    projection = gaussian_orthogonal_random_matrix(16, 8)
    key_mask = torch.ones(2, 50, dtype=torch.bool)
    key_mask[1, 41:] = False
    weights = torch.randn(2, 2, 50, 8) * key_mask[:, None, :, None]  # padded query rows do not enter the loss
    expected = autograd_reference(*inputs, projection, key_mask, causal)
    expected_grads = torch.autograd.grad((expected * weights).sum(), inputs)
    output, _ = favor_attention(*inputs, projection, key_mask=key_mask, causal=causal, block_size=block_size, chunk_size=8)
    grads = torch.autograd.grad((output * weights).sum(), inputs)
    torch.testing.assert_close(output * weights, expected * weights, atol=1e-5, rtol=1e-5)
    for actual, reference in zip(grads, expected_grads):
        torch.testing.assert_close(actual, reference, atol=1e-5, rtol=1e-4)


def test_bidirectional_backward_passes_gradcheck_in_float64():
    inputs = [t.double().requires_grad_() for t in qkv(batch=1, heads=1, length=7, head_dim=4, std=0.5)]
    projection = gaussian_orthogonal_random_matrix(6, 4).double()
    key_mask = torch.tensor([[True] * 5 + [False] * 2])
    assert torch.autograd.gradcheck(
        lambda q, k, v: favor_attention(q, k, v, projection, key_mask=key_mask, block_size=3)[0], inputs
    )



def test_causal_backward_passes_gradcheck_in_float64():
    """The causal Function itself, its returned state and the prefix state included, over several blocks of several
    chunks with ragged ends (11 tokens, blocks of 5, chunks of 2) and a left-padded example."""
    query, key, value = [t.double().requires_grad_() for t in qkv(batch=2, heads=1, length=11, head_dim=4, std=0.5)]
    projection = gaussian_orthogonal_random_matrix(6, 4).double()
    key_mask = torch.ones(2, 11, dtype=torch.bool)
    key_mask[1, :3] = False
    data_scale = 4**-0.25
    stabiliser = key_stabiliser(key.detach(), projection, data_scale, key_mask)
    generator = torch.Generator().manual_seed(1)
    kv = torch.randn(2, 1, 6, 4, generator=generator, dtype=torch.float64).requires_grad_()
    z = torch.rand(2, 1, 6, generator=generator, dtype=torch.float64).add_(0.5).requires_grad_()

    def causal(q, k, v, kv, z):
        return performer._CausalFavor.apply(q, k, v, key_mask, projection, data_scale, stabiliser, kv, z, 5, 2)

    assert torch.autograd.gradcheck(causal, (query, key, value, kv, z))


def test_causal_state_carries_values_and_gradients_across_calls():
    """Two causal calls, the second starting from the first one's state, give the values and gradients of one call:
    gradients flow back through the returned state and the prefix state. Left padding, blocks of 20, chunks of 8."""
    inputs = [t.requires_grad_() for t in qkv(length=53, std=1.5)]
    projection = gaussian_orthogonal_random_matrix(16, 8)
    key_mask = torch.ones(2, 53, dtype=torch.bool)
    key_mask[1, :7] = False
    weights = torch.randn(2, 2, 53, 8)
    sizes = dict(block_size=20, chunk_size=8)
    query, key, value = inputs
    stabiliser = key_stabiliser(key, projection, 8**-0.25, key_mask)
    phi_q = query_features(query, projection, 8**-0.25)
    kernel = (phi_q @ key_features(key, projection, 8**-0.25, stabiliser, key_mask).transpose(-1, -2)).tril()
    expected = kernel @ value / kernel.sum(-1, keepdim=True).clamp_min(1e-30)  # left-padded rows see no key: 0
    expected_grads = torch.autograd.grad((expected * weights).sum(), inputs)
    first, state = favor_attention(*(t[:, :, :30] for t in inputs), projection, None, key_mask[:, :30], True, **sizes)
    rest = (t[:, :, 30:] for t in inputs)
    second, _ = favor_attention(*rest, projection, None, key_mask[:, 30:], True, state, **sizes)
    output = torch.cat([first, second], -2)
    grads = torch.autograd.grad((output * weights).sum(), inputs)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(output[1, :, :7], torch.zeros_like(output[1, :, :7]))
    for actual, reference in zip(grads, expected_grads):
        torch.testing.assert_close(actual, reference, atol=1e-5, rtol=1e-4)

@pytest.mark.parametrize("causal", [False, True])
def test_padded_keys_change_nothing(causal):
    query, key, value = qkv(length=12)
    projection = gaussian_orthogonal_random_matrix(16, 8)
    key_mask = torch.ones(2, 12, dtype=torch.bool)
    key_mask[0, 9:] = False
    key_mask[1, 4:] = False
    output, _ = favor_attention(query, key, value, projection, key_mask=key_mask, causal=causal, block_size=5)
    # huge padded keys would dominate an unmasked stabiliser, and random values would enter the sums
    padded = ~key_mask[:, None, :, None].expand_as(key)
    key2 = key.masked_fill(padded, 50.0)
    value2 = torch.where(padded, torch.randn_like(value) * 100, value)
    output2, _ = favor_attention(query, key2, value2, projection, key_mask=key_mask, causal=causal, block_size=5)
    real = key_mask[:, None, :, None].expand_as(output) if causal else torch.ones_like(output, dtype=torch.bool)
    assert torch.equal(output[real], output2[real])
    # and each example equals the same example without its padding
    alone, _ = favor_attention(query[1:, :, :4], key[1:, :, :4], value[1:, :, :4], projection, causal=causal)
    if causal:
        torch.testing.assert_close(output[1:, :, :4], alone, atol=1e-6, rtol=1e-5)
    else:
        alone_queries, _ = favor_attention(query[1:], key[1:, :, :4], value[1:, :, :4], projection)
        torch.testing.assert_close(output[1:], alone_queries, atol=1e-6, rtol=1e-5)


def performer_config(**overrides):
    return TransformerConfig(**{**TINY, "dropout": 0.0, "attention_type": "performer", **overrides})


def test_attention_type_picks_the_registered_class_in_every_model(tmp_path):
    """``config.attention_type`` selects the layer class through one registry; a saved performer model carries
    performer.py and keeps the ``feature_projection`` buffer name (old checkpoints load)."""
    from safetensors import safe_open

    from hf_models.attention import MultiHeadAttention
    from hf_models.attention_registry import ATTENTION_CLASSES, attention_class

    assert ATTENTION_CLASSES == {"softmax": MultiHeadAttention, "performer": PerformerAttention}
    assert attention_class(TransformerConfig(**TINY)) is MultiHeadAttention
    model = TransformerForConditionalGeneration(performer_config())
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    assert layers and all(type(layer) is PerformerAttention for layer in layers)
    softmax = TransformerForConditionalGeneration(TransformerConfig(**TINY))
    assert not any(isinstance(m, PerformerAttention) for m in softmax.modules())
    model.save_pretrained(tmp_path)
    assert (tmp_path / "performer.py").is_file() and (tmp_path / "attention_registry.py").is_file()
    with safe_open(tmp_path / "model.safetensors", "pt") as saved:
        names = [key for key in saved.keys() if key.endswith("feature_projection")]
    assert len(names) == len(layers)


def test_attention_layer_cache_is_constant_size_and_matches_the_full_sequence():
    torch.manual_seed(0)
    layer = PerformerAttention(performer_config(), is_causal=True, layer_idx=0).eval()
    performer.init_random_features(layer)
    x = torch.randn(2, 9, 32) * 3  # larger inputs: the running key stabiliser changes along the way
    full, _ = layer(x)
    cache = DynamicCache()
    prefill, _ = layer(x[:, :4], cache=cache)  # a multi-token prefill, then one token at a time
    shapes = set()
    steps = [prefill]
    for t in range(4, 9):
        steps.append(layer(x[:, t : t + 1], cache=cache)[0])
        shapes.add(tuple(cache.layers[0].state.kv.shape))
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-5
    assert isinstance(cache.layers[0], FavorCacheLayer) and cache.get_seq_length() == 9
    assert shapes == {(2, 4, default_num_random_features(8), 8)}


def test_cross_attention_state_is_computed_once():
    torch.manual_seed(0)
    layer = PerformerAttention(performer_config(), is_cross_attention=True, layer_idx=0).eval()
    performer.init_random_features(layer)
    memory, memory_mask = torch.randn(2, 6, 32), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    query = torch.randn(2, 1, 32)
    mask = create_bidirectional_mask(
        config=layer.config, inputs_embeds=query, attention_mask=memory_mask, encoder_hidden_states=memory
    )
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    first, _ = layer(query, key_value_states=memory, attention_mask=mask, cache=cache)
    assert cache.is_updated[0]
    cached, _ = layer(query, key_value_states=torch.zeros_like(memory), attention_mask=mask, cache=cache)
    assert torch.equal(first, cached)


def tiny_seq2seq(**overrides):
    torch.manual_seed(0)
    return TransformerForConditionalGeneration(performer_config(**overrides)).eval()


def seq2seq_batch():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, 40, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    attention_mask[2, 3:] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask, torch.randint(4, 40, (3, 7), generator=generator)


def test_seq2seq_generation_with_cache_equals_without_greedy_and_beam():
    """Same tokens and (to rounding) the same scores at every step; beam search reorders the running sums."""
    model = tiny_seq2seq()
    input_ids, attention_mask, _ = seq2seq_batch()
    for kwargs in ({"do_sample": False}, {"num_beams": 3, "num_return_sequences": 2}):
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=10, output_scores=True,
                      return_dict_in_generate=True, **kwargs)  # fmt: skip
        cached = model.generate(**kwargs, use_cache=True)
        uncached = model.generate(**kwargs, use_cache=False)
        assert torch.equal(cached.sequences, uncached.sequences)
        for a, b in zip(cached.scores, uncached.scores):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_seq2seq_training_step_and_save_load(tmp_path):
    model = tiny_seq2seq().train()
    input_ids, attention_mask, _ = seq2seq_batch()
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100], [10, 2, -100, -100]])
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    gradients = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert model.model.encoder.layers[0].self_attn.in_proj.weight.grad.abs().sum() > 0
    model.eval()
    input_ids, attention_mask, decoder_input_ids = seq2seq_batch()
    expected = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert loaded.config.attention_type == "performer"
    projections = [n for n, _ in loaded.named_buffers() if n.endswith("feature_projection")]
    assert len(projections) == 6  # 2 encoder self, 2 decoder self, 2 cross
    actual = loaded(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.equal(actual, expected)


def test_text_classifier_with_performer_trains_and_reloads_identically(tmp_path):
    torch.manual_seed(0)
    config = performer_config(decoder_layers=0, num_labels=3, num_random_features=12)
    model = TransformerForSequenceClassification(config).train()
    input_ids, attention_mask, _ = seq2seq_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 2]))
    output.loss.backward()
    assert torch.isfinite(output.loss) and model.encoder.layers[0].self_attn.feature_projection.shape == (12, 8)
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=input_ids, attention_mask=attention_mask).logits, expected)


def test_vit_with_performer_trains_and_reloads_identically(tmp_path):
    from vision_testing import assert_save_load_identical, tiny_classifier

    model = tiny_classifier("vit", attention_type="performer").train()
    output = model(torch.randn(2, 1, 16, 16), labels=torch.tensor([0, 2]))
    output.loss.backward()
    assert torch.isfinite(output.loss)
    assert model.vit.layers[0].token_mixer.in_proj.weight.grad.abs().sum() > 0
    assert_save_load_identical(model.eval(), tmp_path)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path).config, VisionTransformerConfig)


def test_bf16_autocast_gives_finite_outputs_with_the_features_in_fp32(monkeypatch):
    seen = []
    original = performer.feature_logits

    def recording(x, projection, data_scale):
        seen.append((x.dtype, projection.dtype, torch.is_autocast_enabled("cpu")))
        return original(x, projection, data_scale)

    monkeypatch.setattr(performer, "feature_logits", recording)
    model = tiny_seq2seq().train()
    input_ids, attention_mask, _ = seq2seq_batch()
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100], [10, 2, -100, -100]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    output.loss.backward()
    assert torch.isfinite(output.loss) and torch.isfinite(output.logits).all()
    assert output.logits.dtype == torch.bfloat16  # the rest of the model did autocast
    assert seen and all(entry == (torch.float32, torch.float32, False) for entry in seen)


@pytest.mark.parametrize("auto_class", [AutoModelForSeq2SeqLM, AutoModelForSequenceClassification])
def test_a_bf16_model_from_config_draws_its_features_and_gives_finite_outputs(auto_class):
    """``from_config(dtype=torch.bfloat16)`` builds the model under a bf16 default dtype; the features are drawn in fp32
    (there is no bf16 QR) and stored in the model's dtype."""
    torch.manual_seed(0)
    model = auto_class.from_config(performer_config(), dtype=torch.bfloat16).eval()
    encoder = model.get_encoder() if auto_class is AutoModelForSeq2SeqLM else model.encoder
    projection = encoder.layers[0].self_attn.feature_projection
    assert projection.dtype == torch.bfloat16 and projection.abs().sum() > 0
    input_ids, attention_mask, decoder_input_ids = seq2seq_batch()
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    if auto_class is AutoModelForSeq2SeqLM:
        inputs["decoder_input_ids"] = decoder_input_ids
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_features_are_redrawn_only_in_training_at_the_interval():
    model = tiny_seq2seq(performer_redraw_interval=2)
    layer = model.model.encoder.layers[0].self_attn
    input_ids, attention_mask, decoder_input_ids = seq2seq_batch()
    batch = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    initial = layer.feature_projection.clone()
    with torch.no_grad():
        for _ in range(3):
            model(**batch)  # eval: never redrawn
    assert torch.equal(layer.feature_projection, initial)
    model.train()
    snapshots = []
    with torch.no_grad():
        for _ in range(5):
            model(**batch)
            snapshots.append(layer.feature_projection.clone())
    # calls 1-2 use the initial features, 3-4 a second draw, 5 a third
    assert torch.equal(snapshots[0], initial) and torch.equal(snapshots[1], initial)
    assert not torch.equal(snapshots[2], initial) and torch.equal(snapshots[2], snapshots[3])
    assert not torch.equal(snapshots[4], snapshots[3])
    assert not torch.equal(model.model.encoder.layers[1].self_attn.feature_projection, layer.feature_projection)


def test_output_attentions_is_a_clear_error():
    model = tiny_seq2seq()
    input_ids, attention_mask, decoder_input_ids = seq2seq_batch()
    with pytest.raises(ValueError, match="output_attentions needs attention_type='softmax'"):
        model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, output_attentions=True)


@pytest.mark.parametrize("config_class, base", [(TransformerConfig, TINY), (VisionTransformerConfig, {})])
@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"attention_type": "linear"}, "attention_type"),
        ({"attention_type": "performer", "num_random_features": 0}, "num_random_features"),
        ({"attention_type": "performer", "performer_redraw_interval": -1}, "performer_redraw_interval"),
        ({"attention_type": "performer", "attention_dropout": 0.1}, "attention_dropout"),
    ],
)
def test_bad_attention_config_fails_naming_the_field(config_class, base, overrides, field):
    with pytest.raises(ValueError, match=field):
        config_class(**{**base, **overrides})
