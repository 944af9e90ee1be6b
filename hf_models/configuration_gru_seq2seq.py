"""Configuration of the GRU encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015)."""

from transformers import PreTrainedConfig

from .validation import check_choice, check_int, check_probability

ATTENTION_MECHANISMS = ("bahdanau", "luong")
LUONG_SCORES = ("general", "dot")


def resolve_legacy_attention_type(attention_mechanism: str | None, kwargs: dict) -> str:
    """``attention_mechanism``, or the ``attention_type`` (its old name) of a config saved before the rename, taken
    out of ``kwargs`` so it is not stored again; "bahdanau" when neither is given."""
    legacy = kwargs.pop("attention_type", None)
    if legacy is not None and attention_mechanism is not None and legacy != attention_mechanism:
        raise ValueError(
            f"attention_type={legacy!r} (the old name of attention_mechanism) contradicts "
            f"attention_mechanism={attention_mechanism!r}: give only attention_mechanism"
        )
    return attention_mechanism or legacy or "bahdanau"


class GRUSeq2SeqConfig(PreTrainedConfig):
    """Sizes and switches of the GRU encoder-decoder.

    The encoder runs ``encoder_layers`` GRU layers of ``hidden_size`` units per direction. With a bidirectional
    encoder each source position gets the concatenation ``[forward; backward]`` (``2 * hidden_size``), which a
    linear layer projects back to ``hidden_size``: every encoder state, decoder state and attention vector then
    lives in one ``hidden_size`` space, which the Luong dot score needs and which keeps the attention layers
    square. The decoder's initial state is ``tanh(W [forward final; backward final])`` of the top encoder layer.

    Args:
        vocab_size: size of the (joint source/target) vocabulary.
        hidden_size: GRU units of the decoder and, per direction, of the encoder; also the attention size.
        embedding_size: size of the token embeddings. Must equal ``hidden_size`` when ``tie_word_embeddings``,
            since the output projection then re-uses the embedding matrix on ``hidden_size`` vectors.
        encoder_layers / decoder_layers: stacked GRU layers on each side.
        bidirectional_encoder: read the source in both directions (Bahdanau et al. 2015, section 3.2).
        attention_mechanism: ``"bahdanau"`` (additive; context from the previous decoder state feeds the GRU
            input) or ``"luong"`` (multiplicative; GRU step first, then attention on the new state). Saved configs
            from before the rename call it ``attention_type`` and still load; the name was freed because
            ``attention_type`` picks softmax or performer attention on every other config of the package.
        luong_score: ``"general"`` (``h_t^T W h_j``) or ``"dot"`` (``h_t^T h_j``); used by Luong attention only.
        dropout: on embeddings, between GRU layers and before the output projection.
        init_std: std of the normal initialisation of embeddings and linear layers (GRUs use Xavier input weights
            and orthogonal recurrent weights). 0.1 is of the order of the uniform(-0.1, 0.1) of Luong et al.; with
            the usual 0.02 the tied output layer starts with near-zero logits and learns visibly slower.
        share_embeddings: one embedding matrix for encoder and decoder (the project's tokenizer is joint en+zh).
        tie_word_embeddings: the output projection re-uses the decoder embedding matrix.

    Generation limits (``max_length``, ``num_beams``, ...) belong in a ``GenerationConfig``, not here.
    """

    model_type = "gru_seq2seq"
    attribute_map = {"num_hidden_layers": "decoder_layers"}
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 8000,
        hidden_size: int = 256,
        embedding_size: int = 256,
        encoder_layers: int = 1,
        decoder_layers: int = 1,
        bidirectional_encoder: bool = True,
        attention_mechanism: str | None = None,
        luong_score: str = "general",
        dropout: float = 0.1,
        init_std: float = 0.1,
        share_embeddings: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        decoder_start_token_id: int = 1,
        is_encoder_decoder: bool = True,
        use_cache: bool = True,
        **kwargs,
    ):
        attention_mechanism = resolve_legacy_attention_type(attention_mechanism, kwargs)
        for name in ("vocab_size", "hidden_size", "embedding_size", "encoder_layers", "decoder_layers"):
            check_int(name, locals()[name])
        check_choice("attention_mechanism", attention_mechanism, ATTENTION_MECHANISMS)
        check_choice("luong_score", luong_score, LUONG_SCORES)
        check_probability("dropout", dropout)
        if not init_std > 0:
            raise ValueError(f"init_std must be positive, got {init_std!r}")
        if tie_word_embeddings and embedding_size != hidden_size:
            raise ValueError(
                f"tie_word_embeddings needs embedding_size ({embedding_size}) == hidden_size ({hidden_size}): "
                "the output projection re-uses the embedding matrix on hidden_size-dimensional vectors"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.bidirectional_encoder = bidirectional_encoder
        self.attention_mechanism = attention_mechanism
        self.luong_score = luong_score
        self.dropout = dropout
        self.init_std = init_std
        self.share_embeddings = share_embeddings
        self.tie_word_embeddings = tie_word_embeddings
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
