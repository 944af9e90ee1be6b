"""Tiny stand-ins for the six demo models that app.py serves, saved in the folder layout `make demo` writes, so the
app's tests run in seconds without the demo's trainings. Only the translator has learnt anything (conftest's three
pairs); the others are randomly initialised: the tests check that the page works, not that the answers are good."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package
from train_classification_tokenizer import train_classification_tokenizer  # noqa: E402
from vision_testing import FAMILIES, TINY_SIZES  # noqa: E402

from hf_models import (  # noqa: E402
    ClassificationImageProcessor,
    GRUSeq2SeqConfig,
    GRUSeq2SeqForConditionalGeneration,
    TransformerConfig,
    TransformerForSequenceClassification,
    save_for_text_classification,
    save_for_translation,
)

THUCNEWS_CLASSES = ["finance", "realty", "stocks", "education", "science", "society", "politics", "sports", "game",
                    "entertainment"]
DIGITS = {index: str(index) for index in range(10)}


def save_tiny_app_models(models_dir: Path, translator, translation_tokenizer, headlines: list[str]) -> Path:
    """Writes ``models_dir/demo_*`` for all six slots of app.py: the given (trained) Transformer translator, an
    untrained GRU on the same tokenizer, a headline classifier with THUCNews' ten classes on a tokenizer trained on
    ``headlines``, and 16x16 ViT/GFNet/AFNO digit classifiers with ten classes. Returns ``models_dir``."""
    save_for_translation(translator, translation_tokenizer, models_dir / "demo_translation_transformer")

    torch.manual_seed(0)
    gru_config = GRUSeq2SeqConfig(vocab_size=len(translation_tokenizer), hidden_size=16, embedding_size=16, dropout=0.0)
    gru = GRUSeq2SeqForConditionalGeneration(gru_config).eval()
    gru.generation_config.max_new_tokens = 6
    save_for_translation(gru, translation_tokenizer, models_dir / "demo_translation_gru")

    headline_tokenizer = train_classification_tokenizer(headlines, vocab_size=300, min_frequency=1, model_max_length=32)
    classifier_config = TransformerConfig(
        vocab_size=len(headline_tokenizer), hidden_size=16, num_attention_heads=2, intermediate_size=32,
        encoder_layers=1, decoder_layers=0, max_position_embeddings=32, dropout=0.0,
        id2label=dict(enumerate(THUCNEWS_CLASSES)),
    )
    classifier = TransformerForSequenceClassification(classifier_config).eval()
    save_for_text_classification(classifier, headline_tokenizer, models_dir / "demo_text_classification")

    for arch in ("vit", "gfnet", "afno"):
        config_class, model_class, extra = FAMILIES[arch]
        sizes = {key: value for key, value in TINY_SIZES.items() if key != "num_labels"}
        model = model_class(config_class(**sizes, **extra, id2label=DIGITS)).eval()
        size = model.config.image_size
        processor = ClassificationImageProcessor(
            size={"height": size, "width": size}, num_channels=1, image_mean=[0.13], image_std=[0.31]
        )
        folder = models_dir / f"demo_image_classification_{arch}"
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return models_dir
