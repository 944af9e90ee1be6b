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
from train_text_classification import parse_config_overrides  # noqa: E402

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
               "--max_test_samples", "40", "--config_overrides", "classifier_pooling=cls,attention_dropout=0.1", *QUICK)
    class_names = (DEFAULT_DATA_DIR / THUCNEWS["folder"] / THUCNEWS["label_names"]).read_text().split()
    config = check_output_folder(tmp_path, class_names)
    assert config["classifier_pooling"] == "cls" and config["attention_dropout"] == 0.1
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
    tokenizer = json.loads((output_dir / "tokenizer.json").read_text(encoding="utf-8"))
    assert json.loads((output_dir / "config.json").read_text())["vocab_size"] == len(tokenizer["model"]["vocab"]) <= 60
    assert "今" in tokenizer["model"]["vocab"]  # trained on the user's texts, not the THUCNews tokenizer


def test_config_overrides_are_parsed_and_checked():
    assert parse_config_overrides("encoder_layers=0, pre_layer_norm=false,classifier_pooling=cls,dropout=0.3") == {
        "encoder_layers": 0, "pre_layer_norm": False, "classifier_pooling": "cls", "dropout": 0.3,
    }
    assert parse_config_overrides(None) == {}
    with pytest.raises(ValueError, match="hidden_sise"):
        parse_config_overrides("hidden_sise=3")
    with pytest.raises(ValueError, match="'encoder_layers'"):
        parse_config_overrides("encoder_layers")
