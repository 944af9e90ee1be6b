"""hf_models: classic architectures as first-class Hugging Face models.

Importing the package registers every configuration, model, processor and pipeline with the Auto classes, and
marks each class for ``register_for_auto_class`` so that ``save_pretrained`` copies its code next to the weights
(the checkpoint then loads with ``trust_remote_code=True`` on a machine without this package).
"""

from .auto_classes import register_family
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

try:  # INTEGRATOR: branch gru-contracts adds GRUSeq2SeqModel; once merged, import it above and delete this block
    from .modeling_gru_seq2seq import GRUSeq2SeqModel
except ImportError:
    GRUSeq2SeqModel = None

__all__ = [
    "GRUSeq2SeqConfig",
    "GRUSeq2SeqForConditionalGeneration",
    "register_family",
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

# transformers 5 has no "translation" task: registering it lets Pipeline.save_pretrained / push_to_hub, and every save
# of a seq2seq head (auto_classes.py), write the custom_pipelines entry that makes
# pipeline("translation", model=folder, trust_remote_code=True) work.
register_translation_pipeline()
TRANSLATION = ("translation", TranslationPipeline)

# One line per family (auto_classes.register_family). The text classifier's base model is its encoder, which has no
# AutoModel class of its own yet: AutoModel on TransformerConfig is the encoder-decoder TransformerModel.
register_family(
    TransformerConfig,
    TransformerModel,
    {
        "AutoModelForSeq2SeqLM": TransformerForConditionalGeneration,
        "AutoModelForSequenceClassification": TransformerForSequenceClassification,
    },
    pipelines={TransformerForConditionalGeneration: TRANSLATION},
)
register_family(
    GRUSeq2SeqConfig,
    GRUSeq2SeqModel,  # None until branch gru-contracts adds the class (see the import above)
    {"AutoModelForSeq2SeqLM": GRUSeq2SeqForConditionalGeneration},
    pipelines={GRUSeq2SeqForConditionalGeneration: TRANSLATION},
)
# The image classifiers share one image processor; each family registers it for its own configuration.
register_family(
    VisionTransformerConfig,
    VisionTransformerModel,
    {"AutoModelForImageClassification": VisionTransformerForImageClassification},
    ClassificationImageProcessor,
)
register_family(GFNetConfig, GFNetModel, {"AutoModelForImageClassification": GFNetForImageClassification}, ClassificationImageProcessor)
register_family(AFNOConfig, AFNOModel, {"AutoModelForImageClassification": AFNOForImageClassification}, ClassificationImageProcessor)
