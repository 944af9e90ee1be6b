"""ONNX export of a saved model, checked against PyTorch in onnxruntime, optionally quantised to int8.

    python -m hf_models.export_onnx MODEL_DIR OUT_DIR [--quantize int8] [--opset 18]

Graphs go through ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch axis (and a dynamic sequence axis for
text). Per task:

* image classification (ViT, GFNet, AFNO): ``model.onnx``, ``pixel_values -> logits``. GFNet/AFNO's ``rfft2`` /
  ``irfft2`` become the ONNX ``DFT`` op (opset >= 17).
* text classification: ``model.onnx``, ``input_ids, attention_mask -> logits``.
* seq2seq (Transformer, GRU): ``encoder.onnx`` (``input_ids, attention_mask -> encoder_hidden_states``) and
  ``decoder.onnx``, one greedy step with the decoder's cache as explicit tensors (see
  :class:`OnnxSeq2SeqGenerator`), so generation runs in onnxruntime alone.

``OUT_DIR`` also receives the model's config and its tokenizer / image processor files, so it is self-describing.
After exporting, the CLI runs onnxruntime on inputs of another batch size than the export's and compares with
PyTorch: the logits must agree within ``--atol`` (default 1e-4), the seq2seq greedy tokens exactly; otherwise it
fails. ``--quantize int8`` adds ``*_int8.onnx`` graphs from onnxruntime's dynamic quantiser (weights int8
per-channel, activations quantised at run time) and reports their deviation; static (calibrated) quantisation is
:func:`quantize_static_onnx`.

A model that cannot be traced (data-dependent Python in its forward) fails with :class:`OnnxExportError` naming the
source line that blocked the export.
"""

import argparse
import json
import re
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
IMAGE, TEXT, SEQ2SEQ = "image-classification", "text-classification", "seq2seq"


class OnnxExportError(RuntimeError):
    """A model could not be exported (the message names the blocking source line) or does not match PyTorch."""


def task_of(model: nn.Module) -> str:
    name = type(model).__name__
    if name.endswith("ForImageClassification"):
        return IMAGE
    if name.endswith("ForSequenceClassification"):
        return TEXT
    if name.endswith("ForConditionalGeneration"):
        return SEQ2SEQ
    raise OnnxExportError(
        f"{type(model).__name__}: no ONNX export for this class (image/text classifiers and seq2seq LMs have one)"
    )


def load_model(model_dir: str | Path, **kwargs) -> nn.Module:
    """The model saved in ``model_dir`` with the Auto class its config names, in eval mode (fp32 unless ``kwargs``
    say otherwise: ``dtype``, ``quantization_config``)."""
    import hf_models  # noqa: F401  (registers the package's Auto classes)
    from transformers import (
        AutoConfig,
        AutoModelForImageClassification,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )

    config = AutoConfig.from_pretrained(model_dir)
    architecture = (config.architectures or [""])[0]
    for suffix, auto_class in (
        ("ForImageClassification", AutoModelForImageClassification),
        ("ForSequenceClassification", AutoModelForSequenceClassification),
        ("ForConditionalGeneration", AutoModelForSeq2SeqLM),
    ):
        if architecture.endswith(suffix):
            return auto_class.from_pretrained(model_dir, **{"dtype": torch.float32, **kwargs}).eval()
    raise OnnxExportError(f"{model_dir}/config.json: architectures={config.architectures!r} has no ONNX export")


class ImageLogits(nn.Module):
    """An image classifier as the graph the exporter traces: ``pixel_values -> logits``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, return_dict=True).logits


class TextLogits(ImageLogits):
    """A text classifier as the graph the exporter traces: ``input_ids, attention_mask -> logits``."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).logits


def example_inputs(model: nn.Module, batch_size: int, seq_length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs for tracing and checking: random images, or random token ids with the last row right-padded."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    if task_of(model) == IMAGE:
        shape = (batch_size, config.num_channels, config.image_size, config.image_size)
        return {"pixel_values": torch.randn(shape, generator=generator)}
    low = 4 if config.vocab_size > 8 else 0  # past the special tokens
    input_ids = torch.randint(low, config.vocab_size, (batch_size, seq_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    if batch_size > 1:
        attention_mask[-1, seq_length // 2 + 1 :] = 0
        input_ids[-1, seq_length // 2 + 1 :] = config.pad_token_id
    return {"input_ids": input_ids, "attention_mask": attention_mask}


BATCH, SEQUENCE = torch.export.Dim("batch"), torch.export.Dim("sequence")


def dynamic_shapes(inputs: dict[str, torch.Tensor], sequence: tuple[str, ...] = ()) -> dict[str, dict]:
    """Every input's axis 0 is the batch; the inputs named in ``sequence`` have a sequence axis 1 too."""
    return {name: {0: BATCH} | ({1: SEQUENCE} if name in sequence else {}) for name in inputs}


def blocking_line(error: BaseException) -> str:
    """What blocked an export, for an error that says what to change: the innermost line of the model's code (not
    torch's, not Python's) in the traceback or message (torch.export quotes the user frame that failed), else the
    exporter's own summary (a conversion failure names the aten op that has no ONNX translation)."""
    text = "".join(traceback.format_exception(error))
    text = text[text.rfind(f'File "{__file__}"') :]  # what the exporter saw, not the frames that called it
    locations = [
        (path, line)
        for path, line in re.findall(r'File "([^"]+\.py)", line (\d+)', text)
        if "site-packages" not in path and "/lib/python" not in path and path != __file__
    ]
    if locations:
        path, line = locations[-1]
        source = Path(path).read_text().splitlines()[int(line) - 1].strip() if Path(path).exists() else ""
        return f"{Path(path).name}:{line}: {source}"
    summary = re.search(r"## Exception summary\s+(.+)", text)
    return summary.group(1).strip()[:400] if summary else str(error).strip().splitlines()[0][:400]


def export_graph(module: nn.Module, inputs: dict, path: Path, output_names, dynamic, opset: int, what: str) -> None:
    try:
        torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=list(output_names),
            dynamic_shapes=dynamic,
            dynamo=True,
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    except Exception as error:  # the exporter raises many types; all mean "this code cannot be traced"
        raise OnnxExportError(f"{what}: torch.onnx.export failed: {blocking_line(error)}") from error


def session(path: str | Path, num_threads: int | None = None):
    """An onnxruntime CPU session with all graph optimisations; ``num_threads`` intra-op threads (default: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def numpy_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in inputs.items()}


class OnnxClassifier:
    """onnxruntime inference of an exported classifier: ``logits = OnnxClassifier(out_dir)(**inputs)``, where inputs
    are numpy arrays or tensors named as the model's (``pixel_values``, or ``input_ids`` + ``attention_mask``)."""

    def __init__(self, folder: str | Path, file: str = "model.onnx", num_threads: int | None = None):
        self.session = session(Path(folder) / file, num_threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, **inputs) -> np.ndarray:
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}; the graph takes {self.input_names}")
        feed = {name: np.asarray(inputs[name]) for name in self.input_names}
        return self.session.run(["logits"], feed)[0]


def export_classifier(model: nn.Module, out_dir: Path, opset: int) -> list[str]:
    task = task_of(model)
    inputs = example_inputs(model, batch_size=2)
    sequence = ("input_ids", "attention_mask") if task == TEXT else ()
    export_graph(
        (TextLogits if task == TEXT else ImageLogits)(model),
        inputs,
        out_dir / "model.onnx",
        ["logits"],
        dynamic_shapes(inputs, sequence),
        opset,
        f"{type(model).__name__} logits graph",
    )
    return ["model.onnx"]


def check_classifier(model: nn.Module, out_dir: Path, file: str = "model.onnx", atol: float = 1e-4) -> float:
    """Max |ORT - PyTorch| over the logits of a batch of 3 (the export traced a batch of 2, and for text a longer
    sequence), raising :class:`OnnxExportError` beyond ``atol``."""
    inputs = example_inputs(model, batch_size=3, seq_length=11, seed=1)
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    got = OnnxClassifier(out_dir, file)(**numpy_inputs(inputs))
    difference = float(np.abs(got - expected).max())
    if difference > atol:
        raise OnnxExportError(f"{out_dir / file}: onnxruntime logits differ from PyTorch by {difference:.2e} > {atol}")
    return difference


def quantize_dynamic_onnx(source: Path, target: Path, symmetric_activations: bool = False) -> None:
    """onnxruntime's dynamic int8 quantisation: MatMul/Gemm weights int8 per output channel (symmetric), activations
    quantised on the fly (asymmetric uint8 by default; ``symmetric_activations`` int8 around 0)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"ActivationSymmetric": symmetric_activations},
    )


def quantize_static_onnx(
    source: Path, target: Path, calibration: list[dict[str, np.ndarray]], symmetric_activations: bool = False
) -> None:
    """onnxruntime's static int8 quantisation (QDQ): activation ranges calibrated (min/max) on ``calibration``
    batches of graph inputs (training images or texts), weights int8 per channel."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            return next(self.batches, None)

    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"ActivationSymmetric": symmetric_activations},
    )


def copy_model_files(model_dir: Path, out_dir: Path, skip: tuple[str, ...] = ()) -> None:
    """Config, generation config, tokenizer and image-processor files (everything but weights, code and ``skip``)."""
    for path in model_dir.iterdir():
        if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES) and path.suffix != ".py" and path.name not in skip:
            shutil.copy2(path, out_dir / path.name)


def export(model_dir, out_dir, quantize: str | None = None, opset: int = 18, atol: float = 1e-4) -> dict:
    """Exports the model saved in ``model_dir`` to ``out_dir``, checks it in onnxruntime, and returns a report:
    the graphs written and the measured deviation from PyTorch."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if quantize not in (None, "int8"):
        raise ValueError(f"--quantize must be int8 (or absent), got {quantize!r}")
    model = load_model(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = task_of(model)
    report = {"model_dir": str(model_dir), "task": task, "opset": opset}
    if task == SEQ2SEQ:
        raise OnnxExportError(f"{type(model).__name__}: the seq2seq export (encoder + decoder-with-cache) is not built yet")
    files = export_classifier(model, out_dir, opset)
    report["max_abs_logit_difference"] = check_classifier(model, out_dir, atol=atol)
    if quantize == "int8":
        for file in list(files):
            target = file.replace(".onnx", "_int8.onnx")
            quantize_dynamic_onnx(out_dir / file, out_dir / target)
            files.append(target)
        if task != SEQ2SEQ:
            report["int8_max_abs_logit_difference"] = check_classifier(model, out_dir, "model_int8.onnx", atol=np.inf)
    copy_model_files(model_dir, out_dir)
    report["files"] = {file: (out_dir / file).stat().st_size for file in files}
    (out_dir / "onnx_export.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hf_models.export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="a folder written by save_pretrained")
    parser.add_argument("out_dir", help="where the .onnx graphs (and config/processor files) go")
    parser.add_argument("--quantize", choices=["int8"], help="also write dynamically int8-quantised graphs")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17 for the FFT models' DFT op)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest |ORT - PyTorch| logit difference accepted")
    args = parser.parse_args(argv)
    try:
        report = export(args.model_dir, args.out_dir, args.quantize, args.opset, args.atol)
    except (OnnxExportError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
