"""GRU encoder-decoder with attention: Bahdanau et al. (2015) additive and Luong et al. (2015) multiplicative.

Encoder: token embeddings -> (bidirectional) multi-layer GRU run over PACKED sequences, so padding never enters
the recurrence and a padded batch gives the same states as each sentence alone. With two directions the
annotation ``[forward_j; backward_j]`` of every source position is projected back to ``hidden_size``.

Decoder: a GRU whose initial state is ``tanh(W [forward final; backward final])`` of the top encoder layer, and
which attends over the ENCODER states h_j (masked by the source padding) at every target step. The source text this
project replaces attended over the decoder's own outputs, which is not encoder-decoder attention at all.

* Bahdanau: ``e_tj = v^T tanh(W_s s_{t-1} + W_h h_j)``; the context ``c_t`` is computed from the PREVIOUS decoder
  state and is fed to the GRU together with the embedded previous token, so training needs a loop over target steps.
  The output layer is a deep output ``tanh(W_o [s_t; c_t; E y_{t-1}])`` (tanh in place of the paper's maxout).
* Luong: the GRU steps first (it runs over the whole target sequence in one cuDNN-style call), then
  ``score(h_t, h_j) = h_t^T W h_j`` ("general") or ``h_t^T h_j`` ("dot"), for all steps at once, and the attentional
  hidden state is ``tanh(W_c [c_t; h_t])``. Without input feeding no step loop is needed.

Generation is incremental: the decoder carries a ``GRUDecoderState`` (GRU hidden state, the encoder states already
projected for scoring, and the number of steps taken) instead of a key/value cache, so each step feeds one token.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from .configuration_gru_seq2seq import GRUSeq2SeqConfig
from .seq2seq import CACHE_FIELD, pop_cache, seq2seq_lm_loss, shift_tokens_right


@dataclass
class GRUSeq2SeqEncoderOutput(BaseModelOutput):
    """``BaseModelOutput`` plus the top encoder layer's final states, from which the decoder starts.

    final_hidden_state: ``(batch, num_directions * hidden_size)``, ``[forward after the last token; backward after
    the first token]``. Batch-first, so ``generate()`` expands it for beams like ``last_hidden_state``.
    """

    final_hidden_state: torch.FloatTensor | None = None


class GRUDecoderState:
    """What the GRU decoder needs to take the next step; ``generate()`` passes it back in place of a KV cache.

    hidden: ``(decoder_layers, batch, hidden_size)`` GRU state after the tokens seen so far.
    attention_keys: ``(batch, src_len, hidden_size)`` encoder states projected for scoring, computed once per input.
    seq_length: number of target tokens consumed.
    """

    def __init__(self, hidden: torch.Tensor, attention_keys: torch.Tensor, seq_length: int = 0):
        self.hidden = hidden
        self.attention_keys = attention_keys
        self.seq_length = seq_length

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seq_length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: keep, in place, the states of the beams selected by ``beam_idx`` (flat batch*beam index)."""
        self.hidden = self.hidden.index_select(1, beam_idx.to(self.hidden.device))
        self.attention_keys = self.attention_keys.index_select(0, beam_idx.to(self.attention_keys.device))


def source_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Lengths of right-padded sources, on CPU as ``pack_padded_sequence`` wants them.

    Packing reads the first ``length`` positions, so a left-padded mask (or holes in the mask) would silently feed
    padding to the GRU: refuse it, and refuse empty sources, which have no state to start the decoder from.
    """
    lengths = attention_mask.long().sum(-1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not torch.equal(attention_mask.bool(), positions[None, :] < lengths[:, None]):
        raise ValueError(
            "attention_mask must be right-padded (all 1s, then all 0s); use a tokenizer with padding_side='right'"
        )
    if bool((lengths == 0).any()):
        raise ValueError("every source sequence needs at least one token (attention_mask has an all-zero row)")
    return lengths.cpu()


class GRUSeq2SeqEncoder(nn.Module):
    """Embedding -> (bi)GRU over packed sequences -> projection of ``[forward; backward]`` to ``hidden_size``."""

    main_input_name = "input_ids"  # generate() compares it with the model's to find the encoder input

    def __init__(self, config: GRUSeq2SeqConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.dropout = nn.Dropout(config.dropout)
        self.num_directions = 2 if config.bidirectional_encoder else 1
        self.gru = nn.GRU(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.encoder_layers,
            batch_first=True,
            bidirectional=config.bidirectional_encoder,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
        )
        self.state_projection = (
            nn.Linear(2 * config.hidden_size, config.hidden_size) if config.bidirectional_encoder else nn.Identity()
        )

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> GRUSeq2SeqEncoderOutput | tuple:
        """``attentions`` is always None (a GRU has no self-attention). ``hidden_states`` holds the embedding
        output and ``last_hidden_state``: nn.GRU keeps its inner layers' outputs to itself."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds = self.dropout(self.embed_tokens(input_ids))
        packed = pack_padded_sequence(embeds, source_lengths(attention_mask), batch_first=True, enforce_sorted=False)
        packed_states, final = self.gru(packed)  # final: (layers * directions, batch, hidden), in input order
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=input_ids.shape[1])
        last_hidden_state = self.state_projection(states)
        final_hidden_state = final[-self.num_directions :].transpose(0, 1).reshape(input_ids.shape[0], -1)
        output = GRUSeq2SeqEncoderOutput(
            last_hidden_state=last_hidden_state,
            hidden_states=(embeds, last_hidden_state) if output_hidden_states else None,
            final_hidden_state=final_hidden_state,
        )
        return output if return_dict else output.to_tuple()


def attend(scores, encoder_hidden_states, encoder_attention_mask):
    """Masked softmax over source positions: ``scores`` ``(batch, tgt, src)`` -> context ``(batch, tgt, hidden)`` and
    weights ``(batch, tgt, src)``. Padding gets the most negative finite score, so its weight is exactly 0."""
    scores = scores.masked_fill(~encoder_attention_mask.bool()[:, None, :], torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    return weights @ encoder_hidden_states, weights


class BahdanauAttention(nn.Module):
    """Additive attention: ``e_tj = v^T tanh(W_s s + W_h h_j)`` (Bahdanau et al. 2015, appendix A.1.2)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.query_projection = nn.Linear(hidden_size, hidden_size, bias=False)  # W_s
        self.key_projection = nn.Linear(hidden_size, hidden_size)  # W_h (its bias is the MLP's bias)
        self.energy = nn.Linear(hidden_size, 1, bias=False)  # v

    def project_keys(self, encoder_hidden_states):
        """``W_h h_j`` does not depend on the decoder step: computed once per source, cached in the decoder state."""
        return self.key_projection(encoder_hidden_states)

    def forward(self, query, keys, encoder_hidden_states, encoder_attention_mask):
        """``query`` ``(batch, tgt, hidden)``, ``keys`` from ``project_keys``: context and weights, see ``attend``."""
        scores = self.energy(torch.tanh(self.query_projection(query)[:, :, None, :] + keys[:, None, :, :]))
        return attend(scores.squeeze(-1), encoder_hidden_states, encoder_attention_mask)


class LuongAttention(nn.Module):
    """Multiplicative attention: ``h_t^T W h_j`` ("general") or ``h_t^T h_j`` ("dot") (Luong et al. 2015, 3.1)."""

    def __init__(self, hidden_size: int, luong_score: str):
        super().__init__()
        self.key_projection = (
            nn.Linear(hidden_size, hidden_size, bias=False) if luong_score == "general" else nn.Identity()
        )

    def project_keys(self, encoder_hidden_states):
        """``W h_j`` (or ``h_j`` itself for "dot"), computed once per source and cached in the decoder state."""
        return self.key_projection(encoder_hidden_states)

    def forward(self, query, keys, encoder_hidden_states, encoder_attention_mask):
        """``query`` ``(batch, tgt, hidden)``, ``keys`` from ``project_keys``: context and weights, see ``attend``."""
        return attend(query @ keys.transpose(1, 2), encoder_hidden_states, encoder_attention_mask)


class GRUSeq2SeqDecoder(nn.Module):
    """GRU decoder attending over the encoder states; returns the attentional vectors the output layer reads."""

    def __init__(self, config: GRUSeq2SeqConfig, embed_tokens: nn.Embedding):
        super().__init__()
        hidden_size = config.hidden_size
        self.attention_type = config.attention_type
        self.num_layers = config.decoder_layers
        self.embed_tokens = embed_tokens
        self.dropout = nn.Dropout(config.dropout)
        encoder_directions = 2 if config.bidirectional_encoder else 1
        self.bridge = nn.Linear(encoder_directions * hidden_size, config.decoder_layers * hidden_size)
        if config.attention_type == "bahdanau":
            self.attention = BahdanauAttention(hidden_size)
            gru_input_size = config.embedding_size + hidden_size  # [E y_{t-1}; c_t]
            attentional_input_size = 2 * hidden_size + config.embedding_size  # deep output [s_t; c_t; E y_{t-1}]
        else:
            self.attention = LuongAttention(hidden_size, config.luong_score)
            gru_input_size = config.embedding_size
            attentional_input_size = 2 * hidden_size  # W_c [c_t; h_t]
        self.gru = nn.GRU(
            gru_input_size,
            hidden_size,
            num_layers=config.decoder_layers,
            batch_first=True,
            dropout=config.dropout if config.decoder_layers > 1 else 0.0,
        )
        self.attentional_projection = nn.Linear(attentional_input_size, hidden_size)

    def initial_state(self, encoder_final_state: torch.Tensor, encoder_hidden_states: torch.Tensor) -> GRUDecoderState:
        """``s_0 = tanh(W [forward final; backward final])``, one slice per decoder layer, and the projected keys."""
        batch_size = encoder_final_state.shape[0]
        hidden = torch.tanh(self.bridge(encoder_final_state)).view(batch_size, self.num_layers, -1)
        return GRUDecoderState(
            hidden.transpose(0, 1).contiguous(), self.attention.project_keys(encoder_hidden_states), seq_length=0
        )

    def forward(self, input_ids, encoder_hidden_states, encoder_attention_mask, state: GRUDecoderState):
        """Consume ``input_ids`` ``(batch, tgt)`` from ``state``.

        Returns the attentional vectors ``(batch, tgt, hidden)``, the attention weights ``(batch, tgt, src)``, the
        state after the last token, and the hidden states ``(embedding output, top GRU layer s_t)``. Target padding
        sits at the end and the decoder is causal, so it needs no mask.
        """
        embeds = self.dropout(self.embed_tokens(input_ids))
        keys = state.attention_keys
        if self.attention_type == "bahdanau":
            hidden = state.hidden
            decoder_states, contexts, weights = [], [], []
            for step in range(input_ids.shape[1]):
                # the context comes from the PREVIOUS state s_{t-1} (top layer) and feeds the GRU input
                context, step_weights = self.attention(
                    hidden[-1][:, None, :], keys, encoder_hidden_states, encoder_attention_mask
                )
                output, hidden = self.gru(torch.cat([embeds[:, step : step + 1], context], dim=-1), hidden)
                decoder_states.append(output)
                contexts.append(context)
                weights.append(step_weights)
            decoder_states, context, weights = (torch.cat(x, dim=1) for x in (decoder_states, contexts, weights))
            attentional = torch.tanh(self.attentional_projection(torch.cat([decoder_states, context, embeds], -1)))
        else:
            decoder_states, hidden = self.gru(embeds, state.hidden)
            context, weights = self.attention(decoder_states, keys, encoder_hidden_states, encoder_attention_mask)
            attentional = torch.tanh(self.attentional_projection(torch.cat([context, decoder_states], dim=-1)))
        new_state = GRUDecoderState(hidden, keys, state.seq_length + input_ids.shape[1])
        return self.dropout(attentional), weights, new_state, (embeds, decoder_states)


class GRUSeq2SeqPreTrainedModel(PreTrainedModel):
    config_class = GRUSeq2SeqConfig
    # forward() takes **kwargs only for the cache's two names (past_key_values / cache); without this flag Trainer
    # would pass num_items_in_batch and assume the (mean) loss is already scaled for gradient accumulation.
    accepts_loss_kwargs = False

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """A GRU has no keys/values to cache: generate() must not build a DynamicCache; the model returns its own
        ``GRUDecoderState`` after the first step."""
        return False

    def _init_weights(self, module):
        """Embeddings and linear layers: normal(0, init_std) (the default); GRUs: Xavier input-to-hidden weights,
        orthogonal hidden-to-hidden weights (keeps the recurrence's gradients from vanishing or exploding early),
        zero biases."""
        if isinstance(module, nn.GRU):
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    init.orthogonal_(param)
                else:
                    init.zeros_(param)
        else:
            super()._init_weights(module)


class GRUSeq2SeqForConditionalGeneration(GRUSeq2SeqPreTrainedModel, GenerationMixin):
    """GRU encoder-decoder with attention and a vocabulary projection, for translation.

    ``labels`` are the target ids (padding as -100); the decoder reads them shifted right behind
    ``decoder_start_token_id`` (teacher forcing) and the loss is token-level cross-entropy. ``generate()`` supports
    greedy search, beam search and sampling, incrementally through ``GRUDecoderState``.
    """

    def __init__(self, config: GRUSeq2SeqConfig):
        super().__init__(config)
        encoder_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        decoder_embeddings = (
            encoder_embeddings
            if config.share_embeddings
            else nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        )
        self.encoder = GRUSeq2SeqEncoder(config, encoder_embeddings)
        self.decoder = GRUSeq2SeqDecoder(config, decoder_embeddings)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        tied = {}
        if config.share_embeddings:
            tied["decoder.embed_tokens.weight"] = "encoder.embed_tokens.weight"
        if config.tie_word_embeddings:
            tied["lm_head.weight"] = (
                "encoder.embed_tokens.weight" if config.share_embeddings else "decoder.embed_tokens.weight"
            )
        self._tied_weights_keys = tied or None
        self.post_init()

    def get_encoder(self):
        return self.encoder

    def get_decoder(self):
        return self.decoder

    def get_input_embeddings(self):
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value):
        self.encoder.embed_tokens = value
        if self.config.share_embeddings:
            self.decoder.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def _resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of=None, mean_resizing=True):
        """One ``vocab_size`` for both sides: an unshared decoder embedding is resized with the encoder's."""
        if not self.config.share_embeddings:
            self.decoder.embed_tokens = self._get_resized_embeddings(
                self.decoder.embed_tokens, new_num_tokens, pad_to_multiple_of, mean_resizing
            )
        return super()._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: GRUSeq2SeqEncoderOutput | tuple | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        """Teacher-forced loss/logits, or one generation step from the decoder state.

        The decoder state travels as ``cache=`` (transformers >= 5.24) or ``past_key_values=`` (5.23); with
        ``use_cache`` it comes back in the output under the same name. ``cross_attentions`` (with
        ``output_attentions``) is a 1-tuple of ``(batch, 1, tgt_len, src_len)`` weights over the source tokens.
        """
        state = pop_cache(kwargs)
        if kwargs:
            raise TypeError(f"{type(self).__name__}.forward() got unexpected arguments: {sorted(kwargs)}")
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if decoder_input_ids is None:
            raise ValueError("pass decoder_input_ids or labels (the decoder needs its input tokens)")

        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("pass input_ids or encoder_outputs")
            encoder_outputs = self.encoder(input_ids, attention_mask, output_hidden_states=output_hidden_states)
        elif isinstance(encoder_outputs, tuple) and len(encoder_outputs) > 1:
            # from encoder(..., return_dict=False): last_hidden_state first, final_hidden_state last
            encoder_outputs = GRUSeq2SeqEncoderOutput(
                last_hidden_state=encoder_outputs[0], final_hidden_state=encoder_outputs[-1]
            )
        encoder_hidden_states = encoder_outputs[0]
        if attention_mask is None:
            attention_mask = torch.ones(encoder_hidden_states.shape[:2], device=encoder_hidden_states.device)

        if state is None:  # first step: start from the encoder's final states
            if getattr(encoder_outputs, "final_hidden_state", None) is None:
                raise ValueError(
                    "encoder_outputs must come from GRUSeq2SeqEncoder: the decoder starts from its final_hidden_state"
                )
            state = self.decoder.initial_state(encoder_outputs.final_hidden_state, encoder_hidden_states)
        attentional, cross_attention, state, decoder_hidden_states = self.decoder(
            decoder_input_ids, encoder_hidden_states, attention_mask, state
        )
        logits = self.lm_head(attentional)
        loss = seq2seq_lm_loss(logits, labels) if labels is not None else None

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=decoder_hidden_states if output_hidden_states else None,
            cross_attentions=(cross_attention[:, None],) if output_attentions else None,
            encoder_last_hidden_state=encoder_hidden_states,
            encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
            **{CACHE_FIELD: state if use_cache else None},
        )
        return output if return_dict else output.to_tuple()
