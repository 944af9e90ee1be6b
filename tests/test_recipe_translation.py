"""The translation recipe end to end, in a subprocess as a user runs it: tiny models, a few steps, few pairs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import pipeline

import hf_models  # noqa: F401  (registers the translation pipeline's save hooks)

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "train_translation.py"
QUICK = [
    "--model_size", "tiny", "--max_steps", "3", "--per_device_train_batch_size", "8",
    "--max_eval_samples", "6", "--max_test_samples", "6", "--max_target_length", "12", "--test_num_beams", "2",
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--learning_rate", "1e-3",
]


def run_recipe(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(RECIPE), *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def check_output_folder(output_dir: Path, num_test: int) -> dict:
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "pipeline_translation.py", "README.md", "results.json"):
        assert (output_dir / name).exists(), name
    assert list(output_dir.glob("modeling_*.py")), "the model's code travels with the weights"
    assert not list(output_dir.glob("*.bin")), "weights must be safetensors only"
    config = json.loads((output_dir / "config.json").read_text())
    assert "translation" in config["custom_pipelines"]
    results = json.loads((output_dir / "results.json").read_text())
    assert {"BLEU", "chrF", "num_parameters", "training_seconds"} <= results.keys()
    card = ModelCard.load(output_dir / "README.md")
    metrics = card.data.eval_results
    assert {result.metric_name for result in metrics} == {"BLEU", "chrF"}
    assert [result.metric_value for result in metrics] == [round(results["BLEU"], 4), round(results["chrF"], 4)]
    lines = (output_dir / "test_translations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == num_test
    assert {"en", "zh", "prediction"} <= json.loads(lines[0]).keys()
    translator = pipeline("translation", model=str(output_dir), trust_remote_code=True)
    assert isinstance(translator("Hello.", max_new_tokens=3)[0]["translation_text"], str)
    return results


@pytest.mark.parametrize("arch", ["transformer", "gru"])
def test_recipe_on_tatoeba(tmp_path, arch):
    run_recipe("--arch", arch, "--output_dir", str(tmp_path), "--max_train_samples", "64", *QUICK)
    check_output_folder(tmp_path, num_test=6)
    card = (tmp_path / "README.md").read_text()
    assert "CC-BY 2.0" in card and "tatoeba.org" in card  # the licence's required attribution


def test_recipe_on_user_files_trains_its_own_tokenizer(tmp_path):
    pairs = [("good morning", "早上好"), ("thank you", "谢谢"), ("see you tomorrow", "明天见"), ("I am hungry", "我饿了")]
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{en}\t{zh}\n" for en, zh in pairs * 4) + "a line without a tab\n", encoding="utf-8")
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"translation": {"en": en, "zh": zh}}, ensure_ascii=False) + "\n" for en, zh in pairs))
    output_dir = tmp_path / "out"
    result = run_recipe(
        "--arch", "transformer", "--train_file", str(train), "--test_file", str(test), "--vocab_size", "300",
        "--output_dir", str(output_dir), "--config_overrides", "attention_type=performer,num_random_features=16", *QUICK,
    )
    assert "skipped 1" in result.stderr.lower() or "1 malformed" in result.stderr.lower(), result.stderr[-2000:]
    check_output_folder(output_dir, num_test=4)  # decoded with performer attention and its running-sum cache
    card = (output_dir / "README.md").read_text()
    assert "user corpus" in card
    # the limitations are the user corpus's, not Tatoeba's
    assert "Trained on a user corpus of 16 sentence pairs" in card and "30,000" not in card, card
    assert "The zh side was converted to Simplified Chinese with OpenCC" in card
    config = json.loads((output_dir / "config.json").read_text())
    assert config["attention_type"] == "performer" and config["num_random_features"] == 16


def test_unknown_model_size_is_a_clear_error(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--arch", "gru", "--model_size", "huge", "--output_dir", str(tmp_path),
         "--max_train_samples", "8", "--use_cpu"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode != 0
    assert "--model_size 'huge' unknown for gru" in result.stderr


def test_evaluation_keeps_dataset_order_under_group_by_length(tmp_path, tiny_transformer_translator, tiny_translation_tokenizer):
    """Scores compare predictions with references in dataset order, so evaluation must not be length-grouped
    (transformers 5.24 applies --train_sampling_strategy group_by_length to evaluation as well)."""
    import datasets
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainingArguments

    sys.path.insert(0, str(RECIPE.parent))
    from train_translation import InOrderSeq2SeqTrainer

    lengths = [3, 9, 1, 7, 2, 8, 5, 4]
    dataset = datasets.Dataset.from_dict(
        {"input_ids": [[5] * n + [2] for n in lengths], "labels": [[6, 2]] * len(lengths)}
    )
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), per_device_eval_batch_size=2, train_sampling_strategy="group_by_length",
        use_cpu=True, report_to="none",
    )
    collator = DataCollatorForSeq2Seq(tiny_translation_tokenizer, model=tiny_transformer_translator)
    trainer = InOrderSeq2SeqTrainer(
        model=tiny_transformer_translator, args=args, data_collator=collator, processing_class=tiny_translation_tokenizer
    )
    seen = [int(row.sum()) - 1 for batch in trainer.get_eval_dataloader(dataset) for row in batch["attention_mask"]]
    assert seen == lengths
