"""Bad-input campaign, image kind: pixels the image path must read right or refuse (issue 16, items 5, 6, 8)."""

import logging
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from hf_models import ClassificationImageProcessor
from hf_models import image_processing_classification

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package
from mnist_data import load_image_folders  # noqa: E402


@pytest.fixture
def processor():
    return ClassificationImageProcessor(size={"height": 8, "width": 8}, num_channels=1, image_mean=[0.0], image_std=[1.0])


@pytest.mark.parametrize("to_input", [np.asarray, torch.from_numpy], ids=["numpy", "torch"])
def test_already_rescaled_floats_are_named(processor, caplog, to_input):
    image_processing_classification.logger.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        processor(to_input(np.full((8, 8), 0.5, dtype=np.float32)), return_tensors="np")
    assert any("already rescaled" in record.getMessage() and "do_rescale=False" in record.getMessage() for record in caplog.records)
    pixels = processor(to_input(np.full((8, 8), 0.5, dtype=np.float32)), do_rescale=False, return_tensors="np").pixel_values
    assert np.allclose(pixels, 0.5, atol=1 / 255), "with do_rescale=False a [0, 1] array keeps its values"


def test_floats_in_0_255_are_rescaled_without_a_warning(processor, caplog):
    image_processing_classification.logger.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        pixels = processor(np.full((8, 8), 102.0, dtype=np.float32), return_tensors="np").pixel_values
    assert np.allclose(pixels, 0.4) and not caplog.records


@pytest.mark.parametrize(
    "image", [PIL.Image.new("L", (0, 0)), PIL.Image.new("RGB", (5, 0)), np.zeros((0, 0), np.uint8), np.zeros((3, 0, 4), np.uint8)],
    ids=["pil-0x0", "pil-5x0", "array-0x0", "array-4x0"],
)
def test_an_image_without_pixels_is_refused(processor, image):
    with pytest.raises(ValueError, match="an image must have pixels"):
        processor(image)


# ---- image folders (issue 16, items 6 and 8) ----


def image_folder(root: Path, per_class: int = 3) -> Path:
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            PIL.Image.fromarray(np.full((6, 6, 3), 40 * index, np.uint8)).save(root / label / f"{index}.png")
    return root


def test_truncated_images_are_named_before_training(tmp_path):
    root = image_folder(tmp_path / "train")
    for broken in (root / "dog" / "1.png", root / "cat" / "2.png"):
        data = broken.read_bytes()
        broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"--train_dir .*: 2 of 6 images cannot be decoded.*cat/2\.png.*dog/1\.png"):
        load_image_folders(str(root), None)


def test_a_stray_image_at_the_root_is_named(tmp_path):
    root = image_folder(tmp_path / "train")
    PIL.Image.new("RGB", (4, 4)).save(root / "stray.jpg")
    with pytest.raises(ValueError, match=r"1 image\(s\) lie directly in the folder \(stray\.jpg\), outside the class sub-folders"):
        load_image_folders(str(root), None)


def test_a_clean_folder_loads(tmp_path):
    split = load_image_folders(str(image_folder(tmp_path / "train")), None)["train"]
    assert len(split) == 6 and split.features["label"].names == ["cat", "dog"]


# ---- a pretrained checkpoint keeps its normalisation (issue 15) ----


def test_a_starting_checkpoint_keeps_its_mean_and_std(tmp_path):
    from train_image_classification import DataArguments, ModelArguments, build_model_and_processor
    from vision_testing import tiny_classifier

    tiny_classifier("vit", num_channels=3).save_pretrained(tmp_path / "pretrained")
    ClassificationImageProcessor(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(tmp_path / "pretrained")
    splits = load_image_folders(str(image_folder(tmp_path / "train")), None)
    model_args = ModelArguments(model_name_or_path=str(tmp_path / "pretrained"))
    _, processor = build_model_and_processor(model_args, DataArguments(), splits, is_mnist=False)
    assert processor.image_mean == [0.485, 0.456, 0.406] and processor.image_std == [0.229, 0.224, 0.225]
    _, measured = build_model_and_processor(ModelArguments(arch="vit"), DataArguments(), splits, is_mnist=False)
    assert measured.image_mean != [0.485, 0.456, 0.406], "a model trained from scratch measures the new images"
