"""hf_models: classic architectures as first-class Hugging Face models.

Importing the package registers every configuration, model, processor and pipeline with the Auto classes, and
marks each class for ``register_for_auto_class`` so that ``save_pretrained`` copies its code next to the weights
(the checkpoint then loads with ``trust_remote_code=True`` on a machine without this package).
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from .configuration_gru_seq2seq import GRUSeq2SeqConfig
from .configuration_transformer import TransformerConfig
from .modeling_gru_seq2seq import GRUSeq2SeqForConditionalGeneration
from .modeling_transformer import TransformerForConditionalGeneration, TransformerForSequenceClassification, TransformerModel
from .pipeline_translation import TranslationPipeline, register_translation_pipeline, save_for_translation

__all__ = [
    "GRUSeq2SeqConfig",
    "GRUSeq2SeqForConditionalGeneration",
    "TransformerConfig",
    "TransformerModel",
    "TransformerForConditionalGeneration",
    "TransformerForSequenceClassification",
    "TranslationPipeline",
    "save_for_translation",
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

# transformers 5 has no "translation" task; registering lets Pipeline.save_pretrained / push_to_hub write the
# custom_pipelines entry that makes pipeline("translation", model=folder, trust_remote_code=True) work.
register_translation_pipeline()
