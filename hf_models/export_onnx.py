"""ONNX export of a saved model, checked against PyTorch in onnxruntime, optionally quantised to int8.

    python -m hf_models.export_onnx MODEL_DIR OUT_DIR [--quantize int8] [--opset 18]

Graphs go through ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch axis (and a dynamic sequence axis for
text). Per task:

* image classification (ViT, GFNet, AFNO): ``model.onnx``, ``pixel_values -> logits``. GFNet/AFNO's ``rfft2`` /
  ``irfft2`` are exported as products with the real DFT matrices (``hf_models.layers.rfft2_ortho``), not as the
  ONNX ``DFT`` op, whose onnxruntime CPU kernel made these graphs 3-15x slower than PyTorch eager.
* text classification: ``model.onnx``, ``input_ids, attention_mask -> logits``.
* seq2seq (Transformer, GRU): ``encoder.onnx`` (``input_ids, attention_mask -> encoder_hidden_states``; the GRU
  encoder graph has a fixed source length, ``--gru_source_length``, shorter sources are padded to it) and
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
GRU_SOURCE_LENGTH = 64  # default fixed source length of the GRU encoder graph (see export_seq2seq)


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


class EncoderGraph(nn.Module):
    """A seq2seq model's encoder as the graph the exporter traces: ``input_ids, attention_mask -> hidden states``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


class TransformerDecoderStep(nn.Module):
    """One decoding step of the Transformer with its self-attention cache as one tensor, so onnxruntime can loop:
    ``(decoder_input_ids (batch, 1), encoder_hidden_states, encoder_attention_mask, past) -> (logits (batch, vocab),
    present)``. ``past`` is ``(layers, 2, batch, heads, past_length, head_dim)`` (keys, values), empty (length 0) at
    the first step; ``present`` is the same with this step appended. Cross-attention keys and values are recomputed
    from ``encoder_hidden_states`` at every step (one graph, no second "first step" graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask, past):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        from .seq2seq import CACHE_FIELD

        self_cache = DynamicCache(config=self.model.config)
        for layer in range(past.shape[0]):
            self_cache.update(past[layer, 0], past[layer, 1], layer)
        cache = EncoderDecoderCache(self_cache, DynamicCache(config=self.model.config))
        outputs = self.model(
            encoder_outputs=(encoder_hidden_states,),
            attention_mask=encoder_attention_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=True,
            return_dict=True,
            **{CACHE_FIELD: cache},
        )
        present = torch.stack([torch.stack((layer.keys, layer.values)) for layer in self_cache.layers])
        return outputs.logits[:, -1], present


def decoder_cache_shape(config) -> tuple[int, int, int]:
    """``(layers, heads, head_dim)`` of the stacked self-attention cache; pruned decoders need equal heads per layer."""
    if getattr(config, "attention_type", "softmax") != "softmax":
        raise OnnxExportError(
            f"attention_type={config.attention_type!r}: the seq2seq export carries a softmax key/value cache; the "
            "performer's running-sum cache has no ONNX decoder graph yet"
        )
    heads = getattr(config, "decoder_attention_heads_per_layer", None) or [config.num_attention_heads]
    if len(set(heads)) > 1:
        raise OnnxExportError(f"decoder_attention_heads_per_layer={heads}: the stacked cache needs equal heads per layer")
    return config.decoder_layers, heads[0], config.hidden_size // config.num_attention_heads


class GRUEncoderGraph(EncoderGraph):
    """The GRU encoder plus what the decoder starts from: ``input_ids, attention_mask -> encoder_hidden_states,
    hidden (layers, batch, hidden_size) = s_0, attention_keys`` (the encoder states projected for scoring once)."""

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.decoder = model.get_decoder()

    def forward(self, input_ids, attention_mask):
        encoded = self.encoder(input_ids, attention_mask, return_dict=True)
        states = encoded.last_hidden_state
        hidden = self.decoder.initial_hidden(encoded.final_hidden_state)
        return states, hidden, self.decoder.attention.project_keys(states)


class GRUDecoderStep(nn.Module):
    """One GRU decoding step: ``(decoder_input_ids (batch, 1), encoder_hidden_states, encoder_attention_mask, hidden,
    attention_keys) -> (logits (batch, vocab), next_hidden)``; the GRU state is the whole cache."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder, self.lm_head = model.get_decoder(), model.lm_head

    def forward(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask, hidden, attention_keys):
        attentional, _, step_hidden, _ = self.decoder(
            decoder_input_ids, encoder_hidden_states, encoder_attention_mask, hidden, attention_keys
        )
        return self.lm_head(attentional[:, -1]), step_hidden[:, :, -1]


def export_seq2seq(model: nn.Module, out_dir: Path, opset: int, source_length: int = GRU_SOURCE_LENGTH) -> list[str]:
    """``encoder.onnx`` and ``decoder.onnx``; the decoder's second input after the encoder mask is its recurrent
    state (the Transformer's ``past``, the GRU's ``hidden``) and its second output the updated one."""
    name = type(model).__name__
    if name not in ("TransformerForConditionalGeneration", "GRUSeq2SeqForConditionalGeneration"):
        raise OnnxExportError(f"{name}: no decoder-with-cache graph for this model")
    gru = name.startswith("GRU")
    # torch.gru's ONNX GRU node comes out with the traced source length baked in: the GRU encoder graph takes a
    # fixed ``source_length``, and OnnxSeq2SeqGenerator right-pads shorter sources to it (the encoder masks padding)
    inputs = example_inputs(model, batch_size=2, seq_length=source_length if gru else 7)
    encoder = (GRUEncoderGraph if gru else EncoderGraph)(model).eval()
    encoder_outputs = ["encoder_hidden_states", "hidden", "attention_keys"] if gru else ["encoder_hidden_states"]
    export_graph(
        encoder, inputs, out_dir / "encoder.onnx", encoder_outputs,
        dynamic_shapes(inputs, () if gru else ("input_ids", "attention_mask")), opset, "encoder graph",
    )  # fmt: skip
    with torch.no_grad():
        encoded = encoder(**inputs)
    source = torch.export.Dim("source")
    step_inputs = {
        "decoder_input_ids": torch.full((2, 1), model.config.decoder_start_token_id),
        "encoder_hidden_states": encoded[0] if gru else encoded,
        "encoder_attention_mask": inputs["attention_mask"],
    }
    shapes = {
        "decoder_input_ids": {0: BATCH},
        "encoder_hidden_states": {0: BATCH, 1: source},
        "encoder_attention_mask": {0: BATCH, 1: source},
    }
    if gru:
        step_inputs.update(hidden=encoded[1], attention_keys=encoded[2])
        shapes.update(hidden={1: BATCH}, attention_keys={0: BATCH, 1: source})
        step, outputs = GRUDecoderStep(model), ["logits", "next_hidden"]
    else:
        layers, heads, head_dim = decoder_cache_shape(model.config)
        step_inputs["past"] = torch.randn(layers, 2, 2, heads, 3, head_dim)
        shapes["past"] = {2: BATCH, 4: torch.export.Dim("past", min=0)}
        step, outputs = TransformerDecoderStep(model), ["logits", "present"]
    export_graph(step, step_inputs, out_dir / "decoder.onnx", outputs, shapes, opset, "decoder-with-cache graph")
    return ["encoder.onnx", "decoder.onnx"]


class OnnxSeq2SeqGenerator:
    """Greedy generation in onnxruntime alone, as ``generate(num_beams=1, do_sample=False)`` does it: start from
    ``decoder_start_token_id``, feed each step's argmax back with the decoder's recurrent state, stop a row at
    ``eos_token_id`` (padding it afterwards with ``pad_token_id``), stop when every row has ended or after
    ``max_new_tokens``. The recurrent state starts as the encoder's output of the same name (GRU ``hidden``) or empty
    (Transformer ``past``, length 0)."""

    def __init__(self, folder: str | Path, suffix: str = "", num_threads: int | None = None):
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        self.encoder = session(folder / f"encoder{suffix}.onnx", num_threads)
        self.decoder = session(folder / f"decoder{suffix}.onnx", num_threads)
        self.encoder_outputs = [output.name for output in self.encoder.get_outputs()]
        self.state_inputs = [item.name for item in self.decoder.get_inputs()][3:]
        self.start, self.eos, self.pad = config["decoder_start_token_id"], config["eos_token_id"], config["pad_token_id"]
        if "past" in self.state_inputs:
            heads = (config.get("decoder_attention_heads_per_layer") or [config["num_attention_heads"]])[0]
            self.past_shape = (config["decoder_layers"], 2, heads, config["hidden_size"] // config["num_attention_heads"])

    def generate(self, input_ids, attention_mask, max_new_tokens: int) -> np.ndarray:
        input_ids, attention_mask = np.asarray(input_ids, dtype=np.int64), np.asarray(attention_mask, dtype=np.int64)
        batch, length = input_ids.shape
        fixed = self.encoder.get_inputs()[0].shape[1]
        if isinstance(fixed, int) and length != fixed:  # a graph with a fixed source length (the GRU's)
            if length > fixed:
                raise ValueError(f"this encoder graph takes sources of at most {fixed} tokens, got {length}")
            input_ids = np.pad(input_ids, ((0, 0), (0, fixed - length)), constant_values=self.pad)
            attention_mask = np.pad(attention_mask, ((0, 0), (0, fixed - length)))
        encoded = self.encoder.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        feed = dict(zip(self.encoder_outputs, encoded), encoder_attention_mask=attention_mask)
        if "past" in self.state_inputs:
            layers, pair, heads, head_dim = self.past_shape
            feed["past"] = np.zeros((layers, pair, batch, heads, 0, head_dim), dtype=np.float32)
        feed = {name: feed[name] for name in ("encoder_hidden_states", "encoder_attention_mask", *self.state_inputs)}
        tokens = np.full((batch, 1), self.start, dtype=np.int64)
        finished = np.zeros(batch, dtype=bool)
        for _ in range(max_new_tokens):
            logits, feed[self.state_inputs[0]] = self.decoder.run(None, {"decoder_input_ids": tokens[:, -1:], **feed})
            next_tokens = np.where(finished, self.pad, logits.argmax(-1))
            tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
            finished |= next_tokens == self.eos
            if finished.all():
                break
        return tokens


def check_seq2seq(model: nn.Module, out_dir: Path, suffix: str = "", strict: bool = True, max_new_tokens: int = 8):
    """Whether onnxruntime's greedy tokens for a batch of 3 equal ``generate()``'s; ``strict``: raise
    :class:`OnnxExportError` if not (fp32 graphs must agree; int8 ones are only reported)."""
    inputs = example_inputs(model, batch_size=3, seq_length=11, seed=1)
    with torch.no_grad():
        expected = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False).numpy()
    got = OnnxSeq2SeqGenerator(out_dir, suffix).generate(inputs["input_ids"], inputs["attention_mask"], max_new_tokens)
    identical = got.shape == expected.shape and bool((got == expected).all())
    if strict and not identical:
        raise OnnxExportError(f"{out_dir}: onnxruntime greedy tokens {got.tolist()} differ from generate()'s {expected.tolist()}")
    return identical


def onnx_bytes(path: Path) -> int:
    """The size of a graph with the external-data files its initializers point to (the dynamo exporter writes the
    weights to ``model.onnx.data``, beside a small ``model.onnx``)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    locations = {
        entry.value
        for tensor in graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return path.stat().st_size + sum((path.parent / location).stat().st_size for location in locations)


def copy_model_files(model_dir: Path, out_dir: Path, skip: tuple[str, ...] = ()) -> None:
    """Config, generation config, tokenizer and image-processor files (everything but weights, code and ``skip``)."""
    for path in model_dir.iterdir():
        if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES) and path.suffix != ".py" and path.name not in skip:
            shutil.copy2(path, out_dir / path.name)


def export(
    model_dir, out_dir, quantize: str | None = None, opset: int = 18, atol: float = 1e-4,
    gru_source_length: int = GRU_SOURCE_LENGTH,
) -> dict:  # fmt: skip
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
        files = export_seq2seq(model, out_dir, opset, gru_source_length)
        copy_model_files(model_dir, out_dir)  # the generator reads config.json
        report["greedy_tokens_identical"] = check_seq2seq(model, out_dir)
    else:
        files = export_classifier(model, out_dir, opset)
        report["max_abs_logit_difference"] = check_classifier(model, out_dir, atol=atol)
    if quantize == "int8":
        for file in list(files):
            target = file.replace(".onnx", "_int8.onnx")
            quantize_dynamic_onnx(out_dir / file, out_dir / target)
            files.append(target)
        if task == SEQ2SEQ:
            report["int8_greedy_tokens_identical"] = check_seq2seq(model, out_dir, "_int8", strict=False)
        else:
            report["int8_max_abs_logit_difference"] = check_classifier(model, out_dir, "model_int8.onnx", atol=np.inf)
    copy_model_files(model_dir, out_dir)
    report["files"] = {file: onnx_bytes(out_dir / file) for file in files}  # bytes, external weights included
    (out_dir / "onnx_export.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hf_models.export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="a folder written by save_pretrained")
    parser.add_argument("out_dir", help="where the .onnx graphs (and config/processor files) go")
    parser.add_argument("--quantize", choices=["int8"], help="also write dynamically int8-quantised graphs")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest |ORT - PyTorch| logit difference accepted")
    parser.add_argument("--gru_source_length", type=int, default=GRU_SOURCE_LENGTH,
                        help="GRU translators: the encoder graph's fixed source length (shorter sources are padded)")
    args = parser.parse_args(argv)
    try:
        report = export(args.model_dir, args.out_dir, args.quantize, args.opset, args.atol, args.gru_source_length)
    except (OnnxExportError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
