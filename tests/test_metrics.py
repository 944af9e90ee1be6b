"""Offline evaluate metrics (hf_models/metrics) against sacreBLEU and hand-computed values."""

import evaluate
import pytest
import sacrebleu
from sacrebleu.metrics import CHRF

from hf_models.metrics import load_metric

PREDICTIONS = ["我有三个苹果。", "今天天气很好。", "他不知道该说什么。"]
REFERENCES = ["我有3个苹果。", "今天天气不错。", "汤姆不知道该说什么。"]
SECOND_REFERENCES = ["我有三个苹果。", "今天的天气很好。", "他不晓得说什么。"]


@pytest.fixture(scope="module")
def bleu():
    return load_metric("bleu")


@pytest.fixture(scope="module")
def chrf():
    return load_metric("chrf")


def test_bleu_matches_sacrebleu_on_chinese(bleu):
    result = bleu.compute(predictions=PREDICTIONS, references=REFERENCES, tokenize="zh")
    expected = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES], tokenize="zh")
    assert 0 < result["score"] < 100
    assert result["score"] == pytest.approx(expected.score)
    assert (result["counts"], result["totals"], result["bp"]) == (expected.counts, expected.totals, expected.bp)
    assert (result["sys_len"], result["ref_len"]) == (expected.sys_len, expected.ref_len)
    # Without the zh tokenizer an unsegmented Chinese sentence is one "word": the score differs.
    assert bleu.compute(predictions=PREDICTIONS, references=REFERENCES)["score"] != pytest.approx(result["score"])


def test_bleu_identical_text_is_100_and_multi_reference(bleu):
    assert bleu.compute(predictions=REFERENCES, references=REFERENCES, tokenize="zh")["score"] == pytest.approx(100)
    references = [[first, second] for first, second in zip(REFERENCES, SECOND_REFERENCES)]
    result = bleu.compute(predictions=PREDICTIONS, references=references, tokenize="zh")
    expected = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES, SECOND_REFERENCES], tokenize="zh")
    assert result["score"] == pytest.approx(expected.score)
    with pytest.raises(ValueError, match="same number of references"):
        bleu.compute(predictions=PREDICTIONS[:2], references=[[REFERENCES[0]], REFERENCES[:2]], tokenize="zh")


def test_bleu_default_13a_and_config_name(bleu):
    english_predictions, english_references = ["The cat sat on the mat."], ["The cat is on the mat."]
    result = bleu.compute(predictions=english_predictions, references=english_references)
    assert result["score"] == pytest.approx(sacrebleu.corpus_bleu(english_predictions, [english_references]).score)
    chinese = load_metric("bleu", config_name="zh").compute(predictions=PREDICTIONS, references=REFERENCES)
    assert chinese["score"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES], tokenize="zh").score)
    with pytest.raises(ValueError, match="unknown sacreBLEU tokenizer 'nope'"):
        bleu.compute(predictions=PREDICTIONS, references=REFERENCES, tokenize="nope")


def test_chrf_matches_sacrebleu(chrf):
    result = chrf.compute(predictions=PREDICTIONS, references=REFERENCES)
    assert 0 < result["score"] < 100
    assert result["score"] == pytest.approx(CHRF().corpus_score(PREDICTIONS, [REFERENCES]).score)
    chrf_plus_plus = chrf.compute(predictions=PREDICTIONS, references=REFERENCES, word_order=2)
    assert chrf_plus_plus["score"] == pytest.approx(CHRF(word_order=2).corpus_score(PREDICTIONS, [REFERENCES]).score)
    assert chrf.compute(predictions=REFERENCES, references=REFERENCES)["score"] == pytest.approx(100)


def test_accuracy_and_macro_f1():
    predictions, references = [0, 1, 2, 2, 1, 0], [0, 1, 1, 2, 1, 2]
    assert load_metric("accuracy").compute(predictions=predictions, references=references) == {"accuracy": 4 / 6}
    # Per class F1 = 2TP / (predicted + actual): class 0: 2/(2+1), class 1: 4/(2+3), class 2: 2/(2+2).
    f1 = load_metric("f1").compute(predictions=predictions, references=references)["f1"]
    assert f1 == pytest.approx((2 / 3 + 4 / 5 + 1 / 2) / 3)
    metrics = pytest.importorskip("sklearn.metrics")
    assert f1 == pytest.approx(metrics.f1_score(references, predictions, average="macro"))


def test_combine(chrf):
    combined = evaluate.combine([load_metric("bleu", config_name="zh"), chrf])
    result = combined.compute(predictions=PREDICTIONS, references=REFERENCES)
    assert result["bleu_score"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES], tokenize="zh").score)
    assert result["chrf_score"] == pytest.approx(CHRF().corpus_score(PREDICTIONS, [REFERENCES]).score)
    classification = evaluate.combine([load_metric("accuracy"), load_metric("f1")])
    assert classification.compute(predictions=[0, 1, 1], references=[0, 1, 0]) == pytest.approx({"accuracy": 2 / 3, "f1": 2 / 3})


def test_unknown_metric_name():
    with pytest.raises(ValueError, match="unknown metric 'rouge'.*bleu, chrf, accuracy, f1"):
        load_metric("rouge")
