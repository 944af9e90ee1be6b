"""recipes/prune.py end to end: a trained ViT and a trained text classifier pruned to half their heads and MLP units,
fine-tuned, evaluated, carded."""

import json
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
sys.path.insert(0, str(RECIPES))
import prune  # noqa: E402
from thucnews_data import DEFAULT_DATA_DIR, THUCNEWS  # noqa: E402
from train_image_classification import main as train  # noqa: E402
from train_text_classification import main as train_text  # noqa: E402

QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
         "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--max_train_samples", "32",
         "--max_test_samples", "16"]  # fmt: skip


def prune_base(tmp_path, head_fraction: str, mlp_fraction: str, recipe_argv: list[str]) -> dict:
    """``recipes/prune.py`` on ``tmp_path/base`` into ``tmp_path/pruned``: 2 calibration batches of 8 examples."""
    return prune.main([
        "--model_name_or_path", str(tmp_path / "base"), "--output_dir", str(tmp_path / "pruned"),
        "--head_fraction", head_fraction, "--mlp_fraction", mlp_fraction, "--calibration_batches", "2",
        "--calibration_batch_size", "8", "--", *recipe_argv,
    ])  # fmt: skip


@pytest.mark.slow
def test_prune_recipe_prunes_fine_tunes_and_states_it_in_the_card(tmp_path):
    train(["--arch", "vit", "--model_size", "small", "--output_dir", str(tmp_path / "base"), *QUICK])
    results = prune_base(tmp_path, "0.5", "0.5", QUICK)
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "pruned")
    assert model.config.num_attention_heads_per_layer == [2, 2, 2]  # small: 3 layers of 4 heads
    assert model.config.intermediate_size_per_layer == [64, 64, 64]  # of 128
    assert "test_accuracy" in results and results["pruning"]["parameters_after"] < results["pruning"]["parameters_before"]
    card = (tmp_path / "pruned" / "README.md").read_text()
    assert "## Pruning" in card and "50% of every attention layer's heads" in card and "16 training examples" in card
    assert json.loads((tmp_path / "pruned" / "results.json").read_text())["pruning"]["sizes"]


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_DATA_DIR / THUCNEWS["folder"]).is_dir(), reason="THUCNews not in the data folder")
def test_prune_recipe_prunes_a_text_classifier_and_fine_tunes_it_with_its_own_tokenizer(tmp_path):
    text_quick = [*QUICK, "--max_seq_length", "24", "--max_eval_samples", "16"]
    train_text(["--model_size", "small", "--output_dir", str(tmp_path / "base"), *text_quick])
    results = prune_base(tmp_path, "0.5", "0.25", text_quick)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned")
    assert model.config.encoder_attention_heads_per_layer == [2, 2]  # small: 2 layers of 4 heads
    assert model.config.encoder_intermediate_size_per_layer == [384, 384]  # of 512
    assert model.config.max_position_embeddings == 24 and "test_accuracy" in results
    card = (tmp_path / "pruned" / "README.md").read_text()
    assert "## Pruning" in card and "16 training examples" in card and "Text classification" in card


def test_prune_recipe_refuses_a_fraction_outside_the_unit_interval(tmp_path):
    with pytest.raises(ValueError, match=r"head_fraction must be in \[0, 1\)"):
        prune.main(["--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--head_fraction", "1"])
