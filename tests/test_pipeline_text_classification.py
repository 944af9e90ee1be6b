"""The text-classification pipeline of a saved Transformer classifier: in a fresh process without hf_models
(class names from THUCNews' class.txt, top_k=None, empty / emoji / 5,000-character input), and in-process."""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from hf_models import TransformerConfig, TransformerForSequenceClassification, save_for_text_classification
from hf_models.pipeline_text_classification import TruncatingTextClassificationPipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from thucnews_data import DEFAULT_DATA_DIR, THUCNEWS, read_label_names  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("torch_single_thread_module"),
    pytest.mark.skipif(not (DEFAULT_DATA_DIR / THUCNEWS["folder"]).is_dir(), reason="THUCNews not in the data folder"),
]

TOKENIZER = Path(__file__).resolve().parents[1] / "tokenizer_data" / "thucnews"
MAX_LENGTH = 24
# (headline, class id) pairs from dev.txt that the tiny model learns by heart, so the labels it returns mean something.
HEADLINES = [("同步A股首秀：港股缩量回调", 2), ("60年铁树开花形状似玉米芯(组图)", 5), ("体验2D巅峰 倚天屠龙记十大创新概览", 8)]
LONG_TEXT = "港股" * 2500  # 5,000 characters

REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys

    sys.modules["hf_models"] = None
    try:
        import hf_models
    except ImportError:
        pass
    else:
        raise SystemExit("hf_models is importable: this run would not show that the folder is self-contained")

    import json

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder, texts, long_text, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    classifier = pipeline("text-classification", model=folder, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    batch = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    results = {
        "modules": [type(classifier).__module__, type(model).__module__],
        "batch": classifier(texts, batch_size=len(texts)),
        "all_scores": classifier(texts[0], top_k=None),
        "edge_cases": classifier(["", "\\N{GRINNING FACE}", long_text]),
        "logits": logits.tolist(),
    }
    with open(output, "w") as out:
        json.dump(results, out, ensure_ascii=False)
    """
)


@pytest.fixture(scope="module")
def class_names() -> list[str]:
    return read_label_names(DEFAULT_DATA_DIR / THUCNEWS["folder"] / THUCNEWS["label_names"])


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer


@pytest.fixture(scope="module")
def classifier_model(tokenizer, class_names) -> TransformerForSequenceClassification:
    """A 1-layer classifier (hidden 16) trained until it labels the three headlines correctly."""
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        encoder_layers=1,
        decoder_layers=0,
        is_encoder_decoder=False,
        max_position_embeddings=MAX_LENGTH,
        dropout=0.0,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: index for index, name in enumerate(class_names)},
    )
    model = TransformerForSequenceClassification(config)
    batch = tokenizer([text for text, _ in HEADLINES], padding=True, return_tensors="pt")
    labels = torch.tensor([label for _, label in HEADLINES])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory, classifier_model, tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("tiny_text_classifier")
    save_for_text_classification(classifier_model, tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def remote(saved_dir, tmp_path_factory) -> tuple[dict, str]:
    """What a fresh process that cannot import hf_models got, and its stderr (where the warnings go)."""
    work_dir = tmp_path_factory.mktemp("remote_run")
    output = work_dir / "results.json"
    env = {**os.environ, "HF_MODULES_CACHE": str(work_dir / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    texts = json.dumps([text for text, _ in HEADLINES], ensure_ascii=False)
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(saved_dir), texts, LONG_TEXT, str(output)],
        cwd=work_dir, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(output.read_text()), run.stderr


def test_saved_folder_holds_weights_tokenizer_and_code(saved_dir):
    names = {path.name for path in saved_dir.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "pipeline_text_classification.py", "modeling_transformer.py"} <= names
    config = json.loads((saved_dir / "config.json").read_text())
    assert config["custom_pipelines"]["text-classification"]["impl"] == (
        "pipeline_text_classification.TruncatingTextClassificationPipeline"
    )
    assert json.loads((saved_dir / "tokenizer_config.json").read_text())["model_max_length"] == MAX_LENGTH


def test_remote_pipeline_and_model_come_from_the_folder_code(remote):
    results, _ = remote
    pipeline_module, model_module = results["modules"]
    assert pipeline_module.startswith("transformers_modules.") and pipeline_module.endswith(".pipeline_text_classification")
    assert model_module.startswith("transformers_modules.") and model_module.endswith(".modeling_transformer")


def test_remote_pipeline_returns_class_names_from_class_txt(remote, class_names, classifier_model, tokenizer):
    results, _ = remote
    assert [result["label"] for result in results["batch"]] == [class_names[label] for _, label in HEADLINES]
    batch = tokenizer([text for text, _ in HEADLINES], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = classifier_model(**batch).logits
    torch.testing.assert_close(torch.tensor(results["logits"]), expected, rtol=0, atol=1e-5)
    expected_scores = expected.softmax(-1).max(-1).values.tolist()
    assert [result["score"] for result in results["batch"]] == pytest.approx(expected_scores, abs=1e-5)


def test_remote_top_k_none_gives_every_class(remote, class_names):
    scores = remote[0]["all_scores"]
    assert sorted(score["label"] for score in scores) == sorted(class_names) and len(scores) == 10
    assert sum(score["score"] for score in scores) == pytest.approx(1.0, abs=1e-5)
    assert scores[0]["label"] == class_names[HEADLINES[0][1]]  # sorted by score


def test_remote_empty_emoji_and_long_text_are_classified_and_truncation_is_announced(remote, class_names):
    results, stderr = remote
    assert [result["label"] in class_names for result in results["edge_cases"]] == [True, True, True]
    assert "Input of 2502 tokens is longer than the model accepts: truncated to 24 tokens" in stderr  # 港股 is one token


@pytest.fixture(scope="module")
def classifier(saved_dir) -> TruncatingTextClassificationPipeline:
    """The in-process way: the installed class, so no remote code is needed."""
    return pipeline("text-classification", model=str(saved_dir), pipeline_class=TruncatingTextClassificationPipeline)


def test_in_process_long_text_warns_and_keeps_the_first_tokens(classifier, tokenizer, classifier_model, caplog):
    text = "足球" + LONG_TEXT
    with caplog.at_level(logging.WARNING, logger="hf_models.pipeline_text_classification"):
        result = classifier(text, top_k=None)
    assert "Input of 2503 tokens is longer than the model accepts: truncated to 24 tokens" in caplog.text
    kept = tokenizer(text, truncation=True, return_tensors="pt")  # model_max_length 24: [CLS] 足球 港股 x 21 [SEP]
    assert kept["input_ids"].shape == (1, MAX_LENGTH)
    with torch.no_grad():
        expected = classifier_model(**kept).logits.softmax(-1)[0]
    scores = {item["label"]: item["score"] for item in result}
    assert [scores[classifier_model.config.id2label[i]] for i in range(10)] == pytest.approx(expected.tolist(), abs=1e-6)


def test_explicit_truncation_is_the_stock_behaviour_without_a_warning(classifier, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_models.pipeline_text_classification"):
        [result] = classifier(LONG_TEXT, truncation=True)
    assert not caplog.text and result["label"]


def test_batch_equals_one_at_a_time(classifier):
    texts = [text for text, _ in HEADLINES] + ["", "😀"]
    batched, single = classifier(texts, batch_size=5), [classifier(text)[0] for text in texts]
    assert [result["label"] for result in batched] == [result["label"] for result in single]
    # padding in the batch reorders float sums: equal up to rounding, not bit for bit
    assert [result["score"] for result in batched] == pytest.approx([result["score"] for result in single], abs=1e-5)


def test_without_pipeline_class_transformers_asks_for_trust_remote_code(saved_dir):
    # Documents transformers 5.24: a folder whose config names a custom pipeline needs trust_remote_code=True or
    # pipeline_class=..., even for a task transformers knows and with hf_models imported.
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline("text-classification", model=str(saved_dir))
