"""ViT: equals transformers' ViT after weight conversion (also at another image size and from legacy parameter
names), attention outputs and backends, position interpolation, save/load, config errors."""

import pytest
import torch
from transformers import AutoModelForImageClassification, ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel
from vision_testing import assert_save_load_identical, tiny_classifier

from hf_models import ClassificationImageProcessor, VisionTransformerConfig, VisionTransformerForImageClassification
from hf_models.convert_vit_from_transformers import (
    LEGACY_LAYER_NAMES,
    convert_vit,
    convert_vit_state_dict,
    main as convert_main,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

# Same sizes for both implementations; intermediate_size 3 * hidden, RGB, non-default layer_norm_eps and labels.
REFERENCE_SIZES = dict(
    image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=96, layer_norm_eps=1e-12, num_labels=5,
)


@pytest.fixture(scope="module")
def reference_vit() -> ViTForImageClassification:
    """transformers' ViT with random weights, biases and LayerNorms perturbed so that no parameter is trivial."""
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(**REFERENCE_SIZES)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


@pytest.fixture(scope="module")
def converted_vit(reference_vit) -> VisionTransformerForImageClassification:
    return convert_vit(reference_vit)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_converted_weights_give_transformers_logits(reference_vit, converted_vit, attn_implementation):
    converted_vit.config._attn_implementation = attn_implementation
    pixel_values = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = reference_vit(pixel_values).logits
        actual = converted_vit(pixel_values).logits
    assert (actual - expected).abs().max() <= 1e-4
    assert converted_vit.config.id2label == reference_vit.config.id2label


def test_converted_weights_match_at_another_image_size(reference_vit, converted_vit):
    """Both interpolate the 4x4 position grid bicubically to 6x5 patches for a 48x40 image."""
    pixel_values = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        expected = reference_vit(pixel_values, interpolate_pos_encoding=True).logits
        actual = converted_vit(pixel_values, interpolate_pos_encoding=True).logits
    assert (actual - expected).abs().max() <= 1e-4


def test_conversion_accepts_legacy_names_and_base_models(reference_vit, converted_vit):
    legacy = {}
    for name, tensor in reference_vit.state_dict().items():
        for legacy_name, new_name in LEGACY_LAYER_NAMES.items():
            name = name.replace(f".{new_name}.", f".{legacy_name}.")
        legacy[name.replace("vit.layers.", "vit.encoder.layer.")] = tensor
    assert any(".attention.attention.query." in name for name in legacy)
    converted = convert_vit_state_dict(legacy, converted_vit.config)
    assert converted.keys() == converted_vit.state_dict().keys()
    for name, tensor in converted.items():
        assert torch.equal(tensor, converted_vit.state_dict()[name]), name

    base = ViTModel(reference_vit.config, add_pooling_layer=True).eval()
    base.load_state_dict(reference_vit.vit.state_dict(), strict=False)
    ours = convert_vit(base)
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, actual = base(pixel_values).last_hidden_state, ours(pixel_values).last_hidden_state
    assert (actual - expected).abs().max() <= 1e-4


def test_conversion_rejects_unknown_parameters(reference_vit, converted_vit):
    state_dict = {**reference_vit.state_dict(), "vit.extra.weight": torch.zeros(1)}
    with pytest.raises(KeyError, match="vit.extra.weight|extra.weight"):
        convert_vit_state_dict(state_dict, converted_vit.config)


def test_conversion_cli_writes_a_loadable_model_and_processor(reference_vit, tmp_path):
    reference_vit.save_pretrained(tmp_path / "source")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "source")
    convert_main([str(tmp_path / "source"), str(tmp_path / "converted")])
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "converted").eval()
    assert type(model) is VisionTransformerForImageClassification
    assert (tmp_path / "converted" / "modeling_vit.py").is_file()
    assert not (tmp_path / "converted" / "convert_vit_from_transformers.py").exists()
    processor = ClassificationImageProcessor.from_pretrained(tmp_path / "converted")
    assert processor.num_channels == 3 and processor.size.height == 32
    pixel_values = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (model(pixel_values).logits - reference_vit(pixel_values).logits).abs().max() <= 1e-4


def test_attentions_and_hidden_states():
    model = tiny_classifier("vit")
    pixel_values = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        outputs = model(pixel_values, output_attentions=True, output_hidden_states=True)
        sdpa_logits = model(pixel_values).logits  # the default backend (SDPA)
    assert len(outputs.attentions) == 2 and outputs.attentions[0].shape == (2, 2, 17, 17)  # CLS + 16 patches
    torch.testing.assert_close(outputs.attentions[0].sum(-1), torch.ones(2, 2, 17))
    assert len(outputs.hidden_states) == 3 and outputs.hidden_states[0].shape == (2, 17, 16)
    torch.testing.assert_close(outputs.logits, sdpa_logits, rtol=0, atol=1e-5)


def test_interpolate_pos_encoding_is_identity_at_training_size_and_required_elsewhere():
    model = tiny_classifier("vit")
    embeddings = model.vit.embeddings
    assert torch.equal(embeddings.interpolate_pos_encoding(4, 4), embeddings.position_embeddings)
    resized = embeddings.interpolate_pos_encoding(6, 3)
    assert resized.shape == (1, 1 + 18, 16) and torch.equal(resized[:, 0], embeddings.position_embeddings[:, 0])
    with torch.no_grad():
        assert model(torch.randn(1, 1, 24, 12), interpolate_pos_encoding=True).logits.shape == (1, 3)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(torch.randn(1, 1, 24, 12))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        model(torch.randn(1, 1, 18, 16), interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="num_channels=1"):
        model(torch.randn(1, 3, 16, 16))


def test_labels_give_cross_entropy_and_gradients_reach_every_parameter():
    model = tiny_classifier("vit", drop_path_rate=0.1, hidden_dropout_prob=0.1).train()
    labels = torch.tensor([0, 2])
    outputs = model(torch.randn(2, 1, 16, 16), labels=labels)
    torch.testing.assert_close(outputs.loss, torch.nn.functional.cross_entropy(outputs.logits, labels))
    outputs.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_save_load_gives_identical_logits(tmp_path):
    assert_save_load_identical(tiny_classifier("vit"), tmp_path)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "num_attention_heads"),
        ({"image_size": 30, "patch_size": 4}, "image_size"),
        ({"patch_size": 0}, "patch_size"),
        ({"attention_dropout": 1.5}, "attention_dropout"),
        ({"drop_path_rate": -0.1}, "drop_path_rate"),
        ({"hidden_act": "swishy"}, "hidden_act"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        VisionTransformerConfig(**kwargs)
