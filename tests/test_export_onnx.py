"""ONNX export: graphs that onnxruntime runs with PyTorch's outputs, the CLI, int8 graphs, and clear failures."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from vision_testing import tiny_classifier

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from hf_models import export_onnx  # noqa: E402
from hf_models.export_onnx import OnnxClassifier, OnnxExportError, export  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vit", "gfnet"])
def test_image_classifier_export_matches_pytorch_at_other_batch_sizes(family, tmp_path):
    model = tiny_classifier(family)
    model.save_pretrained(tmp_path / "model")
    report = export(tmp_path / "model", tmp_path / "onnx")
    assert report["task"] == "image-classification" and report["max_abs_logit_difference"] < 1e-4
    pixel_values = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        expected = model(pixel_values).logits.numpy()
    np.testing.assert_allclose(OnnxClassifier(tmp_path / "onnx")(pixel_values=pixel_values.numpy()), expected, atol=1e-4)
    assert (tmp_path / "onnx" / "config.json").exists()  # the folder describes itself


@pytest.mark.slow
def test_cli_exports_and_quantises_int8(tmp_path):
    tiny_classifier("gfnet").save_pretrained(tmp_path / "model")
    result = subprocess.run(
        [sys.executable, "-m", "hf_models.export_onnx", str(tmp_path / "model"), str(tmp_path / "onnx"), "--quantize", "int8"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "onnx" / "onnx_export.json").read_text())
    assert set(report["files"]) == {"model.onnx", "model_int8.onnx"}
    on_disk = sum(path.stat().st_size for path in (tmp_path / "onnx").glob("model.onnx*"))  # the graph + its .data
    assert report["files"]["model.onnx"] == on_disk > (tmp_path / "onnx" / "model.onnx").stat().st_size
    assert report["max_abs_logit_difference"] < 1e-4
    assert report["int8_max_abs_logit_difference"] < 0.05  # tiny random model; measured 4e-4


def test_untraceable_model_fails_naming_the_blocking_line(tmp_path, monkeypatch):
    """Data-dependent Python (here a value read out of the input) cannot be traced: the error names that line."""

    def check_image_size(pixel_values, image_size, interpolate_pos_encoding):
        if float(pixel_values.max()) > 1e9:  # the blocking line
            raise ValueError("bright")

    monkeypatch.setattr("hf_models.layers.check_image_size", check_image_size)
    monkeypatch.setattr("hf_models.modeling_vit.check_image_size", check_image_size)
    tiny_classifier("vit").save_pretrained(tmp_path / "model")
    with pytest.raises(OnnxExportError, match=r"test_export_onnx\.py:\d+: if float\(pixel_values\.max\(\)\) > 1e9"):
        export(tmp_path / "model", tmp_path / "onnx")


def test_cli_rejects_a_folder_without_a_known_architecture(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "hfm_vit", "architectures": ["Nothing"]}))
    assert export_onnx.main([str(tmp_path), str(tmp_path / "out")]) == 1
    assert "architectures=['Nothing'] has no ONNX export" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["bahdanau", "luong"])
def test_gru_translator_generates_in_onnxruntime_like_generate(mechanism, tmp_path):
    from hf_models import GRUSeq2SeqConfig, GRUSeq2SeqForConditionalGeneration
    from hf_models.export_onnx import OnnxSeq2SeqGenerator

    torch.manual_seed(0)
    config = GRUSeq2SeqConfig(vocab_size=24, hidden_size=16, embedding_size=16, dropout=0.0, attention_mechanism=mechanism)
    model = GRUSeq2SeqForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path / "model")
    report = export(tmp_path / "model", tmp_path / "onnx", gru_source_length=12)
    assert report["greedy_tokens_identical"] and set(report["files"]) == {"encoder.onnx", "decoder.onnx"}
    input_ids = torch.randint(4, 24, (4, 9), generator=torch.Generator().manual_seed(3))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    with torch.no_grad():
        expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=6, num_beams=1)
    got = OnnxSeq2SeqGenerator(tmp_path / "onnx").generate(input_ids.numpy(), attention_mask.numpy(), 6)
    np.testing.assert_array_equal(got, expected.numpy())
    with pytest.raises(ValueError, match="sources of at most 12 tokens"):
        OnnxSeq2SeqGenerator(tmp_path / "onnx").generate(np.ones((1, 13), dtype=np.int64), np.ones((1, 13)), 2)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["transformer-translation", "text-classifier", "afno"])
def test_transformer_families_and_afno_export_and_match(family, tmp_path):
    """The translator's greedy tokens through the encoder + decoder-with-cache graphs equal generate()'s; the text
    classifier's logits (dynamic batch and sequence) and AFNO's (real-arithmetic Fourier mixing) match PyTorch."""
    from hf_models import TransformerConfig, TransformerForConditionalGeneration, TransformerForSequenceClassification

    torch.manual_seed(0)
    sizes = dict(vocab_size=24, hidden_size=16, num_attention_heads=2, intermediate_size=32, encoder_layers=2,
                 decoder_layers=2, max_position_embeddings=32, dropout=0.0, num_labels=3)  # fmt: skip
    if family == "afno":
        model = tiny_classifier("afno")
    elif family == "text-classifier":
        model = TransformerForSequenceClassification(TransformerConfig(**{**sizes, "decoder_layers": 0})).eval()
    else:
        model = TransformerForConditionalGeneration(TransformerConfig(**sizes)).eval()
    model.save_pretrained(tmp_path / "model")
    report = export(tmp_path / "model", tmp_path / "onnx")
    if family == "transformer-translation":
        assert report["greedy_tokens_identical"] and set(report["files"]) == {"encoder.onnx", "decoder.onnx"}
    else:
        assert report["max_abs_logit_difference"] < 1e-4


@pytest.mark.parametrize("height, width", [(7, 7), (4, 4), (8, 6), (5, 8)])
def test_fourier_transforms_as_matrix_products_equal_the_fft(height, width, monkeypatch):
    """While exporting, rfft2/irfft2 are products with the real DFT matrices (onnxruntime's DFT kernel is slow):
    the same values as torch.fft for odd and even grids, and the same inverse of any spectrum, Hermitian or not
    (the imaginary parts of the zero and Nyquist columns are ignored, as torch.fft.irfft2 does)."""
    from hf_models.layers import irfft2_ortho, rfft2_ortho

    grid = torch.randn(3, height, width, 5)
    spectrum = torch.randn(3, height, width // 2 + 1, 5, dtype=torch.complex64)
    expected = rfft2_ortho(grid), irfft2_ortho(spectrum, (height, width))
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    torch.testing.assert_close(rfft2_ortho(grid), expected[0], atol=2e-6, rtol=0)
    torch.testing.assert_close(irfft2_ortho(spectrum, (height, width)), expected[1], atol=2e-6, rtol=0)


@pytest.mark.parametrize("family", ["gfnet", "afno"])
def test_fourier_models_export_without_the_dft_op(family, tmp_path):
    import onnx

    tiny_classifier(family).save_pretrained(tmp_path / "model")
    report = export(tmp_path / "model", tmp_path / "onnx")
    assert report["max_abs_logit_difference"] < 1e-4
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx"), load_external_data=False).graph
    assert "DFT" not in {node.op_type for node in graph.node} and "MatMul" in {node.op_type for node in graph.node}
