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


# ---- 16-bit images through pipeline("image-classification") (issue 16, item 5) ----


def test_a_16_bit_image_reaches_the_processor_unclipped(tmp_path):
    import numpy as np
    import PIL.Image
    from transformers import pipeline
    from vision_testing import tiny_classifier

    from hf_models import ClassificationImageProcessor
    from hf_models.pipeline_image_classification import save_for_image_classification

    model = tiny_classifier("vit", num_channels=1)
    processor = ClassificationImageProcessor(size={"height": 16, "width": 16}, num_channels=1, image_mean=[0.5], image_std=[0.5])
    save_for_image_classification(model, processor, tmp_path / "model")
    ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535
    image16 = PIL.Image.new("I;16", (16, 16))
    image16.frombytes(ramp.astype("<u2").tobytes())
    image16.save(tmp_path / "ramp.png")
    classifier = pipeline("image-classification", model=str(tmp_path / "model"), trust_remote_code=True)
    expected = processor(image16, return_tensors="pt").pixel_values
    for given in (image16, str(tmp_path / "ramp.png")):
        assert torch.equal(classifier.preprocess(given)["pixel_values"], expected)
    clipped = processor(image16.convert("RGB"), return_tensors="pt").pixel_values
    assert not torch.equal(clipped, expected), "the stock path (RGB conversion) would have clipped the image"
    top = classifier(str(tmp_path / "ramp.png"), top_k=1)
    assert top[0]["label"] in model.config.id2label.values()
