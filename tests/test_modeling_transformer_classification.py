"""TransformerForSequenceClassification: pooling, padding invariance, the zero-layer baseline, losses, save/load."""

import math

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from hf_models import TransformerConfig, TransformerForSequenceClassification

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

TINY = dict(
    vocab_size=50,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=64,
    encoder_layers=2,
    decoder_layers=0,
    max_position_embeddings=24,
    num_labels=3,
)
LENGTHS = (9, 5, 2)


def tiny_classifier(**overrides) -> TransformerForSequenceClassification:
    torch.manual_seed(0)
    config = TransformerConfig(**{**TINY, "dropout": 0.0, **overrides})
    return TransformerForSequenceClassification(config).eval()


def padded_batch(pad_to: int = 9, pad_value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three texts of LENGTHS tokens (ids 4..49), right-padded to ``pad_to`` with ``pad_value``."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.full((len(LENGTHS), pad_to), pad_value)
    attention_mask = torch.zeros_like(input_ids)
    for row, length in enumerate(LENGTHS):
        input_ids[row, :length] = torch.randint(4, 50, (length,), generator=generator)
        attention_mask[row, :length] = 1
    return input_ids, attention_mask


def logits(model, input_ids, attention_mask=None) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_padding_changes_nothing(pooling):
    """More padding, and garbage token ids under the mask, leave every text's logits unchanged."""
    model = tiny_classifier(classifier_pooling=pooling)
    input_ids, attention_mask = padded_batch()
    reference = logits(model, input_ids, attention_mask)
    longer_ids, longer_mask = padded_batch(pad_to=15, pad_value=7)
    torch.testing.assert_close(logits(model, longer_ids, longer_mask), reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_batch_equals_one_text_at_a_time(pooling):
    model = tiny_classifier(classifier_pooling=pooling)
    input_ids, attention_mask = padded_batch()
    batched = logits(model, input_ids, attention_mask)
    for row, length in enumerate(LENGTHS):
        alone = logits(model, input_ids[row : row + 1, :length])  # no mask: every token is real
        torch.testing.assert_close(batched[row : row + 1], alone, rtol=0, atol=1e-5)


def test_mean_and_cls_pooling_read_the_encoder_states():
    input_ids, attention_mask = padded_batch()
    mean_model = tiny_classifier(classifier_pooling="mean")
    cls_model = tiny_classifier(classifier_pooling="cls")  # same seed: same weights
    with torch.no_grad():
        states = mean_model.encoder(input_ids, attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()
        expected_mean = mean_model.classifier((states * mask).sum(1) / mask.sum(1))
        expected_cls = mean_model.classifier(states[:, 0])
    torch.testing.assert_close(logits(mean_model, input_ids, attention_mask), expected_mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits(cls_model, input_ids, attention_mask), expected_cls, rtol=0, atol=1e-5)
    assert not torch.allclose(expected_mean, expected_cls)


def reference_sinusoids(length: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), written out as in the paper."""
    table = torch.zeros(length, dim, dtype=torch.float64)
    for pos in range(length):
        for i in range(0, dim, 2):
            table[pos, i] = math.sin(pos / 10000 ** (i / dim))
            table[pos, i + 1] = math.cos(pos / 10000 ** (i / dim))
    return table.float()


class BagOfEmbeddingsBaseline(nn.Module):
    """The source material's classifier: embedding, positional encoding, mean over the positions, linear layer."""

    def __init__(self, vocab_size: int, dim: int, num_labels: int, scale: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.linear = nn.Linear(dim, num_labels)
        self.scale = scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(input_ids) * self.scale + reference_sinusoids(input_ids.size(1), self.embedding.embedding_dim)
        return self.linear(embedded.mean(dim=1))


@pytest.mark.parametrize("scale_embedding", [True, False])
def test_zero_layers_is_exactly_the_bag_of_embeddings_baseline(scale_embedding):
    model = tiny_classifier(encoder_layers=0, scale_embedding=scale_embedding)
    dim = TINY["hidden_size"]
    # Nothing but the embedding matrix and the linear layer.
    assert model.num_parameters() == TINY["vocab_size"] * dim + dim * TINY["num_labels"] + TINY["num_labels"]
    baseline = BagOfEmbeddingsBaseline(TINY["vocab_size"], dim, TINY["num_labels"], math.sqrt(dim) if scale_embedding else 1.0)
    with torch.no_grad():
        baseline.embedding.weight.copy_(model.encoder.embeddings.embed_tokens.weight)
        baseline.linear.load_state_dict(model.classifier.state_dict())
    input_ids, attention_mask = padded_batch()
    ours = logits(model, input_ids, attention_mask)
    for row, length in enumerate(LENGTHS):  # the baseline knows no padding: feed each text unpadded
        with torch.no_grad():
            expected = baseline(input_ids[row : row + 1, :length])
        torch.testing.assert_close(ours[row : row + 1], expected, rtol=0, atol=1e-5)


def test_single_label_loss_is_cross_entropy():
    model = tiny_classifier()
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0, 2, 1])
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(output.loss, nn.functional.cross_entropy(output.logits, labels))
    assert model.config.problem_type == "single_label_classification"


def test_multi_label_loss_is_binary_cross_entropy():
    model = tiny_classifier(problem_type="multi_label_classification")
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(output.loss, nn.functional.binary_cross_entropy_with_logits(output.logits, labels))


def test_regression_has_one_output_and_mean_squared_error():
    model = tiny_classifier(num_labels=1)
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0.5, -1.0, 2.0])
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert output.logits.shape == (3, 1)
    torch.testing.assert_close(output.loss, nn.functional.mse_loss(output.logits.squeeze(-1), labels))
    assert model.config.problem_type == "regression"


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_overfits_a_small_batch(pooling):
    model = tiny_classifier(classifier_pooling=pooling, classifier_dropout=0.1).train()
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([2, 0, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert torch.equal(logits(model.eval(), input_ids, attention_mask).argmax(-1), labels)


def test_save_and_auto_load_give_identical_logits(tmp_path):
    model = tiny_classifier(id2label={0: "财经", 1: "体育", 2: "游戏"}, label2id={"财经": 0, "体育": 1, "游戏": 2})
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_transformer.py").is_file()  # the code travels with the weights
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is TransformerForSequenceClassification
    assert loaded.config.id2label == {0: "财经", 1: "体育", 2: "游戏"} and loaded.config.label2id["体育"] == 1
    assert AutoConfig.from_pretrained(tmp_path).auto_map["AutoModelForSequenceClassification"].endswith(
        "TransformerForSequenceClassification"
    )
    input_ids, attention_mask = padded_batch()
    torch.testing.assert_close(logits(loaded, input_ids, attention_mask), logits(model, input_ids, attention_mask), rtol=0, atol=0)


def test_hidden_states_and_attentions_are_returned():
    model = tiny_classifier(attn_implementation="eager")
    input_ids, attention_mask = padded_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True)
    assert len(output.hidden_states) == TINY["encoder_layers"] + 1 and len(output.attentions) == TINY["encoder_layers"]
    assert output.attentions[0].shape == (3, TINY["num_attention_heads"], 9, 9)


def test_word_dropout_hides_random_tokens_only_while_training():
    model = tiny_classifier(word_dropout=0.5)
    input_ids, attention_mask = padded_batch()
    reference = tiny_classifier()  # same seed, same weights, no word dropout
    torch.testing.assert_close(logits(model, input_ids, attention_mask), logits(reference, input_ids, attention_mask))

    seen_masks = []
    model.encoder.register_forward_hook(lambda module, args, output: seen_masks.append(args[1].clone()))
    model.train()
    torch.manual_seed(3)
    first = model(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.manual_seed(3)
    again = model(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(first, again)  # reproducible under the seed
    mask = seen_masks[0]
    assert bool((mask <= attention_mask).all())  # padding stays hidden
    assert bool(mask[:, 0].all())  # the first token ([CLS]) is always kept
    dropped = int((attention_mask - mask).sum())
    assert 0 < dropped < int(attention_mask[:, 1:].sum())
    model(input_ids=input_ids)  # no attention mask given: one is made, then thinned
    assert seen_masks[-1].shape == input_ids.shape and not bool(seen_masks[-1].all())


@pytest.mark.parametrize(
    "field, value",
    [("classifier_pooling", "max"), ("classifier_dropout", 1.0), ("classifier_dropout", -0.1), ("word_dropout", 1.5)],
)
def test_invalid_classifier_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{**TINY, field: value})
