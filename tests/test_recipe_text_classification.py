"""The text-classification recipe end to end, in a subprocess as a user runs it: a tiny model, a few steps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
sys.path.insert(0, str(RECIPES))  # recipes/ is a script folder, not a package

from thucnews_data import DEFAULT_DATA_DIR, THUCNEWS  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

import hf_models  # noqa: E402
from recipe_utils import ExampleRandomness, parse_config_overrides  # noqa: E402
from train_text_classification import DEFAULT_TOKENIZER, piece_splitting  # noqa: E402

QUICK = [
    "--model_size", "tiny", "--max_steps", "4", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
    "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
    "--load_best_model_at_end", "--metric_for_best_model", "accuracy", "--report_to", "none", "--use_cpu",
    "--learning_rate", "1e-3",
]


def run_recipe(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(RECIPES / "train_text_classification.py"), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def check_output_folder(output_dir: Path, class_names: list[str]) -> dict:
    names = {path.name for path in output_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "pipeline_text_classification.py",
            "modeling_transformer.py", "README.md", "results.json", "confusion_matrix.png"} <= names
    config = json.loads((output_dir / "config.json").read_text())
    assert [config["id2label"][str(index)] for index in range(len(class_names))] == class_names
    assert "text-classification" in config["custom_pipelines"]
    results = json.loads((output_dir / "results.json").read_text())
    card = ModelCard.load(output_dir / "README.md")
    assert {(result.metric_name, result.metric_value) for result in card.data.eval_results} == {
        ("accuracy (%)", round(results["accuracy (%)"], 4)),
        ("macro-F1 (%)", round(results["macro-F1 (%)"], 4)),
    }
    assert 0 <= results["accuracy (%)"] <= 100 and results["num_parameters"] > 0
    with Image.open(output_dir / "confusion_matrix.png") as image:
        assert image.format == "PNG" and min(image.size) > 200
    return config


@pytest.mark.skipif(not (DEFAULT_DATA_DIR / THUCNEWS["folder"]).is_dir(), reason="THUCNews not in the data folder")
def test_recipe_on_thucnews(tmp_path):
    run_recipe("--output_dir", str(tmp_path), "--max_train_samples", "64", "--max_eval_samples", "32",
               "--max_test_samples", "40", "--config_overrides", "classifier_pooling=cls,attention_dropout=0.1,word_dropout=0.1",
               "--piece_split_probability", "0.3", *QUICK)
    class_names = (DEFAULT_DATA_DIR / THUCNEWS["folder"] / THUCNEWS["label_names"]).read_text().split()
    config = check_output_folder(tmp_path, class_names)
    assert config["classifier_pooling"] == "cls" and config["attention_dropout"] == 0.1 and config["word_dropout"] == 0.1
    card = (tmp_path / "README.md").read_text()
    assert "THUCNews" in card and "train_first33590.txt" in card


def test_recipe_on_user_files_trains_its_own_tokenizer(tmp_path):
    rows = [("今天股市大涨", "finance"), ("球队赢得冠军", "sports"), ("基金净值上涨", "finance"), ("球星转会", "sports")] * 4
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{text}\t{label}\n" for text, label in rows) + "no tab here\n", encoding="utf-8")
    test = tmp_path / "test.csv"
    test.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows[:4]), encoding="utf-8")
    output_dir = tmp_path / "model"
    run_recipe("--train_file", str(train), "--validation_file", str(test), "--test_file", str(test),
               "--class_names", "finance,sports", "--vocab_size", "60", "--output_dir", str(output_dir), *QUICK)
    check_output_folder(output_dir, ["finance", "sports"])
    assert "0 = 'finance', 1 = 'sports'; a label is the class name, or the class id" in (output_dir / "README.md").read_text()
    tokenizer = json.loads((output_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert json.loads((output_dir / "config.json").read_text())["vocab_size"] == len(tokenizer["model"]["vocab"]) <= 60
    assert "今" in tokenizer["model"]["vocab"]  # trained on the user's texts, not the THUCNews tokenizer


def test_config_overrides_are_parsed_and_checked():
    transformer = hf_models.TransformerConfig
    assert parse_config_overrides("encoder_layers=0, pre_layer_norm=false,classifier_pooling=cls,dropout=0.3", transformer) == {
        "encoder_layers": 0, "pre_layer_norm": False, "classifier_pooling": "cls", "dropout": 0.3,
    }
    assert parse_config_overrides(None, transformer) == {}
    assert parse_config_overrides("attention_type=performer,num_random_features=64,performer_redraw_interval=100", transformer) == {
        "attention_type": "performer", "num_random_features": 64, "performer_redraw_interval": 100,
    }
    with pytest.raises(ValueError, match="hidden_sise"):
        parse_config_overrides("hidden_sise=3", transformer)
    with pytest.raises(ValueError, match="'encoder_layers'"):
        parse_config_overrides("encoder_layers", transformer)
    # vision configs: fields of the family's own class and of the shared parent both count
    vit = hf_models.VisionTransformerConfig
    assert parse_config_overrides("attention_dropout=0.1,drop_path_rate=0.2", vit) == {"attention_dropout": 0.1, "drop_path_rate": 0.2}
    with pytest.raises(ValueError, match="VisionTransformerConfig"):
        parse_config_overrides("num_blocks=4", vit)  # an AFNO field


def test_piece_splitting_replaces_pieces_by_their_characters_reproducibly():
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_TOKENIZER)
    encoded = tokenizer(["中华女子学院：本科层次仅1专业招男生", "iPhone发布"])
    batch = {**encoded, "labels": [3, 4]}
    pieces = [tokenizer.convert_ids_to_tokens(ids) for ids in encoded["input_ids"]]

    def segmentations(probability, seed=0, max_length=64, repeats=20):
        randomness = ExampleRandomness(seed)
        transform = piece_splitting(tokenizer, probability, max_length, randomness)
        outputs = []
        for epoch in range(repeats):
            randomness.epoch = epoch
            outputs.append(transform(batch))
        return outputs

    assert all(out["input_ids"] == encoded["input_ids"] for out in segmentations(0.0))
    for out in segmentations(1.0):  # every piece split: characters only, same text, masks and labels follow
        tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in out["input_ids"]]
        assert all(len(token) == 1 for row in tokens for token in row[1:-1])
        assert ["".join(row[1:-1]) for row in tokens] == ["".join(row[1:-1]) for row in pieces]
        assert [len(mask) for mask in out["attention_mask"]] == [len(ids) for ids in out["input_ids"]] and out["labels"] == [3, 4]
    mixed = segmentations(0.5)
    assert len({tuple(out["input_ids"][0]) for out in mixed}) > 2  # a new segmentation each epoch
    assert mixed == segmentations(0.5)  # the same seed gives the same sequence
    [capped] = segmentations(1.0, max_length=16, repeats=1)  # 21 characters would not fit: the first text stays whole
    assert capped["input_ids"][0] == encoded["input_ids"][0] and len(capped["input_ids"][1]) == 10
