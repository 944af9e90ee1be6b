"""Configuration of the Transformer of Vaswani et al. (2017), "Attention Is All You Need"."""

from transformers import PreTrainedConfig

from .attention_registry import check_attention_config
from .validation import check_choice, check_int, check_per_layer_sizes, check_probability

ACTIVATIONS = ("relu", "gelu")
CLASSIFIER_POOLINGS = ("cls", "mean")


class TransformerConfig(PreTrainedConfig):
    """Sizes and switches of the encoder-decoder Transformer.

    Defaults are the paper's base model (d_model 512, 8 heads, FFN 2048, 6+6 layers, dropout 0.1, post-LN,
    shared source/target embeddings tied to the output projection, embeddings scaled by sqrt(d_model)).

    Args:
        vocab_size: size of the (joint source/target) vocabulary.
        hidden_size: d_model.
        num_attention_heads: h; must divide ``hidden_size`` (each head gets ``hidden_size / h`` features).
        intermediate_size: d_ff, the inner size of the position-wise feed-forward network.
        encoder_layers / decoder_layers: N for the encoder and the decoder stacks.
        activation_function: ``"relu"`` (paper) or ``"gelu"``.
        dropout: P_drop on embeddings+positions and on every sub-layer output.
        attention_dropout: dropout on the attention weights. activation_dropout: dropout inside the FFN.
        max_position_embeddings: longest sequence the model accepts (sinusoids extrapolate, but the limit makes
            over-long input an explicit error / truncation instead of a silent distribution shift).
        pre_layer_norm: False = post-LN as in the paper, ``LayerNorm(x + Sublayer(x))``; True = pre-LN,
            ``x + Sublayer(LayerNorm(x))`` with a final LayerNorm per stack (more stable for deep/fast training).
        scale_embedding: multiply token embeddings by sqrt(d_model) (paper, section 3.4).
        share_embeddings: one embedding matrix for encoder and decoder (needs a joint vocabulary).
        tie_word_embeddings: the output projection re-uses the decoder embedding matrix.
        attention_type: the score function of every attention layer: ``"softmax"`` (exact; eager or SDPA per
            ``attn_implementation``) or ``"performer"`` (FAVOR+ random features, time and memory linear in the length;
            see ``hf_models.attention``). Performer needs ``attention_dropout=0`` and has no ``output_attentions``.
        num_random_features: FAVOR+ features per head (performer only); ``None`` = head_dim * ln(head_dim), the
            paper's order (266 for head_dim 64). More features, closer to softmax, slower.
        performer_redraw_interval: performer only; N > 0 draws new random features in every attention layer before
            each N-th training forward call (FAVOR+'s redrawing); 0 (default) keeps the features drawn at
            initialisation. The current features are always saved with the weights.
        init_std: std of the normal initialisation of embeddings (Linear layers use Xavier uniform).
        classifier_pooling: how ``TransformerForSequenceClassification`` turns the encoder states into one vector:
            ``"mean"`` (average over the real tokens, padding excluded) or ``"cls"`` (the state of the first token,
            the ``[CLS]`` that the classification tokenizer prepends).
        classifier_dropout: dropout on the pooled vector before the classifier; ``None`` uses ``dropout``.
        word_dropout: while training, each input token but the first (``[CLS]``) is hidden from attention and pooling
            with this probability: the word dropout of deep averaging networks (Iyyer et al. 2015), a regulariser for
            small text-classification sets; only ``TransformerForSequenceClassification`` uses it.
        encoder_attention_heads_per_layer / decoder_attention_heads_per_layer / cross_attention_heads_per_layer:
            heads of each encoder self-attention, decoder self-attention and decoder cross-attention layer after head
            pruning (``hf_models.pruning``; every head keeps ``hidden_size / num_attention_heads`` features).
        encoder_intermediate_size_per_layer / decoder_intermediate_size_per_layer: FFN width of each layer after
            pruning. Every ``*_per_layer`` field defaults to ``None`` (the uniform size; not written to config.json).
    """

    model_type = "vaswani_transformer"
    attribute_map = {"d_model": "hidden_size"}
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 8000,
        hidden_size: int = 512,
        num_attention_heads: int = 8,
        intermediate_size: int = 2048,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        activation_function: str = "relu",
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        max_position_embeddings: int = 512,
        pre_layer_norm: bool = False,
        layer_norm_eps: float = 1e-5,
        scale_embedding: bool = True,
        share_embeddings: bool = True,
        tie_word_embeddings: bool = True,
        attention_type: str = "softmax",
        num_random_features: int | None = None,
        performer_redraw_interval: int = 0,
        init_std: float | None = None,
        classifier_pooling: str = "mean",
        classifier_dropout: float | None = None,
        word_dropout: float = 0.0,
        encoder_attention_heads_per_layer: list[int] | None = None,
        decoder_attention_heads_per_layer: list[int] | None = None,
        cross_attention_heads_per_layer: list[int] | None = None,
        encoder_intermediate_size_per_layer: list[int] | None = None,
        decoder_intermediate_size_per_layer: list[int] | None = None,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        decoder_start_token_id: int = 1,
        is_encoder_decoder: bool = True,
        use_cache: bool = True,
        **kwargs,
    ):
        num_hidden_layers = kwargs.pop("num_hidden_layers", None)  # set below, once is_encoder_decoder is known
        for name in ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings"):
            check_int(name, locals()[name])
        check_int("encoder_layers", encoder_layers, minimum=0)
        check_int("decoder_layers", decoder_layers, minimum=0)
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads}): "
                "every head gets hidden_size / num_attention_heads features"
            )
        check_attention_config(attention_type, num_random_features, performer_redraw_interval, attention_dropout)
        check_choice("activation_function", activation_function, ACTIVATIONS)
        check_choice("classifier_pooling", classifier_pooling, CLASSIFIER_POOLINGS)
        for name in ("dropout", "attention_dropout", "activation_dropout", "word_dropout"):
            check_probability(name, locals()[name])
        if classifier_dropout is not None:
            check_probability("classifier_dropout", classifier_dropout)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.activation_function = activation_function
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.max_position_embeddings = max_position_embeddings
        self.pre_layer_norm = pre_layer_norm
        self.layer_norm_eps = layer_norm_eps
        self.scale_embedding = scale_embedding
        self.share_embeddings = share_embeddings
        self.tie_word_embeddings = tie_word_embeddings
        self.attention_type = attention_type
        self.num_random_features = num_random_features
        self.performer_redraw_interval = performer_redraw_interval
        self.init_std = init_std if init_std is not None else hidden_size**-0.5
        self.classifier_pooling = classifier_pooling
        self.classifier_dropout = classifier_dropout
        self.word_dropout = word_dropout
        for name, sizes, num_layers, maximum in (
            ("encoder_attention_heads_per_layer", encoder_attention_heads_per_layer, encoder_layers, num_attention_heads),
            ("decoder_attention_heads_per_layer", decoder_attention_heads_per_layer, decoder_layers, num_attention_heads),
            ("cross_attention_heads_per_layer", cross_attention_heads_per_layer, decoder_layers, num_attention_heads),
            ("encoder_intermediate_size_per_layer", encoder_intermediate_size_per_layer, encoder_layers, None),
            ("decoder_intermediate_size_per_layer", decoder_intermediate_size_per_layer, decoder_layers, None),
        ):
            check_per_layer_sizes(name, sizes, num_layers, maximum)
            if sizes is not None:  # unpruned configs serialise exactly as before pruning existed
                setattr(self, name, sizes)
        self.use_cache = use_cache
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            is_encoder_decoder=is_encoder_decoder,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        if num_hidden_layers is not None:
            self.num_hidden_layers = num_hidden_layers

    def to_diff_dict(self) -> dict:
        """Keeps ``is_encoder_decoder`` even when False: that is transformers' default but not this class's, so without
        it a saved encoder-only (classifier) config would reload as an encoder-decoder one."""
        return {**super().to_diff_dict(), "is_encoder_decoder": self.is_encoder_decoder}

    @property
    def num_hidden_layers(self) -> int:
        """transformers' name for the depth of the stack whose states the model returns, which ``generate()``'s caches
        and the ``output_hidden_states`` indices read: the decoder's in the encoder-decoder, the encoder's when the
        config is encoder-only (``is_encoder_decoder=False``, as ``TransformerForSequenceClassification`` makes it)."""
        return self.decoder_layers if self.is_encoder_decoder else self.encoder_layers

    @num_hidden_layers.setter
    def num_hidden_layers(self, value: int) -> None:
        if self.is_encoder_decoder:
            self.decoder_layers = value
        else:
            self.encoder_layers = value
