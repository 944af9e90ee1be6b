"""hf_models: classic architectures as first-class Hugging Face models.

Importing the package registers every configuration, model, processor and pipeline with the Auto classes, and
marks each class for ``register_for_auto_class`` so that ``save_pretrained`` copies its code next to the weights
(the checkpoint then loads with ``trust_remote_code=True`` on a machine without this package).
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
)

from .configuration_afno import AFNOConfig
from .configuration_gfnet import GFNetConfig

from .configuration_gru_seq2seq import GRUSeq2SeqConfig
from .configuration_transformer import TransformerConfig
from .configuration_vit import VisionTransformerConfig
from .image_processing_classification import ClassificationImageProcessor
from .modeling_afno import AFNOForImageClassification, AFNOModel
from .modeling_gfnet import GFNetForImageClassification, GFNetModel
from .modeling_gru_seq2seq import GRUSeq2SeqForConditionalGeneration
from .modeling_transformer import TransformerForConditionalGeneration, TransformerForSequenceClassification, TransformerModel
from .modeling_vit import VisionTransformerForImageClassification, VisionTransformerModel
from .pipeline_text_classification import TruncatingTextClassificationPipeline, save_for_text_classification
from .pipeline_translation import TranslationPipeline, register_translation_pipeline, save_for_translation

__all__ = [
    "GRUSeq2SeqConfig",
    "GRUSeq2SeqForConditionalGeneration",
    "TransformerConfig",
    "TransformerModel",
    "TransformerForConditionalGeneration",
    "TransformerForSequenceClassification",
    "TruncatingTextClassificationPipeline",
    "save_for_text_classification",
    "TranslationPipeline",
    "save_for_translation",
    "VisionTransformerConfig",
    "VisionTransformerModel",
    "VisionTransformerForImageClassification",
    "GFNetConfig",
    "GFNetModel",
    "GFNetForImageClassification",
    "AFNOConfig",
    "AFNOModel",
    "AFNOForImageClassification",
    "ClassificationImageProcessor",
]

for config_class, model_class, seq2seq_class in (
    (TransformerConfig, TransformerModel, TransformerForConditionalGeneration),
    (GRUSeq2SeqConfig, None, GRUSeq2SeqForConditionalGeneration),
):
    AutoConfig.register(config_class.model_type, config_class)
    config_class.register_for_auto_class()
    AutoModelForSeq2SeqLM.register(config_class, seq2seq_class)
    seq2seq_class.register_for_auto_class("AutoModelForSeq2SeqLM")
    if model_class is not None:
        AutoModel.register(config_class, model_class)
        model_class.register_for_auto_class("AutoModel")

AutoModelForSequenceClassification.register(TransformerConfig, TransformerForSequenceClassification)
TransformerForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

# The image classifiers share one image processor; each family registers it for its own configuration.
for config_class, model_class, classifier_class in (
    (VisionTransformerConfig, VisionTransformerModel, VisionTransformerForImageClassification),
    (GFNetConfig, GFNetModel, GFNetForImageClassification),
    (AFNOConfig, AFNOModel, AFNOForImageClassification),
):
    AutoConfig.register(config_class.model_type, config_class)
    config_class.register_for_auto_class()
    AutoModel.register(config_class, model_class)
    model_class.register_for_auto_class("AutoModel")
    AutoModelForImageClassification.register(config_class, classifier_class)
    classifier_class.register_for_auto_class("AutoModelForImageClassification")
    AutoImageProcessor.register(config_class, image_processor_classes={"pil": ClassificationImageProcessor})
ClassificationImageProcessor.register_for_auto_class("AutoImageProcessor")

# transformers 5 has no "translation" task; registering lets Pipeline.save_pretrained / push_to_hub write the
# custom_pipelines entry that makes pipeline("translation", model=folder, trust_remote_code=True) work.
register_translation_pipeline()
