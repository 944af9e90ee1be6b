"""The image-classification recipe end to end (in-process, through its ``main``): MNIST with ViT, and the Fourier
families on a user's image folders (RGB, imagefolder layout, with validation); tiny models, a few steps, few images."""

import json
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import ViTConfig, ViTForImageClassification, pipeline

from hf_models.convert_vit_from_transformers import convert_vit

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
sys.path.insert(0, str(RECIPES))
from train_image_classification import main  # noqa: E402

QUICK = [
    "--model_size", "tiny", "--max_steps", "3", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
    "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--learning_rate", "1e-3", "--logging_steps", "1",
]


def check_output_folder(output_dir: Path, family: str, num_channels: int) -> dict:
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "results.json",
                 "confusion_matrix.png", f"modeling_{family}.py", "image_processing_classification.py"):
        assert (output_dir / name).exists(), name
    processor = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert processor["num_channels"] == num_channels and len(processor["image_mean"]) == num_channels
    results = json.loads((output_dir / "results.json").read_text())
    card = ModelCard.load(output_dir / "README.md")
    assert [result.metric_value for result in card.data.eval_results] == [round(results["accuracy (%)"], 4)]
    classifier = pipeline("image-classification", model=str(output_dir), trust_remote_code=True)
    prediction = classifier(PIL.Image.new("L", (50, 40), 128), top_k=2)
    assert len(prediction) == 2 and prediction[0]["score"] >= prediction[1]["score"]
    return results


def test_recipe_on_mnist_with_vit_writes_model_card_and_pictures(tmp_path):
    results = main(["--arch", "vit", "--output_dir", str(tmp_path), "--max_train_samples", "48", "--max_test_samples", "20", *QUICK])
    assert np.array(results["test_confusion_matrix"]).sum() == 20
    assert np.trace(results["test_confusion_matrix"]) == round(results["test_accuracy"] * 20)
    card_results = check_output_folder(tmp_path, "vit", num_channels=1)
    assert (tmp_path / "attention_rollout.png").stat().st_size > 1000
    card = (tmp_path / "README.md").read_text()
    assert "8,000 train / 2,000 test" in card and "LeCun" in card
    assert "accelerate launch recipes/train_image_classification.py --arch vit" in card  # the Reproduce section
    assert card_results["accuracy (%)"] == pytest.approx(100 * results["test_accuracy"])


def test_recipe_trains_a_performer_vit_without_attention_pictures(tmp_path):
    """Performer attention forms no attention matrix: the recipe draws the confusion matrix but no rollout."""
    results = main([
        "--arch", "vit", "--output_dir", str(tmp_path), "--max_train_samples", "48", "--max_test_samples", "20",
        "--config_overrides", "attention_type=performer,num_random_features=8", *QUICK,
    ])
    assert "test_accuracy" in results
    check_output_folder(tmp_path, "vit", num_channels=1)
    assert json.loads((tmp_path / "config.json").read_text())["attention_type"] == "performer"
    assert (tmp_path / "confusion_matrix.png").exists() and not (tmp_path / "attention_rollout.png").exists()
    assert "attention_rollout.png" not in (tmp_path / "README.md").read_text()


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    """Two classes of RGB images of different sizes: red squares and blue squares, in train/ and validation/."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("validation", 4)):
        for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
            (root / split / name).mkdir(parents=True)
            for index in range(count):
                size = tuple(int(s) for s in rng.integers(20, 60, 2))
                PIL.Image.new("RGB", size, colour).save(root / split / name / f"{index}.png")
    return root


@pytest.mark.parametrize("family", ["gfnet", "afno"])
def test_recipe_on_image_folders(tmp_path, image_folders, family):
    results = main([
        "--arch", family, "--output_dir", str(tmp_path), "--train_dir", str(image_folders / "train"),
        "--validation_dir", str(image_folders / "validation"), "--test_dir", str(image_folders / "validation"),
        "--eval_strategy", "steps", "--eval_steps", "3", "--config_overrides", "drop_path_rate=0.2,mlp_ratio=3", *QUICK,
    ])
    assert {"validation_accuracy", "test_accuracy"} <= results.keys()
    check_output_folder(tmp_path, family, num_channels=3)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["id2label"] == {"0": "blue", "1": "red"}
    assert config["drop_path_rate"] == 0.2 and config["mlp_ratio"] == 3


def test_eval_strategy_without_validation_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs a validation split"):
        main(["--arch", "gfnet", "--output_dir", str(tmp_path), "--eval_strategy", "epoch", *QUICK])


def test_recipe_fine_tunes_a_converted_transformers_vit(tmp_path, image_folders):
    """The pretrained-weights path: a transformers ViT checkpoint, converted, then fine-tuned on 2 new classes."""
    torch.manual_seed(0)
    source = ViTForImageClassification(ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        num_labels=5,
    ))
    convert_vit(source).save_pretrained(tmp_path / "converted")
    results = main([
        "--model_name_or_path", str(tmp_path / "converted"), "--output_dir", str(tmp_path / "tuned"),
        "--train_dir", str(image_folders / "train"), "--test_dir", str(image_folders / "validation"),
        "--config_overrides", "attention_dropout=0.1", *QUICK,
    ])
    assert "test_accuracy" in results
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["model_type"] == "hfm_vit" and config["id2label"] == {"0": "blue", "1": "red"}
    assert config["attention_dropout"] == 0.1
    assert (tmp_path / "tuned" / "attention_rollout.png").exists()
