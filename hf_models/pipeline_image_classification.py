"""An ``image-classification`` pipeline that gives the image processor the image as it is, not an 8-bit RGB copy.

transformers' ``ImageClassificationPipeline`` opens every input with ``load_image``, which converts it to RGB: a
16-bit grayscale PNG (``I;16``) is clipped to 0..255 on the way (nearly everything turns white) and an alpha channel
is dropped. The package's ``ClassificationImageProcessor`` converts such modes correctly itself (16-bit scaled to
8-bit, transparency composited on white), so this subclass only opens files and applies the EXIF orientation, as
``load_image`` does, and passes the PIL image on unconverted. URLs, base64 strings, arrays and tensors take the
stock path. Everything else (``top_k``, ``function_to_apply``, label names) is the stock pipeline's.

:func:`save_for_image_classification` writes the model, the image processor, a copy of this file and a
``custom_pipelines`` entry in ``config.json``, after which ``pipeline("image-classification", model=folder,
trust_remote_code=True)`` builds this pipeline, also where the package is not installed.

This file imports nothing from its package: it is copied alone next to the weights.
"""

import os

import PIL.Image
import PIL.ImageOps
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines.image_classification import ImageClassificationPipeline

TASK = "image-classification"


class ModeKeepingImageClassificationPipeline(ImageClassificationPipeline):
    """transformers' ``ImageClassificationPipeline`` without the conversion of every image to 8-bit RGB."""

    def preprocess(self, image, timeout=None):
        if isinstance(image, (str, os.PathLike)) and os.path.isfile(image):
            image = PIL.Image.open(image)
        if not isinstance(image, PIL.Image.Image):
            return super().preprocess(image, timeout=timeout)
        image = PIL.ImageOps.exif_transpose(image)  # what load_image does, without its convert("RGB")
        return self.image_processor(images=image, return_tensors="pt").to(self.dtype)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Saves model and image processor plus this file and the ``custom_pipelines`` entry that rebuild this
        pipeline from ``pipeline("image-classification", model=save_directory, trust_remote_code=True)``."""
        self.model.config.custom_pipelines = {
            TASK: {"impl": f"{__name__.rsplit('.', 1)[-1]}.{type(self).__name__}", "pt": ["AutoModelForImageClassification"], "type": "image"}
        }
        os.makedirs(save_directory, exist_ok=True)
        custom_object_save(self, save_directory)
        super().save_pretrained(save_directory, **kwargs)


def save_for_image_classification(model, image_processor, output_dir: str | os.PathLike) -> None:
    """Saves ``model`` (safetensors), ``image_processor`` and this pipeline's code in ``output_dir``."""
    ModeKeepingImageClassificationPipeline(model=model, image_processor=image_processor, device=model.device).save_pretrained(output_dir)
