"""A ``text-classification`` pipeline that truncates over-long input, with a warning, instead of crashing.

transformers' own ``TextClassificationPipeline`` tokenizes without truncation unless every call passes
``truncation=True``; a text longer than the model's positions then fails inside the model. This subclass measures
the text first and, when it is too long, warns and keeps the first tokens (the tokenizer's ``truncation_side``).
Everything else (``top_k``, ``function_to_apply``, text pairs, batching, label names from ``config.id2label``) is
the stock pipeline's.

It travels with a checkpoint: :func:`save_for_text_classification` writes the model, the tokenizer, a copy of this
file and a ``custom_pipelines`` entry in ``config.json``, after which, on a machine without this package::

    pipeline("text-classification", model=folder, trust_remote_code=True)

builds this pipeline. With the package installed, ``pipeline("text-classification", model=folder,
pipeline_class=TruncatingTextClassificationPipeline)`` does the same from the installed code (transformers asks for
``trust_remote_code=True`` otherwise, because the folder names a custom pipeline). The stock pipeline is not
replaced globally: other models keep transformers' ``text-classification``.

This file imports nothing from its package: it is copied alone next to the weights.
"""

import os

from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines.text_classification import TextClassificationPipeline
from transformers.utils import logging

logger = logging.get_logger(__name__)

TASK = "text-classification"


class TruncatingTextClassificationPipeline(TextClassificationPipeline):
    """transformers' ``TextClassificationPipeline`` that truncates texts longer than the model accepts (the
    smaller of the tokenizer's ``model_max_length`` and the config's ``max_position_embeddings``) and logs a warning
    saying so. Passing ``truncation=...`` explicitly restores the stock behaviour for that call."""

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise ValueError("the text-classification pipeline got an empty list: give a text or a non-empty list of texts")
        return super().__call__(inputs, **kwargs)

    def max_length(self) -> int:
        """The longest input, in tokens (special tokens included), that both the tokenizer and the model accept."""
        limits = [self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", None)]
        return min(limit for limit in limits if limit is not None)

    def preprocess(self, inputs, **tokenizer_kwargs):
        if "truncation" in tokenizer_kwargs:
            return super().preprocess(inputs, **tokenizer_kwargs)
        # verbose=False: the tokenizer's own "longer than the maximum" message would speak of indexing errors
        # that this pipeline prevents; it warns itself below.
        encoding = super().preprocess(inputs, verbose=False, **tokenizer_kwargs)
        num_tokens, max_length = encoding["input_ids"].shape[-1], self.max_length()
        if num_tokens <= max_length:
            return encoding
        logger.warning(
            f"Input of {num_tokens} tokens is longer than the model accepts: truncated to {max_length} tokens "
            f"(input starts {str(inputs)[:40]!r})"
        )
        return super().preprocess(inputs, truncation=True, max_length=max_length, **tokenizer_kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Saves model and tokenizer plus this file and the ``custom_pipelines`` entry that let
        ``pipeline("text-classification", model=save_directory, trust_remote_code=True)`` rebuild this pipeline."""
        self.model.config.custom_pipelines = {
            TASK: {
                "impl": f"{__name__.rsplit('.', 1)[-1]}.{type(self).__name__}",
                "pt": ["AutoModelForSequenceClassification"],
                "type": "text",
            }
        }
        os.makedirs(save_directory, exist_ok=True)
        custom_object_save(self, save_directory)
        super().save_pretrained(save_directory, **kwargs)


def save_for_text_classification(model, tokenizer, output_dir: str | os.PathLike) -> None:
    """Saves ``model`` (safetensors), ``tokenizer`` and this pipeline's code in ``output_dir``, so that
    ``pipeline("text-classification", model=output_dir, trust_remote_code=True)`` works without this package. The
    model's own code travels too when its classes were ``register_for_auto_class``-ed (as ``import hf_models``
    does). To publish, push the pipeline itself
    (``TruncatingTextClassificationPipeline(model=..., tokenizer=...).push_to_hub(repo_id)``) or upload this folder."""
    TruncatingTextClassificationPipeline(model=model, tokenizer=tokenizer, device=model.device).save_pretrained(output_dir)
