"""A new family is its own files plus one registration line: a toy image family, defined here (configuration and
model) and registered with ``hf_models.register_family``, passes the common model tester (tests/model_tester.py),
loads through ``AutoModel`` / ``AutoModelForImageClassification`` and trains through the image recipe
(``recipes/train_image_classification.py --model_name_or_path``) without any other file of the project changing.
Its model is the smallest honest one: patch embedding, residual MLP blocks (``GradientCheckpointingLayer``), mean
pooling."""

import sys
from pathlib import Path

import pytest
import torch
from families import Family, vision_outputs
from huggingface_hub import ModelCard
from model_tester import CHECKS, SLOW_CHECKS, ModelTester
from torch import nn
from transformers import AutoModel, AutoModelForImageClassification, PreTrainedConfig, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from hf_models import ClassificationImageProcessor, register_family

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))  # recipes/ is a script folder
import train_image_classification  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


class ToyImageConfig(PreTrainedConfig):
    model_type = "hfm_test_toy_image"

    def __init__(self, image_size=16, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=2, **kwargs):
        for name, value in {"image_size": image_size, "patch_size": patch_size, "hidden_size": hidden_size}.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.image_size, self.patch_size, self.num_channels = image_size, patch_size, num_channels
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        super().__init__(**kwargs)


class ToyBlock(GradientCheckpointingLayer):
    def __init__(self, config):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size)
        self.mlp = nn.Sequential(nn.Linear(config.hidden_size, 2 * config.hidden_size), nn.GELU(),
                                 nn.Linear(2 * config.hidden_size, config.hidden_size))  # fmt: skip

    def forward(self, hidden_states):
        return hidden_states + self.mlp(self.norm(hidden_states))


class ToyImagePreTrainedModel(PreTrainedModel):
    config_class = ToyImageConfig
    base_model_prefix = "toy"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True


class ToyImageModel(ToyImagePreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.patches = nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, config.patch_size)
        self.layers = nn.ModuleList(ToyBlock(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = self.config.return_dict if return_dict is None else return_dict
        hidden_states = self.patches(pixel_values).flatten(2).transpose(1, 2)
        all_hidden_states = (hidden_states,)
        for layer in self.layers:
            hidden_states = layer(hidden_states)
            all_hidden_states += (hidden_states,)
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden_states,
            pooler_output=hidden_states.mean(dim=1),
            hidden_states=all_hidden_states if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()


class ToyImageForImageClassification(ToyImagePreTrainedModel):
    """Toy image classifier: patch embedding, residual MLP blocks, a linear classifier over the mean patch."""

    def __init__(self, config):
        super().__init__(config)
        self.toy = ToyImageModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.toy(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        output = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


# The one registration line a new family adds to hf_models/__init__.py:
register_family(
    ToyImageConfig, ToyImageModel, {"AutoModelForImageClassification": ToyImageForImageClassification},
    ClassificationImageProcessor,
)  # fmt: skip


def toy_classifier(request):
    torch.manual_seed(0)
    model = ToyImageForImageClassification(ToyImageConfig(id2label={0: "zero", 1: "one", 2: "two"}))
    processor = ClassificationImageProcessor(
        size={"height": 16, "width": 16}, num_channels=1, image_mean=[0.5], image_std=[0.5]
    )
    return model.eval(), processor


TOY = Family("toy-image", "toy", "image-classification", "AutoModelForImageClassification", toy_classifier,
             outputs=vision_outputs(False), bad_config={"hidden_size": 0, "patch_size": -1})  # fmt: skip


@pytest.mark.parametrize(
    "check", [pytest.param(check, marks=[pytest.mark.slow] if check in SLOW_CHECKS else []) for check in CHECKS]
)
def test_a_registered_toy_family_passes_the_common_tester(check, request, tmp_path):
    model, processor = TOY.build(request)
    getattr(ModelTester(TOY, model, processor), f"check_{check}")(tmp_path)


def test_a_registered_toy_family_loads_through_the_auto_classes_and_lists_both_in_auto_map(request, tmp_path):
    model, processor = TOY.build(request)
    model.save_pretrained(tmp_path)
    assert type(AutoModelForImageClassification.from_pretrained(tmp_path)) is ToyImageForImageClassification
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is ToyImageModel
    torch.testing.assert_close(base.patches.weight, model.toy.patches.weight)
    assert set(model.config.auto_map) == {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}


def test_a_registered_toy_family_trains_through_the_image_recipe(tmp_path):
    """The image recipe trains, tests, saves and describes a family it does not list, from a saved initial model
    (``--model_name_or_path``); its card takes the family's sentence from the model class's docstring."""
    torch.manual_seed(0)
    initial = ToyImageForImageClassification(ToyImageConfig())
    initial.save_pretrained(tmp_path / "initial")
    output_dir = tmp_path / "trained"
    results = train_image_classification.main([
        "--model_name_or_path", str(tmp_path / "initial"), "--output_dir", str(output_dir), "--max_train_samples", "32",
        "--max_test_samples", "16", "--max_steps", "2", "--per_device_train_batch_size", "8", "--save_strategy", "no",
        "--report_to", "none", "--use_cpu",
    ])  # fmt: skip
    assert 0 <= results["test_accuracy"] <= 1 and sum(map(sum, results["test_confusion_matrix"])) == 16
    trained = AutoModelForImageClassification.from_pretrained(output_dir)
    assert type(trained) is ToyImageForImageClassification and trained.config.num_labels == 10  # MNIST's digits
    assert not torch.equal(trained.toy.patches.weight, initial.toy.patches.weight)  # the optimizer moved it
    card = ModelCard.load(output_dir / "README.md")
    assert "hfm_test_toy_image" in card.data.tags
    assert "Toy image classifier: patch embedding, residual MLP blocks" in card.text
    assert str(tmp_path / "initial") not in card.text.split("Reproduce")[0]  # hyperparameters name the folder, not this path
    assert (output_dir / "confusion_matrix.png").exists() and (output_dir / "preprocessor_config.json").exists()
