"""int8 post-training quantisation of a saved model through transformers' ``TorchAoConfig``, so the quantised
model saves and reloads with ``from_pretrained`` like any other.

    python -m hf_models.quantization MODEL_DIR OUT_DIR [--mode dynamic|weight_only] [--asymmetric]

Modes (torchao, every ``nn.Linear``; weights int8 per output channel, symmetric):

* ``dynamic``: activations quantised to int8 on the fly, per token, symmetric (``--asymmetric``: with a zero point).
* ``weight_only``: int8 weights dequantised in the matrix product; activations stay in floating point.

Static (calibrated) int8 is onnxruntime's (``hf_models.export_onnx.quantize_static_onnx``): torchao's static config
takes one activation scale per config, and ``TorchAoConfig`` applies one config to every layer. On CPU torchao's int8
was slower than fp32 on the small published models and behind onnxruntime's int8 on ViT-S/16 (the README's
"Deployment" section has the numbers): the torchao path is for size (int8 weights on disk, reloaded with
``from_pretrained``) and for GPUs, onnxruntime's for CPU speed.
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers import TorchAoConfig

MODES = ("dynamic", "weight_only")


def torchao_int8_config(mode: str = "dynamic", symmetric: bool = True) -> TorchAoConfig:
    """The ``TorchAoConfig`` of an int8 mode; a request the backend cannot serve fails naming the alternative."""
    if mode == "static":
        raise ValueError(
            "static int8 is not available through TorchAoConfig (one activation scale for every layer); calibrate "
            "with onnxruntime instead: hf_models.export_onnx.quantize_static_onnx"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "weight_only" and not symmetric:
        raise ValueError("weight_only int8 quantises no activations, so it has no asymmetric variant; use mode='dynamic'")
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
        from torchao.quantization.quant_primitives import MappingType
    except ImportError as error:
        raise ImportError("int8 through TorchAoConfig needs torchao: pip install 'hf_models[deploy]'") from error
    if mode == "weight_only":
        return TorchAoConfig(Int8WeightOnlyConfig())
    mapping = MappingType.SYMMETRIC if symmetric else MappingType.ASYMMETRIC
    return TorchAoConfig(Int8DynamicActivationInt8WeightConfig(act_mapping_type=mapping))


def quantize_saved_model(model_dir, out_dir, mode: str = "dynamic", symmetric: bool = True) -> torch.nn.Module:
    """Loads ``model_dir`` int8-quantised, saves it (weights, config with its ``quantization_config``, processor and
    tokenizer files) to ``out_dir`` and returns it; ``from_pretrained(out_dir)`` gives the same model back."""
    from .export_onnx import copy_model_files, load_model

    model = load_model(model_dir, quantization_config=torchao_int8_config(mode, symmetric))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    copy_model_files(Path(model_dir), out_dir, skip=("config.json", "generation_config.json"))  # save wrote those
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hf_models.quantization", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--mode", choices=MODES, default="dynamic")
    parser.add_argument("--asymmetric", action="store_true", help="activations with a zero point (dynamic mode)")
    args = parser.parse_args(argv)
    try:
        quantize_saved_model(args.model_dir, args.out_dir, args.mode, symmetric=not args.asymmetric)
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out_dir} (int8 {args.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
