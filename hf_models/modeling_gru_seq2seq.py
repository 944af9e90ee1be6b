"""GRU encoder-decoder with attention: Bahdanau et al. (2015) additive and Luong et al. (2015) multiplicative.

Encoder: token embeddings -> (bidirectional) multi-layer GRU. Padding never enters the recurrence: the forward
direction reads each sentence left to right (right padding comes after its last token, so it cannot reach the states
of real tokens), and the backward direction reads each sentence reversed WITHIN its own length, so it starts at the
sentence's last real token. A padded batch thus gives the same states as each sentence alone -- what packed sequences
gave, without ``pack_padded_sequence``, whose data-dependent batch sizes ``torch.export`` cannot trace. With two
directions the annotation ``[forward_j; backward_j]`` of every source position is projected back to ``hidden_size``.

Decoder: a GRU whose initial state is ``tanh(W [forward final; backward final])`` of the top encoder layer, and
which attends over the ENCODER states h_j (masked by the source padding) at every target step. The source text this
project replaces attended over the decoder's own outputs, which is not encoder-decoder attention at all.

* Bahdanau: ``e_tj = v^T tanh(W_s s_{t-1} + W_h h_j)``; the context ``c_t`` is computed from the PREVIOUS decoder
  state and is fed to the GRU together with the embedded previous token, so training needs a loop over target steps.
  The output layer is a deep output ``tanh(W_o [s_t; c_t; E y_{t-1}])`` (tanh in place of the paper's maxout).
* Luong: the GRU steps first (it runs over the whole target sequence in one cuDNN-style call), then
  ``score(h_t, h_j) = h_t^T W h_j`` ("general") or ``h_t^T h_j`` ("dot"), for all steps at once, and the attentional
  hidden state is ``tanh(W_c [c_t; h_t])``. Without input feeding no step loop is needed.

Generation is incremental: the decoder state is a :class:`GRUStateCache` (a transformers ``Cache``) holding the GRU
hidden state of every decoder layer and the encoder states already projected for scoring, so each step feeds one
token. ``GRUSeq2SeqModel`` is the encoder-decoder without the vocabulary projection (``AutoModel``, feature
extraction); ``GRUSeq2SeqForConditionalGeneration`` wraps it as ``.model`` and adds ``lm_head``, as MarianMT does.
Checkpoints saved before the base model existed name its weights ``encoder.*`` / ``decoder.*`` without the
``model.`` prefix; transformers adds the ``base_model_prefix`` on load, so they load unchanged (tested).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_gru_seq2seq import GRUSeq2SeqConfig
from .seq2seq import CACHE_FIELD, Seq2SeqLMHeadMixin, pop_cache, seq2seq_lm_output


@dataclass
class GRUSeq2SeqEncoderOutput(BaseModelOutput):
    """``BaseModelOutput`` plus the top encoder layer's final states, from which the decoder starts.

    final_hidden_state: ``(batch, num_directions * hidden_size)``, ``[forward after the last token; backward after
    the first token]``. Batch-first, so ``generate()`` expands it for beams like ``last_hidden_state``.
    """

    final_hidden_state: torch.FloatTensor | None = None


class GRUStateLayer:
    """One decoder layer's GRU state, ``states`` ``(batch, kept, hidden_size)``.

    Normally ``kept`` is 1: the state after the last token is all a recurrence needs. While the past is recorded
    (``activate_past_recording``, which assisted and prompt-lookup decoding call), the state before the last forward
    call and the state after each of its tokens are kept, so ``crop`` can go back to the state after any of them:
    unlike a key/value cache a GRU state cannot be cut, but a kept earlier state can be returned to.
    """

    is_compileable = False
    is_sliding = False
    supports_early_init = False

    def __init__(self):
        self.states: torch.Tensor | None = None
        self.record_past = False
        self.recurrent_states_to_keep = 0

    @property
    def is_initialized(self) -> bool:
        return self.states is not None

    @property
    def is_croppable(self) -> bool:
        return self.record_past

    @property
    def batch_size(self) -> int:
        return self.states.shape[0]

    def activate_past_recording(self, recurrent_states_to_keep: int | None = None) -> None:
        """``recurrent_states_to_keep`` (how far back ``crop`` may go, which transformers >= 5.25 passes and reads
        back through ``Cache.get_recurrent_states_to_keep``) is recorded; every state is kept until the next crop."""
        self.record_past = True
        self.recurrent_states_to_keep = recurrent_states_to_keep or 0

    def update(self, step_states: torch.Tensor) -> None:
        """``step_states`` ``(batch, steps, hidden)``: the state after each new token (or only the last one)."""
        if self.record_past and self.states is not None:
            self.states = torch.cat([self.states, step_states], dim=1)
        else:
            self.states = step_states[:, -1:]

    def crop(self, tokens_to_remove: int) -> None:
        """Keep only the state after all but the last ``tokens_to_remove`` tokens (0: the current state)."""
        if tokens_to_remove > 0 and not self.record_past:
            raise RuntimeError(
                "a GRU state cannot be rolled back by cropping: it only keeps the state after the last token unless "
                "the past is recorded (call activate_past_recording() before the forward calls to undo)"
            )
        if tokens_to_remove >= self.states.shape[1]:
            raise ValueError(
                f"cannot remove {tokens_to_remove} tokens: only the states of the last {self.states.shape[1] - 1} "
                "tokens are kept"
            )
        end = self.states.shape[1] - tokens_to_remove
        self.states = self.states[:, end - 1 : end]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.states = self.states.index_select(0, beam_idx.to(self.states.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.states = self.states.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.states = self.states[indices]

    def reset(self) -> None:
        self.states = None

    def offload(self) -> None:
        if self.states is not None:
            self.states = self.states.to("cpu", non_blocking=True)

    def prefetch(self) -> None: ...

    def get_max_length(self) -> int:
        return -1


class GRUStateCache(Cache):
    """The GRU decoder's generation state, as the ``Cache`` that ``generate()`` threads through its steps.

    Holds one :class:`GRUStateLayer` per decoder layer, the encoder states already projected for scoring
    (``attention_keys``, ``(batch, src_len, hidden_size)``, computed once per source), and the number of target
    tokens consumed. Beam search (``reorder_cache``), batch selection and repetition act on the batch dimension of
    all of them. ``crop`` (assisted and prompt-lookup decoding) returns to an earlier state once the past is
    recorded; without recording it refuses, since a GRU's state after ``n`` tokens cannot be turned back into its
    state after ``n - k``. Create one with ``GRUStateCache(model.config)`` to pass as ``generate(cache=...)``.

    The state has the same size after every step, so there is nothing for ``cache_implementation="static"`` to
    preallocate: ``generate()`` refuses that option (and every other key/value-cache implementation) with an error.
    """

    def __init__(self, config: GRUSeq2SeqConfig):
        super().__init__(layers=[GRUStateLayer() for _ in range(config.decoder_layers)])
        self.attention_keys: torch.Tensor | None = None
        self.seen_tokens = 0

    @property
    def is_initialized(self) -> bool:
        return self.attention_keys is not None

    @property
    def batch_size(self) -> int:
        return self.attention_keys.shape[0] if self.is_initialized else -1

    def initialize(self, hidden: torch.Tensor, attention_keys: torch.Tensor) -> None:
        """Start from ``hidden`` ``(layers, batch, hidden_size)`` (the state before any target token)."""
        self.attention_keys = attention_keys
        self.seen_tokens = 0
        for layer, state in zip(self.layers, hidden):
            layer.states = state[:, None]

    @property
    def hidden(self) -> torch.Tensor:
        """The current GRU state, ``(layers, batch, hidden_size)``, as ``nn.GRU`` takes it."""
        return torch.stack([layer.states[:, -1] for layer in self.layers])

    def update_states(self, step_states: torch.Tensor, num_tokens: int) -> None:
        """``step_states`` ``(layers, batch, steps, hidden)``: states after the new tokens (all, or the last)."""
        for layer, states in zip(self.layers, step_states):
            layer.update(states)
        self.seen_tokens += num_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return -1

    def crop(self, tokens_to_remove: int) -> None:
        """Undo the last ``-tokens_to_remove`` tokens (the argument is <= 0, as transformers' linear-attention
        layers take it) and keep only the state needed for the next step."""
        if tokens_to_remove > 0:
            raise ValueError(f"GRUStateCache.crop takes minus the number of tokens to remove, got {tokens_to_remove}")
        for layer in self.layers:
            layer.crop(-tokens_to_remove)
        self.seen_tokens += tokens_to_remove

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self.attention_keys = self.attention_keys.index_select(0, beam_idx.to(self.attention_keys.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self.attention_keys = self.attention_keys.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self.attention_keys = self.attention_keys[indices]

    def reset(self) -> None:
        super().reset()
        self.attention_keys = None
        self.seen_tokens = 0


def check_source_mask(attention_mask: torch.Tensor, name: str = "attention_mask", allow_empty: bool = False) -> None:
    """Refuse masks the GRUs would read wrongly: a left-padded mask (or holes in it) would feed padding to a GRU
    before real tokens, and an empty source has no state to start the decoder from. Eager mode only: the checks
    read the mask's values, which ``torch.export`` / ``torch.compile`` cannot branch on."""
    if torch.compiler.is_compiling() or getattr(torch.compiler, "is_exporting", bool)():
        return
    lengths = attention_mask.long().sum(-1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not torch.equal(attention_mask.bool(), positions[None, :] < lengths[:, None]):
        raise ValueError(f"{name} must be right-padded (all 1s, then all 0s); use a tokenizer with padding_side='right'")
    if not allow_empty and bool((lengths == 0).any()):
        raise ValueError("every source sequence needs at least one token (attention_mask has an all-zero row)")


class GRUSeq2SeqEncoderGRU(GradientCheckpointingLayer, nn.GRU):
    """The encoder's stacked (bi)GRU, run so that padding never enters the recurrence (see the module docstring).

    The parameters are ``nn.GRU``'s, under the names every saved checkpoint uses (``weight_ih_l0``,
    ``weight_hh_l0_reverse``, ...); each layer and direction runs through ``torch.gru``, the kernel ``nn.GRU`` itself
    calls, which exports to ONNX's ``GRU`` operator. A gradient-checkpointing unit: the whole recurrence is recomputed
    in the backward pass instead of keeping every step's gates.
    """

    def run_direction(self, inputs: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        weights = [getattr(self, f"{name}_l{layer}{suffix}") for name in names]
        initial = inputs.new_zeros(1, inputs.shape[0], self.hidden_size)
        outputs, _ = torch.gru(inputs, initial, weights, True, 1, 0.0, self.training, False, True)
        return outputs

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the top layer's states ``(batch, src_len, directions * hidden)`` (0 at padding) and its final
        states ``(batch, directions * hidden)``: forward after the last real token, backward after the first."""
        lengths = attention_mask.long().sum(-1, keepdim=True)
        positions = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)[None, :]
        is_token = positions < lengths
        # reversing every sentence within its length is its own inverse; padding stays where it is
        reversal = torch.where(is_token, lengths - 1 - positions, positions)[..., None]
        states = inputs_embeds
        for layer in range(self.num_layers):
            if layer > 0:
                states = nn.functional.dropout(states, self.dropout, self.training)  # as nn.GRU: between layers
            directions = [self.run_direction(states, layer, "")]
            if self.bidirectional:
                reversed_states = states.gather(1, reversal.expand_as(states))
                backward = self.run_direction(reversed_states, layer, "_reverse")
                directions.append(backward.gather(1, reversal.expand_as(backward)))
            states = torch.cat(directions, dim=-1) * is_token[..., None].to(states.dtype)
        last = (lengths - 1)[..., None].expand(-1, 1, self.hidden_size)
        final = [directions[0].gather(1, last)[:, 0]] + ([directions[1][:, 0]] if self.bidirectional else [])
        return states, torch.cat(final, dim=-1)


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


class GRUSeq2SeqPreTrainedModel(PreTrainedModel):
    config_class = GRUSeq2SeqConfig
    # forward() takes **kwargs only for the cache's two names (past_key_values / cache) and the output flags; without
    # this flag Trainer would pass num_items_in_batch and assume the (mean) loss is already scaled for accumulation.
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    base_model_prefix = "model"

    def _resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of=None, mean_resizing=True):
        """One ``vocab_size`` for both sides: an unshared decoder embedding is resized with the encoder's."""
        if not self.config.share_embeddings:
            decoder = self.get_decoder()
            decoder.embed_tokens = self._get_resized_embeddings(
                decoder.embed_tokens, new_num_tokens, pad_to_multiple_of, mean_resizing
            )
        return super()._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)

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


class GRUSeq2SeqEncoder(GRUSeq2SeqPreTrainedModel):
    """Embedding -> (bi)GRU -> projection of ``[forward; backward]`` to ``hidden_size``.

    ``attentions`` is always None (a GRU has no self-attention). ``hidden_states`` holds the embedding output and
    ``last_hidden_state``: the stacked GRU is one recorded unit, as ``nn.GRU`` keeps its inner layers to itself.
    """

    main_input_name = "input_ids"  # generate() compares it with the model's to find the encoder input
    _can_record_outputs = {"hidden_states": GRUSeq2SeqEncoderGRU}

    def __init__(self, config: GRUSeq2SeqConfig, embed_tokens: nn.Embedding):
        super().__init__(config)
        self.embed_tokens = embed_tokens
        self.dropout = nn.Dropout(config.dropout)
        self.num_directions = 2 if config.bidirectional_encoder else 1
        self.gru = GRUSeq2SeqEncoderGRU(
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
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> GRUSeq2SeqEncoderOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        check_source_mask(attention_mask)
        states, final_hidden_state = self.gru(self.dropout(inputs_embeds), attention_mask)
        return GRUSeq2SeqEncoderOutput(
            last_hidden_state=self.state_projection(states), final_hidden_state=final_hidden_state
        )


class GRUSeq2SeqDecoder(GradientCheckpointingLayer):
    """GRU decoder attending over the encoder states; returns the attentional vectors the output layer reads.

    A gradient-checkpointing unit: with checkpointing on, the whole target loop is recomputed in the backward pass.
    """

    def __init__(self, config: GRUSeq2SeqConfig, embed_tokens: nn.Embedding):
        super().__init__()
        hidden_size = config.hidden_size
        self.attention_mechanism = config.attention_mechanism
        self.num_layers = config.decoder_layers
        self.embed_tokens = embed_tokens
        self.dropout = nn.Dropout(config.dropout)
        encoder_directions = 2 if config.bidirectional_encoder else 1
        self.bridge = nn.Linear(encoder_directions * hidden_size, config.decoder_layers * hidden_size)
        if config.attention_mechanism == "bahdanau":
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

    def initial_hidden(self, encoder_final_state: torch.Tensor) -> torch.Tensor:
        """``s_0 = tanh(W [forward final; backward final])``, per decoder layer: ``(layers, batch, hidden)``."""
        batch_size = encoder_final_state.shape[0]
        hidden = torch.tanh(self.bridge(encoder_final_state)).view(batch_size, self.num_layers, -1)
        return hidden.transpose(0, 1).contiguous()

    def forward(
        self,
        input_ids: torch.LongTensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        hidden: torch.Tensor,
        attention_keys: torch.Tensor,
        every_step_state: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ):
        """Consume ``input_ids`` ``(batch, tgt)`` (or their embeddings ``inputs_embeds``) from the GRU state
        ``hidden`` ``(layers, batch, hidden)``.

        Returns the attentional vectors ``(batch, tgt, hidden)``, the attention weights ``(batch, tgt, src)``, the
        GRU states ``(layers, batch, steps, hidden)`` after every token (``every_step_state``, for a cache that can
        be cropped) or after the last one (``steps`` = 1), and the hidden states ``(embedding output, top GRU layer
        s_t)``. Target padding sits at the end and the decoder is causal, so it needs no mask.
        """
        embeds = self.dropout(self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds)
        step_by_step = self.attention_mechanism == "bahdanau" or every_step_state
        if step_by_step:
            decoder_states, contexts, weights, step_hidden = [], [], [], []
            for step in range(embeds.shape[1]):
                gru_input = embeds[:, step : step + 1]
                if self.attention_mechanism == "bahdanau":
                    # the context comes from the PREVIOUS state s_{t-1} (top layer) and feeds the GRU input
                    context, step_weights = self.attention(
                        hidden[-1][:, None, :], attention_keys, encoder_hidden_states, encoder_attention_mask
                    )
                    gru_input = torch.cat([gru_input, context], dim=-1)
                    contexts.append(context)
                    weights.append(step_weights)
                output, hidden = self.gru(gru_input, hidden)
                decoder_states.append(output)
                step_hidden.append(hidden)
            decoder_states = torch.cat(decoder_states, dim=1)
            step_hidden = torch.stack(step_hidden, dim=2) if every_step_state else hidden[:, :, None]
        else:
            decoder_states, hidden = self.gru(embeds, hidden)
            step_hidden = hidden[:, :, None]
        if self.attention_mechanism == "bahdanau":
            context, weights = torch.cat(contexts, dim=1), torch.cat(weights, dim=1)
            attentional = torch.tanh(self.attentional_projection(torch.cat([decoder_states, context, embeds], -1)))
        else:
            context, weights = self.attention(
                decoder_states, attention_keys, encoder_hidden_states, encoder_attention_mask
            )
            attentional = torch.tanh(self.attentional_projection(torch.cat([context, decoder_states], dim=-1)))
        return self.dropout(attentional), weights, step_hidden, (embeds, decoder_states)


class GRUSeq2SeqModel(GRUSeq2SeqPreTrainedModel):
    """The GRU encoder-decoder without the vocabulary projection: ``last_hidden_state`` is the decoder's attentional
    vectors (what the LM head of :class:`GRUSeq2SeqForConditionalGeneration` reads), like ``MarianModel``'s.

    Outputs follow transformers: a ``Seq2SeqModelOutput`` unless ``return_dict`` (per call, else
    ``config.return_dict``) is False; ``output_hidden_states`` / ``output_attentions`` per call, else from the
    config. ``decoder_hidden_states`` is ``(embedding output, top GRU layer s_t)``; ``cross_attentions`` is a 1-tuple
    of ``(batch, 1, tgt_len, src_len)`` weights over the source tokens; ``decoder_attentions`` is an empty tuple, as
    the decoder has no self-attention layer.
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
        if config.share_embeddings:
            self._tied_weights_keys = {"decoder.embed_tokens.weight": "encoder.embed_tokens.weight"}
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

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: GRUSeq2SeqEncoderOutput | tuple | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqModelOutput:
        """Encoder (unless ``encoder_outputs`` is given) over ``input_ids`` or ``inputs_embeds``, and decoder over
        ``decoder_input_ids`` or ``decoder_inputs_embeds``.

        The decoder state travels as ``cache=`` (transformers >= 5.24) or ``past_key_values=`` (5.23), a
        :class:`GRUStateCache`; with ``use_cache`` (default ``config.use_cache``) it comes back in the output under
        the same name, after ``decoder_input_ids``. ``decoder_attention_mask`` (which PEFT and Seq2SeqTrainer pass) is
        checked, not applied: the decoder is causal, so target padding at the end changes no earlier output; padding
        before a target token would, and is refused.
        """
        cache = pop_cache(kwargs)
        unknown = set(kwargs) - set(TransformersKwargs.__annotations__)
        if unknown:
            raise TypeError(f"{type(self).__name__}.forward() got unexpected arguments: {sorted(unknown)}")
        output_attentions, output_hidden_states = (
            getattr(self.config, name) if kwargs.get(name) is None else kwargs[name]
            for name in ("output_attentions", "output_hidden_states")
        )
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing_active():
            use_cache = False
        if (decoder_input_ids is None) == (decoder_inputs_embeds is None):
            raise ValueError(
                "pass exactly one of decoder_input_ids or decoder_inputs_embeds, or labels (the decoder needs its input tokens)"
            )
        if decoder_attention_mask is not None:
            check_source_mask(decoder_attention_mask, "decoder_attention_mask", allow_empty=True)

        if encoder_outputs is None:
            if input_ids is None and inputs_embeds is None:
                raise ValueError("pass input_ids, inputs_embeds or encoder_outputs")
            encoder_outputs = self.encoder(
                input_ids,
                attention_mask,
                inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif isinstance(encoder_outputs, tuple) and len(encoder_outputs) > 1:
            # from encoder(..., return_dict=False): last_hidden_state first, final_hidden_state last
            encoder_outputs = GRUSeq2SeqEncoderOutput(
                last_hidden_state=encoder_outputs[0], final_hidden_state=encoder_outputs[-1]
            )
        encoder_hidden_states = encoder_outputs[0]
        if attention_mask is None:
            attention_mask = torch.ones(encoder_hidden_states.shape[:2], device=encoder_hidden_states.device)

        if cache is None and use_cache:
            cache = GRUStateCache(self.config)
        if cache is not None and not isinstance(cache, GRUStateCache):
            raise TypeError(
                f"the GRU decoder's cache must be a GRUStateCache (its GRU state per layer), got {type(cache).__name__}"
            )
        if cache is not None and cache.is_initialized:
            hidden, attention_keys = cache.hidden, cache.attention_keys
        else:  # first step: start from the encoder's final states
            if getattr(encoder_outputs, "final_hidden_state", None) is None:
                raise ValueError(
                    "encoder_outputs must come from GRUSeq2SeqEncoder: the decoder starts from its final_hidden_state"
                )
            hidden = self.decoder.initial_hidden(encoder_outputs.final_hidden_state)
            attention_keys = self.decoder.attention.project_keys(encoder_hidden_states)
            if cache is not None:
                cache.initialize(hidden, attention_keys)
        every_step_state = cache is not None and cache.layers[0].record_past
        attentional, cross_attention, step_hidden, decoder_hidden_states = self.decoder(
            decoder_input_ids,
            encoder_hidden_states,
            attention_mask,
            hidden,
            attention_keys,
            every_step_state,
            inputs_embeds=decoder_inputs_embeds,
        )
        if cache is not None:
            cache.update_states(step_hidden, attentional.shape[1])
        return Seq2SeqModelOutput(
            last_hidden_state=attentional,
            decoder_hidden_states=decoder_hidden_states if output_hidden_states else None,
            decoder_attentions=() if output_attentions else None,  # no self-attention layer: zero of them
            cross_attentions=(cross_attention[:, None],) if output_attentions else None,
            encoder_last_hidden_state=encoder_hidden_states,
            encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
            **{CACHE_FIELD: cache if use_cache else None},
        )

    def gradient_checkpointing_active(self) -> bool:
        """As transformers' layers: checkpointing replays the decoder, so it must not also update a cache."""
        return self.decoder.gradient_checkpointing and self.training and torch.is_grad_enabled()


class GRUSeq2SeqForConditionalGeneration(Seq2SeqLMHeadMixin, GRUSeq2SeqPreTrainedModel, GenerationMixin):
    """GRU encoder-decoder with attention and a vocabulary projection, for translation.

    ``labels`` are the target ids (padding as -100); the decoder reads them shifted right behind
    ``decoder_start_token_id`` (teacher forcing) and the loss is token-level cross-entropy. ``generate()`` supports
    greedy search, beam search, sampling, assisted decoding (``assistant_model=``, e.g. a smaller GRU) and
    prompt-lookup decoding (``prompt_lookup_num_tokens=``), incrementally through :class:`GRUStateCache`.
    ``cache_implementation`` is refused: the GRU state is one fixed-size tensor per layer, so there is no key/value
    cache to make static, offloaded or quantized.

    ``.model`` is the :class:`GRUSeq2SeqModel`; each class loads the other's checkpoints, and both load those saved
    before the base model existed (no ``model.`` prefix).
    """

    def __init__(self, config: GRUSeq2SeqConfig):
        super().__init__(config)
        self.model = GRUSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            side = "encoder" if config.share_embeddings else "decoder"
            self._tied_weights_keys = {"lm_head.weight": f"model.{side}.embed_tokens.weight"}
        self.post_init()

    def _prepare_cache_for_generation(self, generation_config, model_kwargs, *args, **kwargs):
        """Give ``generate()`` a :class:`GRUStateCache` where it would build a key/value cache."""
        if generation_config.cache_implementation not in (None, "dynamic"):
            raise ValueError(
                f"cache_implementation={generation_config.cache_implementation!r} is not supported by the GRU decoder: "
                "its state is one fixed-size tensor per layer (GRUStateCache), so there is no key/value cache to make "
                "static, offloaded or quantized; leave cache_implementation unset"
            )
        cache = model_kwargs.get(CACHE_FIELD)
        if cache is None and generation_config.use_cache is not False:
            model_kwargs[CACHE_FIELD] = cache = GRUStateCache(self.config)
        elif cache is not None:
            if not isinstance(cache, GRUStateCache):
                raise TypeError(
                    f"generate(cache=...) needs a GRUStateCache for the GRU decoder, got {type(cache).__name__}"
                )
            cache._is_user_defined = True
        if cache is not None and generation_config.is_assistant:
            cache.activate_past_recording(recurrent_states_to_keep=generation_config.num_assistant_tokens)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: GRUSeq2SeqEncoderOutput | tuple | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqLMOutput:
        """Teacher-forced loss/logits, or one generation step from the decoder state (see ``GRUSeq2SeqModel``)."""
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids,
            attention_mask,
            decoder_input_ids,
            encoder_outputs,
            use_cache,
            inputs_embeds=inputs_embeds,
            decoder_attention_mask=decoder_attention_mask,
            decoder_inputs_embeds=decoder_inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        return seq2seq_lm_output(outputs, self.lm_head(outputs.last_hidden_state), labels)
