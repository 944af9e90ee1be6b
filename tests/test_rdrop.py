"""R-Drop (recipes/recipe_utils.RDropTrainer): the loss it trains on, checked against the formula of Liang et al. 2021."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainingArguments

from hf_models import TransformerConfig, TransformerForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))  # recipes/ is a script folder
from recipe_utils import RDropTrainer  # noqa: E402

SMOOTHING = 0.1


def trainer(tmp_path, rdrop_alpha: float, dropout: float) -> RDropTrainer:
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=40, hidden_size=16, num_attention_heads=2, intermediate_size=32, encoder_layers=1, decoder_layers=0,
        max_position_embeddings=16, num_labels=3, dropout=dropout, word_dropout=dropout,
    )
    args = TrainingArguments(str(tmp_path), use_cpu=True, report_to="none", label_smoothing_factor=SMOOTHING)
    return RDropTrainer(model=TransformerForSequenceClassification(config), args=args, rdrop_alpha=rdrop_alpha)


def batch() -> dict:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, 40, (4, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2:, 5:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.tensor([0, 2, 1, 2])}


def test_loss_is_two_cross_entropies_plus_alpha_times_symmetric_kl(tmp_path):
    rdrop = trainer(tmp_path, rdrop_alpha=2.0, dropout=0.3)
    model = rdrop.model.train()
    inputs = batch()
    torch.manual_seed(5)
    loss = rdrop.compute_loss(model, dict(inputs))

    torch.manual_seed(5)  # the same random masks: one forward pass of the doubled batch
    doubled = {name: torch.cat([inputs[name]] * 2) for name in ("input_ids", "attention_mask")}
    first, second = model(**doubled).logits.chunk(2)
    labels = inputs["labels"]
    cross_entropy = (F.cross_entropy(first, labels, label_smoothing=SMOOTHING) + F.cross_entropy(second, labels, label_smoothing=SMOOTHING)) / 2
    p, q = first.softmax(-1), second.softmax(-1)
    symmetric_kl = ((p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)).mean() / 2
    assert symmetric_kl > 1e-4  # dropout made the two passes differ
    torch.testing.assert_close(loss, cross_entropy + 2.0 * symmetric_kl)
    loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0


def test_without_dropout_it_is_the_plain_label_smoothed_loss(tmp_path):
    """No dropout: both passes agree, the KL term vanishes, and the loss is the Trainer's own (label smoother)."""
    rdrop, plain = trainer(tmp_path, rdrop_alpha=1.0, dropout=0.0), trainer(tmp_path, rdrop_alpha=0.0, dropout=0.0)
    rdrop.model.train(), plain.model.train()
    torch.testing.assert_close(rdrop.compute_loss(rdrop.model, batch()), plain.compute_loss(plain.model, batch()))


def test_evaluation_is_a_single_plain_pass(tmp_path):
    rdrop = trainer(tmp_path, rdrop_alpha=1.0, dropout=0.3)
    rdrop.model.eval()
    loss, outputs = rdrop.compute_loss(rdrop.model, batch(), return_outputs=True)
    assert outputs.logits.shape == (4, 3)  # not the doubled batch


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="rdrop_alpha"):
        trainer(tmp_path, rdrop_alpha=-1.0, dropout=0.1)
    rdrop = trainer(tmp_path, rdrop_alpha=1.0, dropout=0.1)
    rdrop.model.train()
    with pytest.raises(ValueError, match="single-label"):
        rdrop.compute_loss(rdrop.model, {**batch(), "labels": torch.rand(4, 3)})
