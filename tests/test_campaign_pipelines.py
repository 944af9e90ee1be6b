"""Bad-input campaign, pipeline kind: calls a user makes on a loaded pipeline (issue 16, items 5 and 8)."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from hf_models import TransformerConfig, TransformerForSequenceClassification
from hf_models.pipeline_text_classification import TruncatingTextClassificationPipeline


@pytest.fixture(scope="module")
def text_classifier():
    vocab = {"[PAD]": 0, "[UNK]": 1, "good": 2, "bad": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", model_max_length=8)
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=4, hidden_size=8, num_attention_heads=2, intermediate_size=16, encoder_layers=1, decoder_layers=0,
        is_encoder_decoder=False, max_position_embeddings=8, num_labels=2, pad_token_id=0,
    )
    return TruncatingTextClassificationPipeline(model=TransformerForSequenceClassification(config).eval(), tokenizer=tokenizer)


@pytest.mark.parametrize("empty", [[], ()], ids=["list", "tuple"])
def test_an_empty_batch_is_a_clear_error(text_classifier, empty):
    with pytest.raises(ValueError, match="got an empty list: give a text or a non-empty list of texts"):
        text_classifier(empty)


def test_texts_still_classify(text_classifier):
    assert len(text_classifier(["good", "bad"])) == 2 and "label" in text_classifier("good")[0]
