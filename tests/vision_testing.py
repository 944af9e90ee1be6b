"""Helpers the vision tests share: tiny configurations of the three families and the save -> load check."""

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
FAMILIES = {
    "vit": (VisionTransformerConfig, VisionTransformerForImageClassification, {"num_attention_heads": 2}),
    "gfnet": (GFNetConfig, GFNetForImageClassification, {}),
    "afno": (AFNOConfig, AFNOForImageClassification, {"num_blocks": 4}),
}


def tiny_classifier(family: str, seed: int = 0, **overrides):
    """A randomly initialised tiny classifier of ``family`` in eval mode, labels "zero", "one", "two"."""
    config_class, model_class, extra = FAMILIES[family]
    torch.manual_seed(seed)
    config = config_class(**{**TINY_SIZES, **extra, **overrides}, id2label={0: "zero", 1: "one", 2: "two"})
    return model_class(config).eval()


def assert_save_load_identical(model, folder) -> None:
    """save_pretrained -> AutoModelForImageClassification.from_pretrained gives the same class and logits."""
    model.save_pretrained(folder)
    loaded = AutoModelForImageClassification.from_pretrained(folder).eval()
    assert type(loaded) is type(model)
    pixel_values = torch.randn(2, model.config.num_channels, model.config.image_size, model.config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values).logits, model(pixel_values).logits, rtol=0, atol=0)
    assert loaded.config.id2label == model.config.id2label
