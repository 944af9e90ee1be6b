"""int8 post-training quantisation: torchao through TorchAoConfig (saves and reloads) and onnxruntime's quantisers."""

import pytest
import torch
from transformers import AutoModelForImageClassification, AutoModelForSeq2SeqLM
from vision_testing import tiny_classifier

from hf_models import TransformerConfig, TransformerForConditionalGeneration

pytest.importorskip("torchao")

from hf_models.quantization import quantize_saved_model, torchao_int8_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

# Stated tolerance: tiny random ViT (hidden 32), |int8 - fp32| logits; measured 0.005 for each mode.
LOGIT_TOLERANCE = 0.05


@pytest.mark.parametrize("mode, symmetric", [("dynamic", True), ("dynamic", False), ("weight_only", True)])
def test_torchao_int8_saves_reloads_and_stays_close_to_fp32(mode, symmetric, tmp_path):
    model = tiny_classifier("vit", hidden_size=32, num_attention_heads=4)
    model.save_pretrained(tmp_path / "fp32")
    quantized = quantize_saved_model(tmp_path / "fp32", tmp_path / "int8", mode, symmetric)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "int8").eval()
    assert type(reloaded.vit.layers[0].mlp.fc1.weight).__name__ == "Int8Tensor"
    pixel_values = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        expected, got = model(pixel_values).logits, quantized(pixel_values).logits
        torch.testing.assert_close(reloaded(pixel_values).logits, got, rtol=0, atol=0)
    assert (got - expected).abs().max() < LOGIT_TOLERANCE
    assert (got - expected).abs().max() > 0  # really quantised
    size = lambda folder: (tmp_path / folder / "model.safetensors").stat().st_size  # noqa: E731
    assert size("int8") < 0.5 * size("fp32")


def test_torchao_int8_translator_generates_after_reload(tmp_path):
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=24, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                               encoder_layers=1, decoder_layers=1, dropout=0.0)  # fmt: skip
    TransformerForConditionalGeneration(config).eval().save_pretrained(tmp_path / "fp32")
    quantized = quantize_saved_model(tmp_path / "fp32", tmp_path / "int8")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "int8").eval()
    input_ids = torch.randint(4, 24, (2, 6), generator=torch.Generator().manual_seed(0))
    assert reloaded.generate(input_ids=input_ids, max_new_tokens=5).tolist() == quantized.generate(
        input_ids=input_ids, max_new_tokens=5
    ).tolist()


def test_int8_requests_the_backend_cannot_serve_fail_clearly():
    with pytest.raises(ValueError, match="static int8 is not available through TorchAoConfig.*quantize_static_onnx"):
        torchao_int8_config("static")
    with pytest.raises(ValueError, match="weight_only int8 quantises no activations"):
        torchao_int8_config("weight_only", symmetric=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        torchao_int8_config("int4")


@pytest.mark.slow
@pytest.mark.parametrize("symmetric", [False, True])
def test_onnxruntime_static_int8_is_calibrated_and_close(symmetric, tmp_path):
    pytest.importorskip("onnxruntime")
    from hf_models.export_onnx import OnnxClassifier, export, quantize_static_onnx

    model = tiny_classifier("gfnet", hidden_size=32)
    model.save_pretrained(tmp_path / "model")
    export(tmp_path / "model", tmp_path / "onnx")
    generator = torch.Generator().manual_seed(0)
    calibration = [{"pixel_values": torch.randn(8, 1, 16, 16, generator=generator).numpy()} for _ in range(4)]
    quantize_static_onnx(tmp_path / "onnx" / "model.onnx", tmp_path / "onnx" / "static.onnx", calibration, symmetric)
    pixel_values = torch.randn(4, 1, 16, 16, generator=generator)
    with torch.no_grad():
        expected = model(pixel_values).logits.numpy()
    got = OnnxClassifier(tmp_path / "onnx", "static.onnx")(pixel_values=pixel_values.numpy())
    assert 0 < abs(got - expected).max() < LOGIT_TOLERANCE
