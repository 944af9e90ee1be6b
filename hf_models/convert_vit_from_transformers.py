"""Convert a transformers ViT checkpoint (``ViTModel`` / ``ViTForImageClassification``) into this package's ViT.

Any published ViT checkpoint in transformers format (e.g. ``google/vit-base-patch16-224``, downloaded or on disk)
becomes a ``VisionTransformerForImageClassification`` (or ``VisionTransformerModel``) with identical outputs, which
can then be fine-tuned with ``recipes/train_image_classification.py --model_name_or_path``:

    python -m hf_models.convert_vit_from_transformers path/to/transformers_vit path/to/output

The output folder holds the converted model, its code (so it loads with ``trust_remote_code=True``) and, when the
source has a ``preprocessor_config.json``, an equivalent ``ClassificationImageProcessor``.

Weights map one-to-one, except that the separate query/key/value projections are stacked into the shared attention's
packed ``in_proj`` (a checkpoint trained with ``qkv_bias=False`` gets zero biases, which computes the same). The
tanh pooler of ``ViTModel`` (unused by ``ViTForImageClassification``) is dropped: our ``pooler_output`` is the final
CLS token. Both the parameter names of transformers 5.x and the legacy 4.x names (``encoder.layer.N.attention...``)
are accepted. This module is deliberately not imported by the model code, so saved checkpoints do not carry it.
"""

import argparse
import re
from pathlib import Path

import torch
from transformers import AutoConfig, AutoImageProcessor, ViTForImageClassification, ViTModel

from .configuration_vit import VisionTransformerConfig
from .image_processing_classification import ClassificationImageProcessor
from .modeling_vit import VisionTransformerForImageClassification, VisionTransformerModel

# Legacy (transformers 4.x) layer parameter names -> transformers 5.x names, relative to "layers.N.".
LEGACY_LAYER_NAMES = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
# transformers 5.x layer parameter names -> ours (the attention projections are handled separately).
LAYER_NAMES = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.o_proj": "token_mixer.out_proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
DROPPED_PREFIXES = ("pooler.", "embeddings.mask_token")


def _square(name: str, value):
    """ViTConfig allows (height, width) pairs; our models are square."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"only square {name} is supported, got {value}")
        return value[0]
    return value


def config_from_transformers_vit(vit_config) -> VisionTransformerConfig:
    """Our configuration with the same sizes as a transformers ``ViTConfig`` (labels and problem type included)."""
    image_size, patch_size = _square("image_size", vit_config.image_size), _square("patch_size", vit_config.patch_size)
    mlp_ratio = vit_config.intermediate_size / vit_config.hidden_size
    config = VisionTransformerConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=vit_config.num_channels,
        hidden_size=vit_config.hidden_size,
        num_hidden_layers=vit_config.num_hidden_layers,
        num_attention_heads=vit_config.num_attention_heads,
        mlp_ratio=mlp_ratio,
        hidden_act=vit_config.hidden_act,
        hidden_dropout_prob=vit_config.hidden_dropout_prob,
        attention_dropout=vit_config.attention_probs_dropout_prob,
        layer_norm_eps=vit_config.layer_norm_eps,
        initializer_range=vit_config.initializer_range,
        id2label=dict(vit_config.id2label),
        label2id=dict(vit_config.label2id),
        problem_type=vit_config.problem_type,
    )
    if config.intermediate_size != vit_config.intermediate_size:
        raise ValueError(f"intermediate_size {vit_config.intermediate_size} is not hidden_size * a ratio we can store")
    return config


def _normalise_name(name: str) -> str:
    """Strips the ``vit.`` prefix and maps legacy 4.x names to 5.x names."""
    name = name.removeprefix("vit.")
    match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
    if match:
        index, module, kind = match.groups()
        name = f"layers.{index}.{LEGACY_LAYER_NAMES.get(module, module)}.{kind}"
    return name


def convert_vit_state_dict(state_dict: dict[str, torch.Tensor], config: VisionTransformerConfig) -> dict:
    """A transformers ViT state dict (5.x or legacy names, with or without the ``vit.`` prefix and classifier) as
    the state dict of our ``VisionTransformerForImageClassification``. Unknown parameters raise ``KeyError``."""
    source = {_normalise_name(name): tensor for name, tensor in state_dict.items()}
    converted = {}
    for index in range(config.num_hidden_layers):
        prefix = f"layers.{index}."
        projections = [source.pop(f"{prefix}attention.{p}_proj.weight") for p in "qkv"]
        biases = [source.pop(f"{prefix}attention.{p}_proj.bias", None) for p in "qkv"]
        converted[f"vit.{prefix}token_mixer.in_proj.weight"] = torch.cat(projections)
        converted[f"vit.{prefix}token_mixer.in_proj.bias"] = torch.cat(
            [bias if bias is not None else torch.zeros(config.hidden_size) for bias in biases]
        )
    for name, tensor in source.items():
        match = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", name)
        if match and match.group(2) in LAYER_NAMES:
            index, module, kind = match.groups()
            converted[f"vit.layers.{index}.{LAYER_NAMES[module]}.{kind}"] = tensor
        elif name.startswith(("embeddings.cls_token", "embeddings.position_embeddings", "embeddings.patch_embeddings.", "layernorm.")):
            converted[f"vit.{name}"] = tensor
        elif name.startswith("classifier."):
            converted[name] = tensor
        elif not name.startswith(DROPPED_PREFIXES):
            raise KeyError(f"unexpected parameter in the ViT checkpoint: {name}")
    return converted


def convert_vit(transformers_model) -> VisionTransformerForImageClassification | VisionTransformerModel:
    """Our model with the weights of a transformers ``ViTForImageClassification`` (-> our classifier) or
    ``ViTModel`` (-> our ``VisionTransformerModel``), in eval mode."""
    config = config_from_transformers_vit(transformers_model.config)
    has_classifier = hasattr(transformers_model, "classifier")
    state_dict = convert_vit_state_dict(transformers_model.state_dict(), config)
    if has_classifier:
        model = VisionTransformerForImageClassification(config)
    else:
        model = VisionTransformerModel(config)
        state_dict = {name.removeprefix("vit."): tensor for name, tensor in state_dict.items()}
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def convert_image_processor(source: str | Path, num_channels: int) -> ClassificationImageProcessor | None:
    """Our processor with the size, resampling, rescaling and mean/std of the source's ``ViTImageProcessor``."""
    if not (Path(source) / "preprocessor_config.json").is_file():
        return None
    original = AutoImageProcessor.from_pretrained(source)
    return ClassificationImageProcessor(
        size=dict(original.size),
        resample=original.resample,
        do_resize=original.do_resize,
        do_rescale=original.do_rescale,
        rescale_factor=original.rescale_factor,
        do_normalize=original.do_normalize,
        image_mean=original.image_mean,
        image_std=original.image_std,
        num_channels=num_channels,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert a transformers ViT checkpoint into hf_models' ViT.")
    parser.add_argument("source", help="folder (or Hub id, when online) of a transformers ViT checkpoint")
    parser.add_argument("output_dir", help="where the converted model, its code and its image processor go")
    args = parser.parse_args(argv)

    source_config = AutoConfig.from_pretrained(args.source)
    if source_config.model_type != "vit":
        raise ValueError(f"{args.source} holds a {source_config.model_type!r} model, not a transformers ViT")
    is_classifier = any(arch.endswith("ForImageClassification") for arch in source_config.architectures or [])
    source_class = ViTForImageClassification if is_classifier else ViTModel
    model = convert_vit(source_class.from_pretrained(args.source))
    model.save_pretrained(args.output_dir)
    processor = convert_image_processor(args.source, model.config.num_channels)
    if processor is not None:
        processor.save_pretrained(args.output_dir)
    print(f"converted {args.source} ({type(model).__name__}, {model.num_parameters():,} parameters) -> {args.output_dir}")


if __name__ == "__main__":
    main()
