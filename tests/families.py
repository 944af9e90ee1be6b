"""Every model family of the package as a tiny model with its tokenizer or image processor, for the tests that treat
all families alike (the common model tester, publishing round trips, model-card snippets). A new family is one entry
in ``FAMILIES``."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import PIL.Image
import torch
from transformers import pipeline
from vision_testing import FAMILIES as VISION_FAMILIES
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


def seq2seq_outputs(config) -> dict[str, int]:
    """Encoder and decoder stacks: embeddings + one hidden state per layer; one attention per layer and kind."""
    encoder, decoder = config.encoder_layers, config.decoder_layers
    return {
        "encoder_hidden_states": encoder + 1,
        "decoder_hidden_states": decoder + 1,
        "encoder_attentions": encoder,
        "decoder_attentions": decoder,
        "cross_attentions": decoder,
    }


def gru_outputs(config) -> dict[str, int]:
    """``nn.GRU`` runs its stacked layers as one module: embeddings + top layer per side; one cross-attention."""
    return {"encoder_hidden_states": 2, "decoder_hidden_states": 2, "cross_attentions": 1}


def encoder_outputs(config) -> dict[str, int]:
    return {"hidden_states": config.encoder_layers + 1, "attentions": config.encoder_layers}


def vision_outputs(has_attentions: bool):
    def outputs(config) -> dict[str, int]:
        layers = config.num_hidden_layers
        return {"hidden_states": layers + 1, **({"attentions": layers} if has_attentions else {})}

    return outputs


@dataclass(frozen=True)
class Family:
    name: str
    arch: str  # the architecture's tag in model cards (a recipe's --arch)
    task: str  # the pipeline task, also the model card's pipeline_tag
    auto_model: str  # the Auto class a user loads the model with
    build: Callable  # (pytest request) -> (model in eval mode, tokenizer or image processor)
    pipeline_class: type | None = None  # the package's pipeline for the task, which travels with the model
    outputs: Callable = vision_outputs(False)  # config -> {output field: expected tuple length}
    # config fields set to a bad value -> the error must name the field
    bad_config: dict = field(default_factory=lambda: {"hidden_size": 0})

    @property
    def images(self) -> bool:
        return self.task == "image-classification"

    @property
    def seq2seq(self) -> bool:
        return self.auto_model == "AutoModelForSeq2SeqLM"

    @property
    def feature_task(self) -> str:
        """The pipeline task of the base model (``AutoModel``)."""
        return "image-feature-extraction" if self.images else "feature-extraction"

    def inputs(self, processor, labels: bool = False) -> dict[str, torch.Tensor]:
        """A forward pass's keyword arguments: ``process()`` plus, for seq2seq, the source ids as teacher-forced
        decoder input (any target ids do for comparisons), or with ``labels`` a loss target per example."""
        batch = self.process(processor)
        if not labels:
            return {**batch, "decoder_input_ids": batch["input_ids"]} if self.seq2seq else batch
        if self.seq2seq:
            return {**batch, "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)}
        return {**batch, "labels": torch.arange(len(self.examples()))}

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
           trained_transformer_translator, TranslationPipeline, seq2seq_outputs,
           {"hidden_size": 0, "num_attention_heads": 3, "dropout": 1.5}),
    Family("gru-translation", "gru", "translation", "AutoModelForSeq2SeqLM", gru_translator, TranslationPipeline,
           gru_outputs, {"hidden_size": 0, "attention_mechanism": "cosine", "dropout": -0.1}),
    Family("transformer-text-classification", "transformer", "text-classification",
           "AutoModelForSequenceClassification", transformer_text_classifier, TruncatingTextClassificationPipeline,
           encoder_outputs, {"hidden_size": 0, "classifier_pooling": "max", "word_dropout": 1.0}),
    *[
        Family(arch, arch, "image-classification", "AutoModelForImageClassification", image_classifier(arch),
               outputs=vision_outputs(vision.has_attentions), bad_config=vision.bad_config)
        for arch, vision in VISION_FAMILIES.items()
    ],
]  # fmt: skip


def attention_backend(family: Family, backend: str, **overrides) -> Family:
    """``family`` on another attention backend (``attention_type``): a fresh model of the same size, without
    attention weights in its outputs (Performer never forms the attention matrix)."""

    def build(request):
        model, processor = family.build(request)
        config = type(model.config)(**{**model.config.to_diff_dict(), "attention_type": backend, **overrides})
        torch.manual_seed(0)
        return type(model)(config).eval(), processor

    def outputs(config) -> dict[str, int]:
        return {name: n for name, n in family.outputs(config).items() if not name.endswith("attentions")}

    return replace(family, name=f"{family.name}-{backend}", build=build, outputs=outputs)


# The families again on the other attention backends: the common model tester runs them too.
ATTENTION_BACKENDS = [
    attention_backend(family, "performer", num_random_features=8)
    for family in FAMILIES
    if family.name in ("transformer-translation", "vit")
]
COMMON_FAMILIES = FAMILIES + ATTENTION_BACKENDS
