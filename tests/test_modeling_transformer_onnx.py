"""ONNX export of the Transformer family through ``torch.onnx.export(dynamo=True)``: the text classifier and the
seq2seq model's encoder and decoder, with dynamic batch and sequence axes, run by onnxruntime against PyTorch."""

import pytest
import torch
from torch import nn

from hf_models import TransformerConfig, TransformerForConditionalGeneration, TransformerForSequenceClassification

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_single_thread_module")]  # 40-90 s per export here

TINY = dict(vocab_size=40, hidden_size=32, num_attention_heads=4, intermediate_size=64, encoder_layers=2, decoder_layers=2)
BATCH, SOURCE, TARGET = torch.export.Dim("batch"), torch.export.Dim("source"), torch.export.Dim("target")


def padded(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, 40, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, length // 2 :] = 0
    return input_ids, attention_mask


def session(exported, path) -> "ort.InferenceSession":
    exported.save(str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_text_classifier_exports_with_dynamic_batch_and_length(tmp_path):
    torch.manual_seed(0)
    config = TransformerConfig(**TINY, num_labels=3, dropout=0.0)
    model = TransformerForSequenceClassification(config).eval()
    input_ids, attention_mask = padded(3, 9, seed=1)
    exported = torch.onnx.export(
        model,
        (),
        kwargs=dict(input_ids=input_ids, attention_mask=attention_mask),
        dynamo=True,
        dynamic_shapes={"input_ids": {0: BATCH, 1: SOURCE}, "attention_mask": {0: BATCH, 1: SOURCE}},
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
    )
    runtime = session(exported, tmp_path / "classifier.onnx")
    for input_ids, attention_mask in [padded(3, 9, seed=1), padded(2, 14, seed=2), padded(1, 4, seed=3)]:
        (logits,) = runtime.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        with torch.no_grad():
            expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=0, atol=1e-4)


class DecoderWithHead(nn.Module):
    """The decoder and LM head of a seq2seq model over given encoder states, without a cache: one graph to export."""

    def __init__(self, model: TransformerForConditionalGeneration):
        super().__init__()
        self.model = model

    def forward(self, decoder_input_ids, encoder_hidden_states, attention_mask):
        return self.model(
            encoder_outputs=(encoder_hidden_states,),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        ).logits


def test_seq2seq_encoder_and_decoder_export_and_match(tmp_path):
    torch.manual_seed(0)
    model = TransformerForConditionalGeneration(TransformerConfig(**TINY, dropout=0.0)).eval()
    input_ids, attention_mask = padded(3, 9, seed=1)
    decoder_input_ids = padded(3, 5, seed=4)[0]
    with torch.no_grad():
        memory = model.get_encoder()(input_ids, attention_mask).last_hidden_state
    encoder = torch.onnx.export(
        model.get_encoder(),
        (),
        kwargs=dict(input_ids=input_ids, attention_mask=attention_mask),
        dynamo=True,
        dynamic_shapes={"input_ids": {0: BATCH, 1: SOURCE}, "attention_mask": {0: BATCH, 1: SOURCE}},
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
    )
    decoder = torch.onnx.export(
        DecoderWithHead(model).eval(),
        (decoder_input_ids, memory, attention_mask),
        dynamo=True,
        dynamic_shapes=({0: BATCH, 1: TARGET}, {0: BATCH, 1: SOURCE}, {0: BATCH, 1: SOURCE}),
        input_names=["decoder_input_ids", "encoder_hidden_states", "attention_mask"],
        output_names=["logits"],
    )
    encoder_runtime, decoder_runtime = session(encoder, tmp_path / "encoder.onnx"), session(decoder, tmp_path / "decoder.onnx")
    for (input_ids, attention_mask), target in [(padded(3, 9, 1), padded(3, 5, 4)[0]), (padded(2, 13, 2), padded(2, 3, 5)[0])]:
        (states,) = encoder_runtime.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        feed = {"decoder_input_ids": target.numpy(), "encoder_hidden_states": states, "attention_mask": attention_mask.numpy()}
        (logits,) = decoder_runtime.run(None, feed)
        with torch.no_grad():
            expected = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=target)
        real = attention_mask.bool()
        torch.testing.assert_close(torch.from_numpy(states)[real], expected.encoder_last_hidden_state[real], rtol=0, atol=1e-4)
        torch.testing.assert_close(torch.from_numpy(logits), expected.logits, rtol=0, atol=1e-4)


def test_performer_export_is_a_clear_error():
    torch.manual_seed(0)
    config = TransformerConfig(**TINY, num_labels=3, dropout=0.0, attention_type="performer")
    model = TransformerForSequenceClassification(config).eval()
    input_ids, attention_mask = padded(3, 9, seed=1)
    with pytest.raises(Exception, match="attention_type='performer' cannot be exported"):
        torch.export.export(model, (), kwargs=dict(input_ids=input_ids, attention_mask=attention_mask))
