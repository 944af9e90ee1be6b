"""Helpers the vision tests share: tiny configurations of the three families and the save -> load check."""

from typing import NamedTuple

import torch
from transformers import AutoModelForImageClassification

from hf_models import (
    AFNOConfig,
    AFNOForImageClassification,
    GFNetConfig,
    GFNetForImageClassification,
    VisionTransformerConfig,
    VisionTransformerForImageClassification,
)

# 16x16 grayscale images in 4x4 patches: a 4x4 token grid, small enough for milliseconds per forward pass.
TINY_SIZES = dict(
    image_size=16, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=2, mlp_ratio=2.0, num_labels=3
)


class VisionFamily(NamedTuple):
    """One image family for the tests: its classes, its tiny sizes beyond ``TINY_SIZES``, the config fields whose bad
    values the common tester tries (tests/families.py), and whether its outputs carry attention weights."""

    config_class: type
    model_class: type
    sizes: dict
    bad_config: dict
    has_attentions: bool = False


# The one list of image families the tests know; tests/families.py turns each into a Family of the common registry.
FAMILIES = {
    "vit": VisionFamily(
        VisionTransformerConfig, VisionTransformerForImageClassification, {"num_attention_heads": 2},
        {"hidden_size": 0, "num_attention_heads": 3, "patch_size": 5}, has_attentions=True,
    ),
    "gfnet": VisionFamily(
        GFNetConfig, GFNetForImageClassification, {}, {"hidden_size": 0, "hidden_dropout_prob": 1.0, "drop_path_rate": -1.0}
    ),
    "afno": VisionFamily(
        AFNOConfig, AFNOForImageClassification, {"num_blocks": 4},
        {"hidden_size": 0, "num_blocks": 3, "sparsity_threshold": -1.0},
    ),
}  # fmt: skip


def tiny_classifier(family: str, seed: int = 0, **overrides):
    """A randomly initialised tiny classifier of ``family`` in eval mode, labels "zero", "one", "two"."""
    vision_family = FAMILIES[family]
    torch.manual_seed(seed)
    sizes = {**TINY_SIZES, **vision_family.sizes, **overrides}
    return vision_family.model_class(vision_family.config_class(**sizes, id2label={0: "zero", 1: "one", 2: "two"})).eval()


def assert_save_load_identical(model, folder) -> None:
    """save_pretrained -> AutoModelForImageClassification.from_pretrained gives the same class and logits."""
    model.save_pretrained(folder)
    loaded = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert type(loaded) is type(model)
    pixel_values = torch.randn(2, model.config.num_channels, model.config.image_size, model.config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values).logits, model(pixel_values).logits, rtol=0, atol=0)
    assert loaded.config.id2label == model.config.id2label
