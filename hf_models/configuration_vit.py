"""Configuration of the Vision Transformer (ViT) of Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words"."""

from .attention_registry import check_attention_config
from .configuration_vision import PatchImageConfig
from .validation import check_int, check_per_layer_sizes, check_probability


class VisionTransformerConfig(PatchImageConfig):
    """ViT: a CLS token and learned positions in front of pre-LN multi-head self-attention blocks.

    Defaults are ViT-Base/16 at 224 pixels (hidden 768, 12 layers, 12 heads, MLP ratio 4). Besides the fields of
    ``PatchImageConfig``:

    Args:
        num_attention_heads: heads per attention layer; must divide ``hidden_size``.
        attention_dropout: dropout on the attention weights (must be 0 with performer attention).
        attention_type: ``"softmax"`` (exact) or ``"performer"`` (FAVOR+ random features, linear in the number of
            patches; see ``hf_models.attention``).
        num_random_features: FAVOR+ features per head; ``None`` = head_dim * ln(head_dim).
        performer_redraw_interval: N > 0 redraws the random features before each N-th training forward call; 0 never.
        num_attention_heads_per_layer: heads of each layer after head pruning (``hf_models.pruning``; every head keeps
            ``hidden_size / num_attention_heads`` features); ``None`` (default) = ``num_attention_heads`` everywhere.
    """

    model_type = "hfm_vit"  # "vit" is transformers' own ViT

    def __init__(
        self,
        num_attention_heads: int = 12,
        attention_dropout: float = 0.0,
        attention_type: str = "softmax",
        num_random_features: int | None = None,
        performer_redraw_interval: int = 0,
        num_attention_heads_per_layer: list[int] | None = None,
        **kwargs,
    ):
        check_int("num_attention_heads", num_attention_heads)
        check_probability("attention_dropout", attention_dropout)
        check_attention_config(attention_type, num_random_features, performer_redraw_interval, attention_dropout)
        hidden_size = kwargs.get("hidden_size", 768)
        if isinstance(hidden_size, int) and hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads}): "
                "every head gets hidden_size / num_attention_heads features"
            )
        self.num_attention_heads = num_attention_heads
        self.attention_dropout = attention_dropout
        self.attention_type = attention_type
        self.num_random_features = num_random_features
        self.performer_redraw_interval = performer_redraw_interval
        check_per_layer_sizes(
            "num_attention_heads_per_layer",
            num_attention_heads_per_layer,
            kwargs.get("num_hidden_layers", 12),
            num_attention_heads,
        )
        if num_attention_heads_per_layer is not None:  # unpruned configs serialise exactly as before pruning existed
            self.num_attention_heads_per_layer = num_attention_heads_per_layer
        super().__init__(**kwargs)
