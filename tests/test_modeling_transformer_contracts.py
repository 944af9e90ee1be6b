"""The transformers contracts a MarianMT / BERT user relies on, held by the Transformer family: outputs follow
``return_dict`` / ``output_*`` from the config and per call, gradient checkpointing, caches and decoding modes,
``inputs_embeds``, loading, and export."""

import pytest
import torch
from transformers.modeling_outputs import Seq2SeqLMOutput, SequenceClassifierOutput

from hf_models import TransformerConfig, TransformerForConditionalGeneration, TransformerForSequenceClassification
from hf_models.seq2seq import CACHE_FIELD

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

TINY = dict(vocab_size=40, hidden_size=32, num_attention_heads=4, intermediate_size=64, encoder_layers=2, decoder_layers=3)


def seq2seq(**overrides) -> TransformerForConditionalGeneration:
    torch.manual_seed(0)
    return TransformerForConditionalGeneration(TransformerConfig(**{**TINY, "dropout": 0.0, **overrides})).eval()


def classifier(**overrides) -> TransformerForSequenceClassification:
    torch.manual_seed(0)
    config = TransformerConfig(**{**TINY, "decoder_layers": 0, "num_labels": 3, "dropout": 0.0, **overrides})
    return TransformerForSequenceClassification(config).eval()


def batch():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, 40, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    attention_mask[2, 3:] = 0
    labels = torch.randint(4, 40, (3, 5), generator=generator)
    return input_ids, attention_mask, labels


def test_return_dict_none_gives_the_output_dataclass_and_false_or_the_config_a_tuple():
    """PEFT and Trainer call ``model(**batch, return_dict=None)`` and read ``.loss``."""
    input_ids, attention_mask, labels = batch()
    model = seq2seq()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_dict=None)
    assert isinstance(output, Seq2SeqLMOutput) and output.loss.ndim == 0
    as_tuple = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.loss)
    model.config.return_dict = False
    assert isinstance(model(input_ids=input_ids, attention_mask=attention_mask, labels=labels), tuple)
    assert isinstance(model(input_ids=input_ids, labels=labels, return_dict=True), Seq2SeqLMOutput)

    text = classifier()
    output = text(input_ids=input_ids, attention_mask=attention_mask, labels=labels[:, 0] % 3, return_dict=None)
    assert isinstance(output, SequenceClassifierOutput) and output.loss.ndim == 0
    assert isinstance(text(input_ids=input_ids, return_dict=False), tuple)


@pytest.mark.parametrize("from_config", [True, False])
def test_seq2seq_hidden_states_and_attentions_from_the_config_or_the_call(from_config):
    model = seq2seq(attn_implementation="eager")
    input_ids, attention_mask, labels = batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert model(**kwargs).encoder_hidden_states is None
    if from_config:
        model.config.output_hidden_states = True
        model.config.output_attentions = True
    else:
        kwargs.update(output_hidden_states=True, output_attentions=True)
    output = model(**kwargs)
    assert len(output.encoder_hidden_states) == TINY["encoder_layers"] + 1
    assert len(output.decoder_hidden_states) == TINY["decoder_layers"] + 1
    assert len(output.encoder_attentions) == TINY["encoder_layers"]
    assert len(output.decoder_attentions) == len(output.cross_attentions) == TINY["decoder_layers"]
    assert output.decoder_attentions[0].shape == (3, 4, 5, 5) and output.cross_attentions[0].shape == (3, 4, 5, 9)
    assert torch.equal(output.encoder_hidden_states[-1], output.encoder_last_hidden_state)
    # the first state is the embedding output that the first layer reads
    embeddings = model.get_encoder().embeddings(input_ids)
    torch.testing.assert_close(output.encoder_hidden_states[0], embeddings)


@pytest.mark.parametrize("pre_layer_norm", [False, True])
def test_classifier_hidden_states_from_the_config_end_with_the_normalised_state(pre_layer_norm):
    model = classifier(pre_layer_norm=pre_layer_norm)
    model.config.output_hidden_states = True
    input_ids, attention_mask, _ = batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask)
    assert len(output.hidden_states) == model.config.num_hidden_layers + 1 == TINY["encoder_layers"] + 1
    assert torch.equal(output.hidden_states[-1], model.encoder(input_ids, attention_mask).last_hidden_state)
    assert model(input_ids=input_ids, output_hidden_states=False).hidden_states is None


def test_zero_layer_classifier_returns_its_one_hidden_state():
    model = classifier(encoder_layers=0)
    input_ids, attention_mask, _ = batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    assert len(output.hidden_states) == 1
    torch.testing.assert_close(output.hidden_states[0], model.encoder.embeddings(input_ids))


def loss_and_gradients(model, **inputs):
    model.zero_grad()
    loss = model(**inputs).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("make", [seq2seq, classifier], ids=["seq2seq", "classifier"])
@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(make, use_reentrant):
    model = make(pre_layer_norm=True).train()  # dropout is 0: the recomputed forward is the same
    assert model.supports_gradient_checkpointing
    input_ids, attention_mask, labels = batch()
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    inputs["labels"] = labels if make is seq2seq else labels[:, 0] % 3
    expected_loss, expected = loss_and_gradients(model, **inputs)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    layers = [module for module in model.modules() if type(module).__name__.endswith("Layer")]
    assert layers and all(layer.gradient_checkpointing for layer in layers)
    calls = []
    layers[0].feed_forward.register_forward_pre_hook(lambda *args: calls.append(1))
    loss, gradients = loss_and_gradients(model, **inputs)
    assert len(calls) == 2  # the forward pass, and its recomputation in backward
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=0)
    assert gradients.keys() == expected.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, expected[name], rtol=1e-5, atol=1e-6, msg=name)
    model.gradient_checkpointing_disable()
    assert not any(layer.gradient_checkpointing for layer in layers)


# no_repeat_ngram_size=1 keeps a random model's greedy tokens from settling on one id, so the comparisons below see
# ten different tokens; min_new_tokens keeps every row going for all ten steps.
GREEDY = dict(max_new_tokens=10, min_new_tokens=10, do_sample=False, no_repeat_ngram_size=1)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_static_cache_generates_the_dynamic_cache_tokens(implementation):
    """A static cache returns keys of its full length; the masks are sized against it (unwritten slots masked)."""
    model = seq2seq(attn_implementation=implementation)
    input_ids, attention_mask, _ = batch()
    dynamic = model.generate(input_ids=input_ids, attention_mask=attention_mask, **GREEDY)
    static = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        cache_implementation="static",
        return_dict_in_generate=True,
        **GREEDY,
    )
    cache = getattr(static, CACHE_FIELD)
    assert type(cache.self_attention_cache).__name__ == "StaticCache"
    assert torch.equal(static.sequences, dynamic)
    assert len(set(dynamic[0, 1:].tolist())) == 10


@pytest.mark.parametrize("row", [0, 2])
def test_assisted_and_prompt_lookup_decoding_give_the_greedy_tokens(row):
    """Candidates from a second tiny model or from the prompt's n-grams, verified in one multi-token step (a causal
    mask after a cached prefix) and cropped from the cache when rejected: the result is plain greedy's."""
    model = seq2seq()
    input_ids = batch()[0][row : row + 1]  # assisted decoding takes one sequence at a time
    greedy = model.generate(input_ids=input_ids, **GREEDY)
    assistant = seq2seq(encoder_layers=1, decoder_layers=1)
    assert torch.equal(model.generate(input_ids=input_ids, assistant_model=assistant, **GREEDY), greedy)
    assert torch.equal(model.generate(input_ids=input_ids, assistant_model=model, **GREEDY), greedy)  # all accepted
    assert torch.equal(model.generate(input_ids=input_ids, prompt_lookup_num_tokens=3, **GREEDY), greedy)


@pytest.fixture
def unfused_flex_attention(monkeypatch):
    """transformers compiles flex attention on first use; inductor takes minutes to build the CPU kernels on this
    machine (measured: 335 s for the first seq2seq forward), so the test runs torch's unfused reference of the same
    function. The compiled kernels gave the same logits here (max difference 1.1e-6 against eager)."""
    from torch.nn.attention.flex_attention import flex_attention
    from transformers.integrations import flex_attention as integration

    wrapper = integration.WrappedFlexAttention
    monkeypatch.setattr(wrapper, "_is_flex_compiled", True)
    monkeypatch.setattr(wrapper, "training", False, raising=False)
    monkeypatch.setattr(wrapper, "_compiled_flex_attention", staticmethod(flex_attention))


@pytest.mark.slow  # the unfused reference still goes through dynamo: about a minute here, more while generating
@pytest.mark.usefixtures("unfused_flex_attention")
def test_flex_attention_matches_eager():
    input_ids, attention_mask, labels = batch()
    eager, flex = seq2seq(attn_implementation="eager"), seq2seq(attn_implementation="flex_attention")
    assert flex.config._attn_implementation == "flex_attention"
    with torch.no_grad():
        expected = eager(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
        actual = flex(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
        text_eager, text_flex = classifier(attn_implementation="eager"), classifier(attn_implementation="flex_attention")
        torch.testing.assert_close(
            text_flex(input_ids=input_ids, attention_mask=attention_mask).logits,
            text_eager(input_ids=input_ids, attention_mask=attention_mask).logits,
            rtol=0,
            atol=1e-5,
        )
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=4, no_repeat_ngram_size=1)
    assert torch.equal(flex.generate(**kwargs), eager.generate(**kwargs))


@pytest.mark.slow  # building flex block masks: about 20 s on this machine
@pytest.mark.usefixtures("unfused_flex_attention")
def test_flex_attention_refuses_what_it_cannot_do_with_a_clear_error():
    input_ids, attention_mask, labels = batch()
    flex = seq2seq(attn_implementation="flex_attention")
    with pytest.raises(ValueError, match="output_attentions=True needs attn_implementation='eager' or 'sdpa'"):
        flex(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    performer = seq2seq(attn_implementation="flex_attention", attention_type="performer")
    with pytest.raises(ValueError, match="flex_attention applies to softmax attention only"):
        performer(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
