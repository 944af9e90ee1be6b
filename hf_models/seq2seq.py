"""Pieces every encoder-decoder model of the package shares: label shifting, the loss, the LM head's accessors, and
the cache name.

transformers 5.24 renamed the generation cache argument and output field from ``past_key_values`` to ``cache``;
5.23 still uses the old name. Models read either name and write the one the installed version expects, so the
same code (also when it travels to the Hub as remote code) runs on both.
"""

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import Seq2SeqLMOutput, Seq2SeqModelOutput

CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


def pop_cache(kwargs: dict):
    """Take the generation cache out of ``kwargs`` whichever name the caller used."""
    cache = kwargs.pop("cache", None)
    legacy = kwargs.pop("past_key_values", None)
    return cache if cache is not None else legacy


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing: the decoder sees ``<start> y_1 ... y_{n-1}`` and predicts ``y_1 ... y_n``.

    Label positions set to -100 (ignored by the loss) become padding in the decoder input.
    """
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id must be set to build decoder inputs from labels")
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to build decoder inputs from labels")
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class Seq2SeqLMHeadMixin:
    """Accessors of a ``*ForConditionalGeneration`` that holds its base model as ``self.model`` (with ``.encoder`` and
    ``.decoder``) and its vocabulary projection as ``self.lm_head``, as transformers' BART and Marian do. Listed before
    the ``PreTrainedModel`` base, so these replace its best-effort lookups."""

    def get_encoder(self):
        return self.model.encoder

    def get_decoder(self):
        return self.model.decoder

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)


def seq2seq_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-level cross-entropy over non-ignored (-100) label positions, computed in fp32.

    Labels are already aligned with the logits (the decoder input was shifted, not the labels), which is why
    ``PreTrainedModel.loss_function`` (it shifts again) is not used here. Label smoothing is the trainer's job
    (``--label_smoothing_factor``).
    """
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)


def seq2seq_lm_output(outputs: Seq2SeqModelOutput, logits: torch.Tensor, labels: torch.Tensor | None) -> Seq2SeqLMOutput:
    """A ``*ForConditionalGeneration`` head's output: its ``logits``, the loss when ``labels`` are given, and every
    other field of its base model's ``outputs`` (hidden states, attentions, the generation cache) passed through."""
    return Seq2SeqLMOutput(
        loss=seq2seq_lm_loss(logits, labels) if labels is not None else None,
        logits=logits,
        decoder_hidden_states=outputs.decoder_hidden_states,
        decoder_attentions=outputs.decoder_attentions,
        cross_attentions=outputs.cross_attentions,
        encoder_last_hidden_state=outputs.encoder_last_hidden_state,
        encoder_hidden_states=outputs.encoder_hidden_states,
        encoder_attentions=outputs.encoder_attentions,
        **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
    )
