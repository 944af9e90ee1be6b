"""The encoder-decoder Transformer: reference equivalence, generation, save/load, config validation."""

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from hf_models import TransformerConfig, TransformerForConditionalGeneration
from hf_models.seq2seq import CACHE_FIELD

TINY = dict(vocab_size=40, hidden_size=32, num_attention_heads=4, intermediate_size=64, encoder_layers=2, decoder_layers=2)


def tiny_model(**overrides) -> TransformerForConditionalGeneration:
    torch.manual_seed(0)
    config = TransformerConfig(**{**TINY, "dropout": 0.0, **overrides})
    return TransformerForConditionalGeneration(config).eval()


def batch():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, 40, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    attention_mask[2, 3:] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    decoder_input_ids = torch.randint(4, 40, (3, 7), generator=generator)
    return input_ids, attention_mask, decoder_input_ids


def copy_attention(ours, reference: nn.MultiheadAttention):
    reference.in_proj_weight.copy_(ours.in_proj.weight)
    reference.in_proj_bias.copy_(ours.in_proj.bias)
    reference.out_proj.weight.copy_(ours.out_proj.weight)
    reference.out_proj.bias.copy_(ours.out_proj.bias)


def copy_norm(ours: nn.LayerNorm, reference: nn.LayerNorm):
    reference.weight.copy_(ours.weight)
    reference.bias.copy_(ours.bias)


def torch_transformer_from(model: TransformerForConditionalGeneration) -> nn.Transformer:
    """torch.nn.Transformer carrying our weights (our stacks have a final LayerNorm only in pre-LN mode)."""
    config = model.config
    reference = nn.Transformer(
        d_model=config.hidden_size,
        nhead=config.num_attention_heads,
        num_encoder_layers=config.encoder_layers,
        num_decoder_layers=config.decoder_layers,
        dim_feedforward=config.intermediate_size,
        dropout=0.0,
        batch_first=True,
        norm_first=config.pre_layer_norm,
    ).eval()
    encoder, decoder = model.model.encoder, model.model.decoder
    with torch.no_grad():
        for ours, theirs in zip(encoder.layers, reference.encoder.layers):
            copy_attention(ours.self_attn, theirs.self_attn)
            theirs.linear1.load_state_dict(ours.feed_forward.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.feed_forward.fc2.state_dict())
            copy_norm(ours.self_attn_sublayer.layer_norm, theirs.norm1)
            copy_norm(ours.feed_forward_sublayer.layer_norm, theirs.norm2)
        for ours, theirs in zip(decoder.layers, reference.decoder.layers):
            copy_attention(ours.self_attn, theirs.self_attn)
            copy_attention(ours.encoder_attn, theirs.multihead_attn)
            theirs.linear1.load_state_dict(ours.feed_forward.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.feed_forward.fc2.state_dict())
            copy_norm(ours.self_attn_sublayer.layer_norm, theirs.norm1)
            copy_norm(ours.encoder_attn_sublayer.layer_norm, theirs.norm2)
            copy_norm(ours.feed_forward_sublayer.layer_norm, theirs.norm3)
        if config.pre_layer_norm:
            copy_norm(encoder.layer_norm, reference.encoder.norm)
            copy_norm(decoder.layer_norm, reference.decoder.norm)
        else:
            reference.encoder.norm = None
            reference.decoder.norm = None
    return reference


@pytest.mark.parametrize("pre_layer_norm", [False, True])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_equals_torch_nn_transformer_with_same_weights(pre_layer_norm, implementation):
    model = tiny_model(pre_layer_norm=pre_layer_norm)
    model.config._attn_implementation = implementation
    reference = torch_transformer_from(model)
    input_ids, attention_mask, decoder_input_ids = batch()
    with torch.no_grad():
        ours = model.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        source = model.model.encoder.embeddings(input_ids)
        target = model.model.decoder.embeddings(decoder_input_ids)
        padding = attention_mask == 0
        memory = reference.encoder(source, src_key_padding_mask=padding)
        expected = reference.decoder(
            target,
            memory,
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(7),
            tgt_is_causal=True,
            memory_key_padding_mask=padding,
        )
    real = attention_mask.bool()
    assert (ours.encoder_last_hidden_state[real] - memory[real]).abs().max() <= 1e-5
    assert (ours.last_hidden_state - expected).abs().max() <= 1e-5


def test_loss_ignores_padding_labels_and_uses_shifted_decoder_input():
    model = tiny_model()
    input_ids, attention_mask, _ = batch()
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100], [10, 2, -100, -100]])
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    decoder_input_ids = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 2], [1, 10, 2, 0]])
    logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(output.logits, logits)
    real = labels != -100
    expected = nn.functional.cross_entropy(logits[real], labels[real])
    assert torch.allclose(output.loss, expected)


def test_shared_and_tied_embeddings_are_one_tensor_and_untied_are_not():
    model = tiny_model()
    shared = model.model.shared.weight
    assert model.lm_head.weight is shared
    assert model.model.encoder.embeddings.embed_tokens.weight is shared
    assert model.model.decoder.embeddings.embed_tokens.weight is shared
    separate = tiny_model(share_embeddings=False, tie_word_embeddings=False)
    assert separate.lm_head.weight is not separate.model.decoder.embeddings.embed_tokens.weight
    assert separate.model.encoder.embeddings.embed_tokens is not separate.model.decoder.embeddings.embed_tokens


@pytest.mark.parametrize("overrides", [{}, {"share_embeddings": False, "tie_word_embeddings": False}, {"pre_layer_norm": True}])
def test_save_and_load_give_identical_logits(tmp_path, overrides):
    model = tiny_model(**overrides)
    input_ids, attention_mask, decoder_input_ids = batch()
    expected = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "vaswani_transformer"
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, TransformerForConditionalGeneration)
    actual = loaded(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_greedy_generation_with_and_without_cache_is_identical(implementation):
    model = tiny_model()
    model.config._attn_implementation = implementation
    input_ids, attention_mask, _ = batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12, do_sample=False)
    cached = model.generate(**kwargs, use_cache=True)
    uncached = model.generate(**kwargs, use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached.shape[1] > 2


@pytest.mark.parametrize("attention_type", ["softmax", "performer"])
def test_cached_decoding_step_equals_full_forward(attention_type):
    """One token at a time with the cache (key/value tensors, or performer's running sums) = the whole sequence."""
    model = tiny_model(attention_type=attention_type)
    input_ids, attention_mask, decoder_input_ids = batch()
    full = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    encoder_outputs = model.get_encoder()(input_ids, attention_mask)
    cache, steps = None, []
    for t in range(decoder_input_ids.size(1)):
        output = model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids[:, t : t + 1],
            use_cache=True,
            cache=cache,
        )
        cache = getattr(output, CACHE_FIELD)
        steps.append(output.logits)
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-5


def test_beam_search_returns_sorted_hypotheses():
    model = tiny_model()
    input_ids, attention_mask, _ = batch()
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=5,
        num_return_sequences=3,
        max_new_tokens=8,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert output.sequences.shape[0] == 3 * 3
    scores = output.sequences_scores.view(3, 3)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    # the returned hypotheses are distinct beams, not copies of one
    assert len({tuple(s.tolist()) for s in output.sequences[:3]}) == 3


def test_sampling_is_reproducible_with_a_seed():
    model = tiny_model()
    input_ids, attention_mask, _ = batch()
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, top_k=10, max_new_tokens=8))
    assert torch.equal(*runs)


def test_cross_attentions_for_heatmaps():
    model = tiny_model()
    model.config._attn_implementation = "sdpa"  # output_attentions switches to the eager weights by itself
    input_ids, attention_mask, decoder_input_ids = batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, output_attentions=True)
    assert len(output.cross_attentions) == 2
    weights = output.cross_attentions[-1]
    assert weights.shape == (3, 4, 7, 9)
    assert weights[2, :, :, 3:].abs().max() == 0  # padded source positions get no attention
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 7), atol=1e-5)


def test_over_long_input_is_a_clear_error():
    model = tiny_model(max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings=8"):
        model(input_ids=torch.ones(1, 9, dtype=torch.long), decoder_input_ids=torch.ones(1, 1, dtype=torch.long))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
        ({"attention_type": "linear"}, "attention_type"),
        ({"activation_function": "tanh"}, "activation_function"),
        ({"dropout": 1.5}, "dropout"),
        ({"encoder_layers": -1}, "encoder_layers"),
    ],
)
def test_inconsistent_config_fails_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{**TINY, **overrides})


def test_training_reduces_loss_and_learns_to_copy():
    """A real learning check: a tiny model learns to reproduce its input sequence."""
    torch.manual_seed(0)
    model = tiny_model(dropout=0.0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(3)
    source = torch.randint(4, 40, (16, 6), generator=generator)
    labels = torch.cat([source, torch.full((16, 1), 2)], dim=1)
    losses = []
    for _ in range(150):
        loss = model(input_ids=source, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    generated = model.generate(input_ids=source[:4], max_new_tokens=8, do_sample=False)
    assert torch.equal(generated[:, 1:8], labels[:4])
