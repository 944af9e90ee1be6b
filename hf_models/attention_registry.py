"""The attention classes, keyed by ``config.attention_type``: a new attention backend is its own file (a
:class:`~hf_models.attention.MultiHeadAttention` subclass) plus one line in :data:`ATTENTION_CLASSES`."""

from .attention import MultiHeadAttention
from .performer import PerformerAttention
from .validation import check_choice, check_int

ATTENTION_CLASSES = {"softmax": MultiHeadAttention, "performer": PerformerAttention}


def attention_class(config) -> type[MultiHeadAttention]:
    """The attention class of ``config.attention_type`` (softmax when the config has no such field)."""
    return ATTENTION_CLASSES[getattr(config, "attention_type", "softmax")]


def check_attention_config(attention_type, num_random_features, performer_redraw_interval, attention_dropout) -> None:
    """The attention fields every attention model's config shares; a bad value fails naming the field."""
    check_choice("attention_type", attention_type, tuple(ATTENTION_CLASSES))
    if num_random_features is not None:
        check_int("num_random_features", num_random_features)
    check_int("performer_redraw_interval", performer_redraw_interval, minimum=0)
    if attention_type == "performer" and attention_dropout:
        raise ValueError(
            f"attention_dropout must be 0 with attention_type='performer' (got {attention_dropout!r}): FAVOR+ never "
            "forms the attention weights that dropout would drop"
        )
