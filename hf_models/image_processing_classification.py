"""The image processor of the package's image classifiers (ViT, GFNet, AFNO): PIL/NumPy only, no torchvision.

Every input becomes a ``(num_channels, height, width)`` float array: its colour mode is converted to the model's
channel count, then it is resized to ``size``, rescaled to [0, 1] and normalised with ``image_mean``/``image_std``.

Colour conversion of PIL images (``num_channels`` 1 = grayscale "L", 3 = "RGB"):

* ``L``, ``RGB``: kept, or converted with PIL (RGB -> L by ITU-R 601 luma; L -> RGB by copying the channel).
* ``1`` (bilevel): black/white -> 0/255.
* ``P`` (palette), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: converted through PIL to RGB (then to L if needed); a
  palette's transparent colour is handled like an alpha channel.
* ``RGBA``, ``LA``, ``PA``, ``RGBa``, or an image with a ``transparency`` entry: composited ON WHITE, as an image
  viewer shows it on a white page. (Dropping alpha instead would turn the hidden colour of transparent pixels, often
  black, into content.) transformers' stock ``image-classification`` pipeline converts inputs to RGB itself
  (dropping alpha, clipping 16-bit) before this processor sees them; the pipeline the recipe saves with the model
  (``pipeline_image_classification.py``) hands them over unconverted.
* ``I;16``, ``I;16L``, ``I;16B``, ``I`` (16-bit grayscale, e.g. 16-bit PNG/TIFF): scaled from 0..65535 to 0..255
  (PIL's own conversion would clip everything above 255 to white). ``F`` (float) is clipped to 0..255 as PIL does.

NumPy arrays and torch tensors: ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)`` with C in 1, 3, 4 (pass
``input_data_format`` when the layout is ambiguous). One channel is repeated for an RGB model; three become luma for a
grayscale model; a fourth (alpha) channel is dropped, since an array carries no statement about its background.
Encoded image files given as ``bytes`` or as a path are decoded with PIL; bytes that are not an image raise a
``ValueError`` saying so, and so does an image without pixels (0 wide or 0 high).

Float arrays are taken to hold 0..255 values, like PIL images, and ``do_rescale`` divides them by 255. An array whose
values all lie in [0, 1] looks already rescaled: as transformers' own processors do, a warning then says to pass
``do_rescale=False`` (otherwise the model sees an almost black image).
"""

import io
import os
from pathlib import Path

import numpy as np
import PIL.Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import (
    ChannelDimension,
    PILImageResampling,
    infer_channel_dimension_format,
    is_scaled_image,
    make_flat_list_of_images,
)
from transformers.processing_utils import ImagesKwargs
from transformers.utils import logging

logger = logging.get_logger(__name__)

SUPPORTED_CHANNELS = (1, 3)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R 601, what PIL's RGB -> L uses


class ClassificationImageProcessorKwargs(ImagesKwargs, total=False):
    num_channels: int | None


def decode_image(data: bytes | str | os.PathLike) -> PIL.Image.Image:
    """An encoded image file (bytes, or a path to one) as a fully decoded PIL image; clear errors otherwise."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        data, source = path.read_bytes(), str(path)
    else:
        source = f"{len(data)} bytes starting with {bytes(data[:8])!r}"
    try:
        image = PIL.Image.open(io.BytesIO(data))
        image.load()  # decode now, so a truncated or corrupt file fails here and not deep inside resizing
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"could not decode an image from {source}: {error}") from error
    return image


def pil_to_array(image: PIL.Image.Image, num_channels: int) -> np.ndarray:
    """A PIL image of any common mode as a ``(num_channels, H, W)`` uint8 array; see the module docstring."""
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        image = PIL.Image.fromarray(np.round(np.clip(values, 0, 65535) * (255 / 65535)).astype(np.uint8), mode="L")
    elif mode == "F":
        image = PIL.Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    elif mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = PIL.Image.alpha_composite(PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    target = "L" if num_channels == 1 else "RGB"
    if image.mode != target:
        # P/CMYK/YCbCr/LAB/HSV go through RGB, which PIL converts correctly; "1" and "L" convert directly.
        image = image.convert(target) if image.mode in ("1", "L", "RGB", "RGBA") else image.convert("RGB").convert(target)
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)


def array_to_channels_first(array: np.ndarray, num_channels: int, input_data_format=None) -> np.ndarray:
    """A NumPy image ``(H, W)``, ``(C, H, W)`` or ``(H, W, C)`` as ``(num_channels, H, W)``."""
    if array.ndim == 2:
        array = array[None]
    elif array.ndim != 3:
        raise ValueError(f"an image array must have 2 or 3 dimensions, got shape {array.shape}")
    else:
        if input_data_format is None:
            input_data_format = infer_channel_dimension_format(array, num_channels=(1, 3, 4))
        if ChannelDimension(input_data_format) == ChannelDimension.LAST:
            array = np.moveaxis(array, -1, 0)
    channels = array.shape[0]
    if channels not in (1, 3, 4):
        raise ValueError(f"an image array must have 1, 3 or 4 channels, got {channels} (shape {array.shape})")
    if channels == 4:
        array = array[:3]  # alpha dropped: an array does not say what lies behind transparent pixels
    if array.shape[0] == num_channels:
        return array
    if num_channels == 3:
        return np.repeat(array, 3, axis=0)
    luma = np.tensordot(LUMA_WEIGHTS, array.astype(np.float64), axes=1)[None]
    return luma.astype(array.dtype) if np.issubdtype(array.dtype, np.floating) else np.round(luma).astype(array.dtype)


class ClassificationImageProcessor(PilBackend):
    """Resize -> rescale -> normalise for the image classifiers, with colour-mode conversion to ``num_channels``.

    Args (besides transformers' usual ``size``, ``resample``, ``do_resize``, ``do_rescale``, ``rescale_factor``,
    ``do_normalize``, ``image_mean``, ``image_std``):
        num_channels: 1 (grayscale) or 3 (RGB); must equal the model's ``config.num_channels``.

    The recipe stores the training set's mean/std (e.g. MNIST's) and the model's ``image_size`` in the saved
    ``preprocessor_config.json``, so inference normalises exactly like training.
    """

    valid_kwargs = ClassificationImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    size = {"height": 224, "width": 224}
    do_resize = True
    do_rescale = True
    do_normalize = True
    image_mean = 0.5  # one value for every channel (transformers' "standard" 0.5/0.5), whatever num_channels is
    image_std = 0.5
    num_channels = 3

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.num_channels not in SUPPORTED_CHANNELS:
            raise ValueError(f"num_channels must be one of {SUPPORTED_CHANNELS}, got {self.num_channels!r}")
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) not in (1, self.num_channels):
                raise ValueError(f"{name} has {len(value)} values but num_channels is {self.num_channels}")
        stds = self.image_std if isinstance(self.image_std, (list, tuple)) else [self.image_std]
        if any(std is not None and std <= 0 for std in stds):
            raise ValueError(f"image_std must be positive, got {self.image_std!r}")

    def _prepare_images_structure(self, images, expected_ndims: int = 3):
        """Decodes bytes and paths, lifts 2-D (grayscale) arrays to 3-D, then flattens the batch as transformers does."""

        def prepare(image):
            if isinstance(image, (bytes, bytearray, memoryview, str, os.PathLike)):
                return decode_image(image)
            if hasattr(image, "ndim") and image.ndim == 2:
                return image[None]
            return image

        if isinstance(images, (list, tuple)):
            images = [prepare(image) for image in images]
        else:
            images = prepare(images)
        return make_flat_list_of_images(images, expected_ndims=expected_ndims)

    def process_image(self, image, num_channels: int | None = None, input_data_format=None, **kwargs) -> np.ndarray:
        """One image as a channels-first array with ``num_channels`` channels (resizing etc. follow in
        ``_preprocess``)."""
        num_channels = num_channels or self.num_channels
        if isinstance(image, PIL.Image.Image):
            array = pil_to_array(image, num_channels)
        else:
            array = image.numpy() if hasattr(image, "numpy") else np.asarray(image)
            array = array_to_channels_first(array, num_channels, input_data_format)
            if kwargs.get("do_rescale", self.do_rescale) and is_scaled_image(array):
                logger.warning_once(
                    "It looks like you are trying to rescale already rescaled images: this array's values lie in "
                    "[0, 1]. If the input images have pixel values between 0 and 1, set `do_rescale=False` to avoid "
                    "rescaling them again."
                )
        if 0 in array.shape[1:]:
            raise ValueError(f"an image must have pixels, got one of {array.shape[2]}x{array.shape[1]} (width x height)")
        return array
