"""Every model family of the package as a tiny model with its tokenizer or image processor, for the tests that treat
all families alike (publishing round trips, model-card snippets). A new family is one entry in ``FAMILIES``."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from transformers import pipeline
from vision_testing import tiny_classifier

from hf_models import (
    ClassificationImageProcessor,
    GRUSeq2SeqConfig,
    GRUSeq2SeqForConditionalGeneration,
    TransformerConfig,
    TransformerForSequenceClassification,
    TruncatingTextClassificationPipeline,
)
from hf_models.pipeline_translation import TranslationPipeline

TEXTS = ["i like tea", "we drink water", "you like rice tea"]
IMAGES = [torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (20, 20), dtype=np.uint8)) for seed in range(3)]


def trained_transformer_translator(request):
    return request.getfixturevalue("tiny_transformer_translator"), request.getfixturevalue("tiny_translation_tokenizer")


def gru_translator(request):
    tokenizer = request.getfixturevalue("tiny_translation_tokenizer")
    torch.manual_seed(0)
    config = GRUSeq2SeqConfig(vocab_size=len(tokenizer), hidden_size=16, embedding_size=16, dropout=0.0)
    model = GRUSeq2SeqForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 6
    return model.eval(), tokenizer


def transformer_text_classifier(request):
    tokenizer = request.getfixturevalue("tiny_translation_tokenizer")
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        encoder_layers=1,
        decoder_layers=0,
        max_position_embeddings=16,
        dropout=0.0,
        id2label={0: "tea", 1: "water", 2: "rice"},
    )
    return TransformerForSequenceClassification(config).eval(), tokenizer


def image_classifier(arch: str):
    def build(request):
        model = tiny_classifier(arch)
        size = model.config.image_size
        processor = ClassificationImageProcessor(
            size={"height": size, "width": size}, num_channels=1, image_mean=[0.5], image_std=[0.5]
        )
        return model, processor

    return build


@dataclass(frozen=True)
class Family:
    name: str
    arch: str  # the architecture's tag in model cards (a recipe's --arch)
    task: str  # the pipeline task, also the model card's pipeline_tag
    auto_model: str  # the Auto class a user loads the model with
    build: Callable  # (pytest request) -> (model in eval mode, tokenizer or image processor)
    pipeline_class: type | None = None  # the package's pipeline for the task, which travels with the model

    @property
    def images(self) -> bool:
        return self.task == "image-classification"

    def examples(self) -> list:
        """What a user hands to the processor and the pipeline: strings, or PIL images."""
        return [PIL.Image.fromarray(image.numpy()) for image in IMAGES] if self.images else list(TEXTS)

    def process(self, processor) -> dict[str, torch.Tensor]:
        """The model inputs of ``examples()``: a padded batch of token ids, or pixel values."""
        kwargs = {} if self.images else {"padding": True}
        return dict(processor(self.examples(), return_tensors="pt", **kwargs))

    def pipeline(self, model, processor):
        """The in-process pipeline of ``model``; its ``save_pretrained`` / ``push_to_hub`` write everything
        ``pipeline(task, model=..., trust_remote_code=True)`` needs elsewhere (the pipeline's code too, if custom)."""
        objects = {"model": model, "image_processor" if self.images else "tokenizer": processor}
        return self.pipeline_class(**objects) if self.pipeline_class else pipeline(self.task, **objects)


FAMILIES = [
    Family("transformer-translation", "transformer", "translation", "AutoModelForSeq2SeqLM",
           trained_transformer_translator, TranslationPipeline),
    Family("gru-translation", "gru", "translation", "AutoModelForSeq2SeqLM", gru_translator, TranslationPipeline),
    Family("transformer-text-classification", "transformer", "text-classification",
           "AutoModelForSequenceClassification", transformer_text_classifier, TruncatingTextClassificationPipeline),
    Family("vit", "vit", "image-classification", "AutoModelForImageClassification", image_classifier("vit")),
    Family("gfnet", "gfnet", "image-classification", "AutoModelForImageClassification", image_classifier("gfnet")),
    Family("afno", "afno", "image-classification", "AutoModelForImageClassification", image_classifier("afno")),
]  # fmt: skip
