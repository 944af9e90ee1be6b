"""A ``translation`` pipeline for any encoder-decoder model with ``generate()``.

transformers 5 removed its own translation pipeline (``pipeline("translation")`` raises), so this module brings one
back, with the output format of transformers 4: ``[{"translation_text": ...}]``.

It is written to travel with a checkpoint. :func:`save_for_translation` writes the model, the tokenizer, the
generation config, a copy of this file and a ``custom_pipelines`` entry in ``config.json``; then, on a machine
without this package::

    pipeline("translation", model=folder, trust_remote_code=True)

With the package installed, ``pipeline("translation", model=folder, pipeline_class=TranslationPipeline)`` builds the
same pipeline from the installed code. Without ``pipeline_class`` transformers insists on ``trust_remote_code=True``
for a folder whose config names a custom pipeline, even when this package is imported: the ``PIPELINE_REGISTRY``
cannot serve ``"translation"`` either, because ``pipeline()`` rejects the removed task before it reads the registry.
For objects in memory, ``TranslationPipeline(model=model, tokenizer=tokenizer)``.

This file imports nothing from its package: it is copied alone next to the weights.
"""

import os

import torch
from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import ModelOutput, logging

logger = logging.get_logger(__name__)

TASK = "translation"


class TranslationPipeline(Pipeline):
    """Translates strings with an encoder-decoder model's ``generate()``.

    Call it on a string or a list of strings; every keyword that ``generate()`` knows (``max_new_tokens``,
    ``num_beams``, ``num_return_sequences``, ``do_sample``, ...) goes to ``generate()``, on top of the model's
    ``generation_config``. Decoding settings therefore come from the checkpoint's generation_config.json, exactly
    as in ``model.generate()``; the pipeline adds no defaults of its own.

    Returns, for one string, a list with one ``{"translation_text": str}`` per returned sequence; for a list of
    strings, one such list per string, flattened to one dict per string when one sequence is returned (as in
    transformers 4). ``return_tensors=True`` gives ``{"translation_token_ids": tensor}`` instead.

    Inputs longer than the model accepts (the smaller of the tokenizer's ``model_max_length`` and the config's
    ``max_position_embeddings``) are truncated with a warning. Empty or whitespace-only strings never reach the
    model: they translate to ``""``.
    """

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not getattr(self.model.config, "is_encoder_decoder", False):
            raise ValueError(
                f"TranslationPipeline needs an encoder-decoder model, got {type(self.model).__name__} "
                "(its config has no is_encoder_decoder=True)"
            )
        if self.tokenizer is None:
            raise ValueError("TranslationPipeline needs a tokenizer")

    def __call__(self, inputs: str | list[str], **kwargs):
        results = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(len(result) == 1 for result in results):
            return [result[0] for result in results]
        return results

    def _sanitize_parameters(self, return_tensors=None, clean_up_tokenization_spaces=None, **generate_kwargs):
        postprocess_params = {}
        if return_tensors is not None:
            postprocess_params["return_tensors"] = return_tensors
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return {}, generate_kwargs, postprocess_params

    def max_source_length(self) -> int:
        """The longest input, in tokens (with special tokens), that both the tokenizer and the model accept."""
        limits = [self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", None)]
        return min(limit for limit in limits if limit is not None)

    def preprocess(self, text: str) -> dict[str, torch.Tensor]:
        if not isinstance(text, str):
            raise TypeError(f"TranslationPipeline translates strings, got {type(text).__name__}: {text!r}")
        if not text.strip():
            # Zero tokens: padding gives this row an all-zero attention mask, which `_forward` skips.
            empty = torch.zeros((1, 0), dtype=torch.long)
            return {"input_ids": empty, "attention_mask": empty}
        # Untruncated first, to count the tokens (verbose=False: this pipeline warns about over-long input itself).
        # The limit may be the tokenizer's "no limit" 1e30, which truncation=True cannot take.
        encoding = self.tokenizer(text, return_tensors="pt", verbose=False)
        max_length = self.max_source_length()
        num_tokens = encoding["input_ids"].shape[1]
        if num_tokens > max_length:
            logger.warning(
                f"Input of {num_tokens} tokens is longer than the model accepts: truncated to {max_length} tokens "
                f"(input starts {text[:40]!r})"
            )
            encoding = self.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        # Only what every seq2seq model takes (a tokenizer may add e.g. token_type_ids).
        return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs) -> dict[str, torch.Tensor]:
        """Generates for the non-empty rows; returns ``output_ids`` of shape (batch, sequences per input, length).

        Empty rows get only padding (which decodes to ``""``), so an empty string in a batch costs no model call.
        """
        input_ids, attention_mask = model_inputs["input_ids"], model_inputs["attention_mask"]
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        sequences_per_input = self._get_set_generation_params(generate_kwargs).get("num_return_sequences", 1)
        batch_size = input_ids.shape[0]
        non_empty = attention_mask.any(dim=1)
        num_non_empty = int(non_empty.sum())
        if num_non_empty == 0:
            return {"output_ids": input_ids.new_zeros((batch_size, sequences_per_input, 0))}

        generated = self.model.generate(
            input_ids=input_ids[non_empty], attention_mask=attention_mask[non_empty], **generate_kwargs
        )
        if isinstance(generated, ModelOutput):  # return_dict_in_generate=True
            generated = generated.sequences
        generated = generated.reshape(num_non_empty, sequences_per_input, generated.shape[-1])
        if num_non_empty == batch_size:
            return {"output_ids": generated}
        output_ids = generated.new_full((batch_size, *generated.shape[1:]), self.tokenizer.pad_token_id)
        output_ids[non_empty] = generated
        return {"output_ids": output_ids}

    def postprocess(self, model_outputs, return_tensors=False, clean_up_tokenization_spaces=None) -> list[dict]:
        decode_kwargs = {"skip_special_tokens": True}
        if clean_up_tokenization_spaces is not None:
            decode_kwargs["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        records = []
        for output_ids in model_outputs["output_ids"][0]:
            if return_tensors:
                records.append({"translation_token_ids": output_ids})
            else:
                records.append({"translation_text": self.tokenizer.decode(output_ids, **decode_kwargs)})
        return records

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Saves model, tokenizer and generation config, plus this file and the ``custom_pipelines`` entry that
        let ``pipeline("translation", model=save_directory, trust_remote_code=True)`` rebuild this pipeline."""
        register_translation_pipeline()
        super().save_pretrained(save_directory, **kwargs)


def register_translation_pipeline() -> None:
    """Registers :class:`TranslationPipeline` for the ``translation`` task in transformers' ``PIPELINE_REGISTRY``.

    ``Pipeline.save_pretrained`` / ``push_to_hub`` read that registration to write ``custom_pipelines`` into
    config.json and to copy this file. (It does not make a plain ``pipeline("translation")`` resolve: transformers 5
    rejects the removed task before it consults the registry.) Registering again is a no-op.
    """
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is TranslationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=TranslationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )


def save_for_translation(model, tokenizer, output_dir: str | os.PathLike) -> None:
    """Saves ``model`` (safetensors), ``tokenizer``, the generation config and this pipeline's code in
    ``output_dir``, so that ``pipeline("translation", model=output_dir, trust_remote_code=True)`` works without
    this package. The model's own code travels too when its classes were ``register_for_auto_class``-ed (as
    ``import hf_models`` does). With the package imported, every other save of a seq2seq head (``model.save_pretrained``,
    ``model.push_to_hub``, ``Trainer.save_model``) writes the same ``custom_pipelines`` entry and this file too
    (``hf_models.auto_classes``); the tokenizer is then saved or pushed separately."""
    TranslationPipeline(model=model, tokenizer=tokenizer, device=model.device).save_pretrained(output_dir)
