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
