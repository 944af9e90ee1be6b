"""The encoder-decoder Transformer of Vaswani et al. (2017), "Attention Is All You Need", as a Hugging Face model.

Read top to bottom: the position-wise feed-forward network (section 3.3), the encoder and decoder layers
(section 3.1, post-LN as in the paper or pre-LN), the stacks with scaled embeddings plus sinusoidal positions
(sections 3.4, 3.5), the bare encoder-decoder, and the model with a language-modelling head that
``generate()`` drives with an encoder-decoder key/value cache; last, the encoder alone with a pooled
classification head.
"""

import math

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    SequenceClassifierOutput,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .attention import MultiHeadAttention
from .attention_registry import attention_class
from .performer import init_random_features
from .configuration_transformer import TransformerConfig
from .positional import SinusoidalPositionalEmbedding
from .seq2seq import CACHE_FIELD, Seq2SeqLMHeadMixin, pop_cache, seq2seq_lm_output
from .validation import per_layer_size


class FeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2, applied to every position separately. A pruned model records layer
    ``layer_idx``'s width in the config list ``sizes_field`` (``hf_models.pruning``)."""

    def __init__(self, config: TransformerConfig, sizes_field: str, layer_idx: int):
        super().__init__()
        self.sizes_field, self.layer_idx = sizes_field, layer_idx
        intermediate_size = per_layer_size(config, sizes_field, layer_idx, config.intermediate_size)
        self.fc1 = nn.Linear(config.hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, config.hidden_size)
        self.activation = ACT2FN[config.activation_function]
        self.activation_dropout = nn.Dropout(config.activation_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_dropout(self.activation(self.fc1(hidden_states))))


class SublayerConnection(nn.Module):
    """The residual + LayerNorm wrapper around every sub-layer, in post-LN (paper) or pre-LN order."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.pre_layer_norm = config.pre_layer_norm

    def forward(self, hidden_states: torch.Tensor, sublayer) -> torch.Tensor:
        """``sublayer`` maps the normalised (pre-LN) or raw (post-LN) states to its output."""
        if self.pre_layer_norm:
            return hidden_states + self.dropout(sublayer(self.layer_norm(hidden_states)))
        return self.layer_norm(hidden_states + self.dropout(sublayer(hidden_states)))


class TransformerEncoderLayer(GradientCheckpointingLayer):
    """Self-attention over the source, then the FFN, each wrapped in a residual connection and LayerNorm.

    A ``GradientCheckpointingLayer``: ``gradient_checkpointing_enable()`` recomputes it in backward. The attention
    weights reach ``output_attentions`` through transformers' output recorder, so the layer returns the states only.
    """

    def __init__(self, config: TransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn = attention_class(config)(
            config, layer_idx=layer_idx, heads_field="encoder_attention_heads_per_layer"
        )
        self.self_attn_sublayer = SublayerConnection(config)
        self.feed_forward = FeedForward(config, "encoder_intermediate_size_per_layer", layer_idx)
        self.feed_forward_sublayer = SublayerConnection(config)

    def forward(self, hidden_states, attention_mask=None, **kwargs: Unpack[TransformersKwargs]) -> torch.Tensor:
        hidden_states = self.self_attn_sublayer(
            hidden_states, lambda x: self.self_attn(x, attention_mask=attention_mask, **kwargs)[0]
        )
        return self.feed_forward_sublayer(hidden_states, self.feed_forward)


class TransformerDecoderLayer(GradientCheckpointingLayer):
    """Masked (causal) self-attention, cross-attention over the encoder output, then the FFN."""

    def __init__(self, config: TransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn = attention_class(config)(
            config, is_causal=True, layer_idx=layer_idx, heads_field="decoder_attention_heads_per_layer"
        )
        self.self_attn_sublayer = SublayerConnection(config)
        self.encoder_attn = attention_class(config)(
            config, is_cross_attention=True, layer_idx=layer_idx, heads_field="cross_attention_heads_per_layer"
        )
        self.encoder_attn_sublayer = SublayerConnection(config)
        self.feed_forward = FeedForward(config, "decoder_intermediate_size_per_layer", layer_idx)
        self.feed_forward_sublayer = SublayerConnection(config)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        cache=None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        """``hidden_states`` and ``encoder_hidden_states`` come positionally, so reentrant gradient checkpointing
        passes their gradients through."""
        hidden_states = self.self_attn_sublayer(
            hidden_states, lambda x: self.self_attn(x, attention_mask=attention_mask, cache=cache, **kwargs)[0]
        )
        hidden_states = self.encoder_attn_sublayer(
            hidden_states,
            lambda x: self.encoder_attn(
                x, key_value_states=encoder_hidden_states, attention_mask=encoder_attention_mask, cache=cache, **kwargs
            )[0],
        )
        return self.feed_forward_sublayer(hidden_states, self.feed_forward)


class TransformerPreTrainedModel(PreTrainedModel):
    config_class = TransformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _no_split_modules = ["TransformerEncoderLayer", "TransformerDecoderLayer"]
    # forward() computes a mean loss and takes **kwargs; without this Trainer would pass num_items_in_batch and skip
    # dividing the loss by the gradient-accumulation steps.
    accepts_loss_kwargs = False

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        """transformers ties nothing unless ``config.tie_word_embeddings``; ``share_embeddings`` ties the encoder's and
        the decoder's embeddings to ``shared`` either way. ``_tied_weights_keys`` is built from both switches."""
        if all_submodels or not self._tied_weights_keys:
            return super().get_expanded_tied_weights_keys(all_submodels)
        return dict(self._tied_weights_keys)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """Xavier-uniform linear layers and N(0, d_model^-0.5) embeddings, as in fairseq's reference Transformer
        (the paper does not state its initialisation); the padding embedding starts at zero. Performer layers draw
        their random features."""
        init_random_features(module)
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class TransformerEmbeddings(nn.Module):
    """Token embedding * sqrt(d_model) + sinusoidal position, then dropout (section 3.4-3.5).

    The scale applies to ``inputs_embeds`` too, so ``inputs_embeds=model.get_input_embeddings()(input_ids)`` gives the
    same outputs as ``input_ids`` (as on MarianMT's decoder)."""

    def __init__(self, config: TransformerConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.embed_positions = SinusoidalPositionalEmbedding(config.hidden_size, config.max_position_embeddings)
        self.embed_scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids=None, inputs_embeds=None, past_length: int = 0) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        inputs_embeds = inputs_embeds * self.embed_scale
        position_ids = torch.arange(inputs_embeds.size(1), device=inputs_embeds.device) + past_length
        return self.dropout(inputs_embeds + self.embed_positions(position_ids, dtype=inputs_embeds.dtype))


class TransformerStack(TransformerPreTrainedModel):
    """What the encoder and decoder stacks share: token embeddings, positions, N layers, and in pre-LN mode the final
    LayerNorm that the last residual stream needs. Each stack owns its embedding module; sharing one matrix between
    stacks (and the LM head) is parameter tying through ``_tied_weights_keys``, as on MarianMT, so that loading a
    checkpoint that lacks some of the tied names still materialises and ties every one of them.

    ``hidden_states`` / ``attentions`` are recorded by transformers' ``capture_outputs`` from the modules named in
    ``_can_record_outputs``: the embedding output, then every layer's output (the last one replaced by
    ``last_hidden_state``, i.e. after pre-LN's final LayerNorm), so a stack of N layers returns N + 1 states."""

    def __init__(self, config: TransformerConfig, layer_class, num_layers: int):
        super().__init__(config)
        embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embeddings = TransformerEmbeddings(config, embed_tokens)
        self.layers = nn.ModuleList(layer_class(config, i) for i in range(num_layers))
        self.layer_norm = nn.LayerNorm(config.hidden_size, config.layer_norm_eps) if config.pre_layer_norm else None
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.embed_tokens

    def set_input_embeddings(self, value):
        self.embeddings.embed_tokens = value

    def final_layer_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Pre-LN's closing LayerNorm (post-LN layers end normalised already)."""
        return hidden_states if self.layer_norm is None else self.layer_norm(hidden_states)


def recorded_hidden_states(layer_class) -> list[OutputRecorder]:
    """The embedding output, then each layer's: recorded as modules' outputs, so a stack without layers still
    returns its one state (the embeddings)."""
    return [
        OutputRecorder(TransformerEmbeddings, capture_initial_hidden_state=False),
        OutputRecorder(layer_class, capture_initial_hidden_state=False),
    ]


class TransformerEncoder(TransformerStack):
    """The stack of N encoder layers; the input of ``generate()``'s ``get_encoder()``."""

    _can_record_outputs = {
        "hidden_states": recorded_hidden_states(TransformerEncoderLayer),
        "attentions": OutputRecorder(MultiHeadAttention, index=1),
    }

    def __init__(self, config: TransformerConfig):
        super().__init__(config, TransformerEncoderLayer, config.encoder_layers)

    @capture_outputs
    def forward(
        self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs: Unpack[TransformersKwargs]
    ) -> BaseModelOutput:
        hidden_states = self.embeddings(input_ids, inputs_embeds)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        for layer in self.layers:
            hidden_states = layer(hidden_states, mask, **kwargs)
        return BaseModelOutput(last_hidden_state=self.final_layer_norm(hidden_states))


class TransformerDecoder(TransformerStack):
    """The stack of N decoder layers with causal self-attention and cross-attention, cached when generating."""

    _can_record_outputs = {
        "hidden_states": recorded_hidden_states(TransformerDecoderLayer),
        "attentions": OutputRecorder(MultiHeadAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(MultiHeadAttention, index=1, layer_name="encoder_attn"),
    }

    def __init__(self, config: TransformerConfig):
        super().__init__(config, TransformerDecoderLayer, config.decoder_layers)

    @merge_with_config_defaults  # use_cache from the config, and off while gradient checkpointing recomputes layers
    @capture_outputs
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        inputs_embeds=None,
        use_cache=None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """The masks are sized against the cache (a static cache's keys have its full length, the unwritten slots
        masked by causality). A ``attention_mask`` of this step's tokens only is extended over the cached prefix."""
        cache = pop_cache(kwargs)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        past_length = cache.get_seq_length() if cache is not None else 0
        hidden_states = self.embeddings(input_ids, inputs_embeds, past_length=past_length)
        query_length = hidden_states.size(1)
        if attention_mask is not None and attention_mask.size(-1) == query_length and past_length:
            attention_mask = torch.cat([attention_mask.new_ones(attention_mask.size(0), past_length), attention_mask], -1)
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        self_mask = create_causal_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask, cache=self_cache
        )
        cross_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        for layer in self.layers:
            hidden_states = layer(
                hidden_states, self_mask, encoder_hidden_states, encoder_attention_mask=cross_mask, cache=cache, **kwargs
            )
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=self.final_layer_norm(hidden_states), **{CACHE_FIELD: cache if use_cache else None}
        )


class TransformerModel(TransformerPreTrainedModel):
    """Encoder + decoder without a head; returns the decoder's last hidden state.

    An encoder-only configuration (``is_encoder_decoder=False``, as the text classifier's) builds the encoder alone
    and returns its ``BaseModelOutput``: ``AutoModel`` (one class per configuration class) then loads the text
    classifier's encoder weights, as ``AutoModel`` loads BERT's from a ``BertForSequenceClassification`` folder."""

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        if not config.is_encoder_decoder:
            self.encoder = TransformerEncoder(config)
            self.decoder = None
            self.post_init()
            return
        if config.share_embeddings:
            self.shared = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
            self._tied_weights_keys = {
                "encoder.embeddings.embed_tokens.weight": "shared.weight",
                "decoder.embeddings.embed_tokens.weight": "shared.weight",
            }
        self.encoder = TransformerEncoder(config)
        self.decoder = TransformerDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        if self.decoder is None:
            self.encoder.set_input_embeddings(value)
            return
        if self.config.share_embeddings:
            self.shared = value
        self.encoder.set_input_embeddings(value)
        self.decoder.set_input_embeddings(value)

    def get_encoder(self):
        return self.encoder

    def get_decoder(self):
        return self.decoder

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        use_cache=None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqModelOutput | BaseModelOutput:
        cache = pop_cache(kwargs)
        if self.decoder is None:
            return self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, return_dict=True, **kwargs
            )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, return_dict=True, **kwargs
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):  # a tuple, as return_dict=False gives
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            cache=cache,
            return_dict=True,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            **{CACHE_FIELD: getattr(decoder_outputs, CACHE_FIELD)},
        )


class TransformerForConditionalGeneration(Seq2SeqLMHeadMixin, TransformerPreTrainedModel, GenerationMixin):
    """Encoder-decoder Transformer with a linear + softmax output layer, for translation and other seq2seq tasks.

    ``labels`` are the target token ids (padding as -100); the decoder input is ``labels`` shifted right behind
    ``decoder_start_token_id`` (teacher forcing) and the loss is token-level cross-entropy.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        self.model = TransformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        tied = {}
        if config.share_embeddings:
            tied.update(
                {
                    "model.encoder.embeddings.embed_tokens.weight": "model.shared.weight",
                    "model.decoder.embeddings.embed_tokens.weight": "model.shared.weight",
                }
            )
        if config.tie_word_embeddings:
            tied["lm_head.weight"] = (
                "model.shared.weight" if config.share_embeddings else "model.decoder.embeddings.embed_tokens.weight"
            )
        self._tied_weights_keys = tied or None
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        inputs_embeds=None,
        decoder_inputs_embeds=None,
        labels=None,
        use_cache=None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqLMOutput:
        cache = pop_cache(kwargs)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            cache=cache,
            return_dict=True,
            **kwargs,
        )
        return seq2seq_lm_output(outputs, self.lm_head(outputs.last_hidden_state), labels)


def word_dropout(attention_mask: torch.Tensor, probability: float) -> torch.Tensor:
    """Hides each token but the first from the model with ``probability`` by zeroing its attention-mask entry (Iyyer
    et al. 2015). The first token ([CLS]) always stays, so CLS pooling has its token and no text loses every token."""
    keep = torch.rand(attention_mask.shape, device=attention_mask.device) >= probability
    keep[:, 0] = True
    return attention_mask * keep


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Average of ``(batch, length, hidden)`` states over the positions where ``attention_mask`` is 1, so padding
    never changes the result; a row with no real token gives zeros instead of NaN."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TransformerForSequenceClassification(TransformerPreTrainedModel):
    """The Transformer encoder with a pooled linear classifier: text classification, multi-label or regression.

    The encoder states are pooled into one vector per text (``config.classifier_pooling``: masked mean over the
    real tokens, or the first token, which the classification tokenizer makes ``[CLS]``), passed through dropout
    (``config.classifier_dropout``) and one linear layer to ``config.num_labels`` logits. With ``encoder_layers=0``
    and post-LN (so no final LayerNorm) this is exactly the bag-of-embeddings baseline: token embedding +
    sinusoidal positions, mean over the positions, linear layer.

    ``labels``: class ids ``(batch,)`` for single-label classification, 0/1 floats ``(batch, num_labels)`` for
    multi-label, floats for regression; ``config.problem_type`` picks the loss (inferred from ``num_labels`` and the
    labels' dtype when unset, as in every transformers classifier). While training, ``config.word_dropout`` hides
    random tokens (see :func:`word_dropout`).
    """

    base_model_prefix = "encoder"

    def __init__(self, config: TransformerConfig):
        # Encoder-only, and its config says so: num_hidden_layers then counts the encoder layers (configs saved before
        # this held is_encoder_decoder=True with decoder_layers=0 and reported 0 layers).
        config.is_encoder_decoder = False
        super().__init__(config)
        self.encoder = TransformerEncoder(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    @can_return_tuple
    def forward(
        self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs: Unpack[TransformersKwargs]
    ) -> SequenceClassifierOutput:
        if self.training and self.config.word_dropout > 0:
            shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
            if attention_mask is None:
                attention_mask = torch.ones(shape, dtype=torch.long, device=self.device)
            attention_mask = word_dropout(attention_mask, self.config.word_dropout)
        outputs = self.encoder(input_ids, attention_mask, inputs_embeds, return_dict=True, **kwargs)
        hidden_states = outputs.last_hidden_state
        if self.config.classifier_pooling == "cls":
            pooled = hidden_states[:, 0]
        else:
            pooled = masked_mean(hidden_states, attention_mask)
        logits = self.classifier(self.dropout(pooled))
        loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config) if labels is not None else None
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
