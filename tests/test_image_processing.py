"""ClassificationImageProcessor: every common PIL mode converts to the model's channel count with the right values,
extreme sizes work, bytes/paths decode (or fail clearly), arrays in any layout, normalisation, save/load."""

import io

import numpy as np
import PIL.Image
import pytest
from transformers import AutoImageProcessor

from hf_models import ClassificationImageProcessor, GFNetConfig

GRAY = ClassificationImageProcessor(size={"height": 4, "width": 4}, num_channels=1, do_normalize=False)
RGB = ClassificationImageProcessor(size={"height": 4, "width": 4}, num_channels=3, do_normalize=False)


def pixels(processor, image, **kwargs) -> np.ndarray:
    """The processed image (channels, 4, 4) back on the 0..255 scale."""
    return processor(image, return_tensors="np", **kwargs).pixel_values[0] * 255


def constant(mode: str, value, size=(4, 4)) -> PIL.Image.Image:
    return PIL.Image.new(mode, size, value)


@pytest.mark.parametrize(
    "image, gray, rgb",
    [
        (constant("L", 100), 100, (100, 100, 100)),
        (constant("RGB", (255, 0, 0)), 76, (255, 0, 0)),  # luma 0.299 * 255
        (constant("1", 1), 255, (255, 255, 255)),
        (constant("CMYK", (0, 255, 255, 0)), 76, (255, 0, 0)),  # no black, full magenta + yellow: red
        (constant("I;16", 65535), 255, (255, 255, 255)),  # 16-bit white, not clipped garbage
        (constant("I;16", 257 * 100), 100, (100, 100, 100)),
        (constant("I", 257 * 40), 40, (40, 40, 40)),
        (constant("RGBA", (255, 0, 0, 0)), 255, (255, 255, 255)),  # fully transparent: the white background
        (constant("RGBA", (0, 0, 0, 255)), 0, (0, 0, 0)),  # opaque black
        (constant("RGBA", (0, 0, 0, 128)), 127, (127, 127, 127)),  # half-transparent black on white
        (constant("LA", (0, 0)), 255, (255, 255, 255)),
    ],
    ids=["L", "RGB", "1", "CMYK", "I16-white", "I16-gray", "I", "RGBA-clear", "RGBA-opaque", "RGBA-half", "LA"],
)
def test_modes_convert_to_one_and_three_channels(image, gray, rgb):
    np.testing.assert_allclose(pixels(GRAY, image), np.full((1, 4, 4), gray), atol=1)
    np.testing.assert_allclose(pixels(RGB, image), np.broadcast_to(np.array(rgb)[:, None, None], (3, 4, 4)), atol=1)


def test_palette_images_use_their_colours_and_transparency():
    palette_image = PIL.Image.new("P", (4, 4), 1)
    palette_image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)  # colour 1 is blue
    np.testing.assert_allclose(pixels(RGB, palette_image)[:, 0, 0], [0, 0, 255], atol=1)
    assert abs(pixels(GRAY, palette_image)[0, 0, 0] - 29) <= 1  # luma 0.114 * 255
    palette_image.info["transparency"] = 1
    np.testing.assert_allclose(pixels(RGB, palette_image)[:, 0, 0], [255, 255, 255], atol=1)


@pytest.mark.parametrize("size", [(1, 1), (4000, 3000)])
def test_tiny_and_huge_images_are_resized(size):
    image = PIL.Image.new("RGB", size, (10, 200, 30))
    np.testing.assert_allclose(pixels(RGB, image)[:, 2, 2], [10, 200, 30], atol=1)


def test_bytes_and_paths_decode_and_garbage_fails_clearly(tmp_path):
    buffer = io.BytesIO()
    constant("L", 60, (9, 7)).save(buffer, format="PNG")
    png = buffer.getvalue()
    np.testing.assert_allclose(pixels(GRAY, png), np.full((1, 4, 4), 60), atol=1)
    (tmp_path / "digit.png").write_bytes(png)
    np.testing.assert_allclose(pixels(GRAY, str(tmp_path / "digit.png")), np.full((1, 4, 4), 60), atol=1)
    with pytest.raises(ValueError, match="could not decode an image from 17 bytes"):
        GRAY(b"this is not a png")
    with pytest.raises(ValueError, match="could not decode an image"):
        GRAY(png[: len(png) // 2])  # a truncated file
    with pytest.raises(FileNotFoundError, match="missing.png"):
        GRAY(str(tmp_path / "missing.png"))


def test_arrays_in_any_layout_convert_channels():
    gray = np.full((6, 5), 100, dtype=np.uint8)
    np.testing.assert_allclose(pixels(RGB, gray), np.full((3, 4, 4), 100), atol=1)
    red_last = np.zeros((6, 5, 3), dtype=np.uint8)
    red_last[..., 0] = 255
    np.testing.assert_allclose(pixels(GRAY, red_last), np.full((1, 4, 4), 76), atol=1)
    rgba_first = np.zeros((4, 6, 5), dtype=np.uint8)
    rgba_first[2] = 255  # blue, alpha 0: arrays drop alpha instead of compositing
    np.testing.assert_allclose(pixels(RGB, rgba_first)[:, 0, 0], [0, 0, 255], atol=1)
    batch = GRAY([gray, red_last], return_tensors="np").pixel_values
    assert batch.shape == (2, 1, 4, 4)


def test_normalisation_uses_the_stored_mean_and_std(tmp_path):
    processor = ClassificationImageProcessor(
        size={"height": 28, "width": 28}, num_channels=1, image_mean=[0.1307], image_std=[0.3081]
    )
    values = processor(constant("L", 255, (28, 28)), return_tensors="pt").pixel_values
    assert values.shape == (1, 1, 28, 28)
    np.testing.assert_allclose(values.numpy(), (1 - 0.1307) / 0.3081, rtol=1e-5)
    processor.save_pretrained(tmp_path)
    GFNetConfig(image_size=28, patch_size=4, num_channels=1).save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is ClassificationImageProcessor
    assert loaded.num_channels == 1 and list(loaded.image_mean) == [0.1307] and loaded.size.height == 28


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_channels": 2}, "num_channels"),
        ({"num_channels": 1, "image_mean": [0.5, 0.5, 0.5]}, "image_mean"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
    ],
)
def test_bad_settings_fail_with_the_field_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassificationImageProcessor(**kwargs)
