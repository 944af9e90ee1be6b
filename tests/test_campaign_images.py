"""Bad-input campaign, image kind: pixels the image path must read right or refuse (issue 16, items 5, 6, 8)."""

import logging

import numpy as np
import PIL.Image
import pytest
import torch

from hf_models import ClassificationImageProcessor
from hf_models import image_processing_classification


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
