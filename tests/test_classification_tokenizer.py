"""The THUCNews headline tokenizer (recipes/train_classification_tokenizer.py) and the committed
tokenizer_data/thucnews."""

import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from thucnews_data import DEFAULT_DATA_DIR, REPO_ROOT, THUCNEWS, load_thucnews  # noqa: E402
from train_classification_tokenizer import SETTINGS, SPECIAL_TOKENS, main, train_classification_tokenizer  # noqa: E402

COMMITTED = REPO_ROOT / SETTINGS["output_dir"]
needs_thucnews = pytest.mark.skipif(
    not (DEFAULT_DATA_DIR / THUCNEWS["folder"]).is_dir(), reason="THUCNews not in the data folder"
)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(COMMITTED)


@pytest.fixture(scope="module")
def subset_texts() -> list[str]:
    """Every 10th training headline (3,359): trains in a fraction of a second."""
    if not (DEFAULT_DATA_DIR / THUCNEWS["folder"]).is_dir():
        pytest.skip("THUCNews not in the data folder")
    return load_thucnews(DEFAULT_DATA_DIR)["train"]["text"][::10]


def tokens(tokenizer, text: str) -> list[str]:
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


def test_special_tokens_and_cls_sep_template(tokenizer):
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id) == (0, 1, 2, 3)
    assert tokens(tokenizer, "股市")[0] == "[CLS]" and tokens(tokenizer, "股市")[-1] == "[SEP]"
    pair = tokenizer("基金", "股市")["input_ids"]
    assert pair[0] == 2 and pair.count(3) == 2 and pair[-1] == 3


def test_chinese_characters_and_frequent_pieces(tokenizer):
    pieces = tokens(tokenizer, "中华女子学院：本科层次仅1专业招男生")[1:-1]
    assert "".join(pieces) == "中华女子学院:本科层次仅1专业招男生"  # NFKC turned the fullwidth colon into ':'
    assert {"中华", "学院", "专业"} <= set(pieces) and {"层", "次"} <= set(pieces)
    assert max(map(len, pieces)) <= SETTINGS["max_token_length"]


def test_latin_is_lowercased_and_digits_are_single_tokens(tokenizer):
    assert tokenizer("iPhone发布")["input_ids"] == tokenizer("IPHONE发布")["input_ids"] == tokenizer("ｉＰｈｏｎｅ发布")["input_ids"]
    assert tokens(tokenizer, "2009年")[1:-1] == ["2", "0", "0", "9", "年"]
    assert "".join(tokens(tokenizer, "NBA 季后赛")[1:-1]) == "nba季后赛"  # whitespace separates pieces and is dropped


@pytest.mark.parametrize("text, expected", [("😀", ["[CLS]", "[UNK]", "[SEP]"]), ("", ["[CLS]", "[SEP]"]), ("  ", ["[CLS]", "[SEP]"])])
def test_unseen_characters_and_empty_text(tokenizer, text, expected):
    assert tokens(tokenizer, text) == expected


def test_long_text_is_truncated_to_model_max_length(tokenizer):
    ids = tokenizer("新闻" * 2500, truncation=True)["input_ids"]
    assert len(ids) == tokenizer.model_max_length == SETTINGS["model_max_length"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def test_small_vocabulary_is_pure_characters(subset_texts):
    tokenizer = train_classification_tokenizer(subset_texts, vocab_size=100)
    vocab = [token for token in tokenizer.get_vocab() if token not in SPECIAL_TOKENS]
    assert len(tokenizer) > 100 and all(len(token) == 1 for token in vocab)  # every seen character is kept


def test_training_is_reproducible(subset_texts, tmp_path):
    for run in ("a", "b"):
        train_classification_tokenizer(subset_texts, vocab_size=3000).save_pretrained(tmp_path / run)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_vocab_size_must_exceed_the_special_tokens(subset_texts):
    with pytest.raises(ValueError, match="vocab_size"):
        train_classification_tokenizer(subset_texts, vocab_size=4)


@needs_thucnews
def test_committed_tokenizer_is_what_the_command_produces(tmp_path, capsys):
    stats = main(["--data_dir", str(DEFAULT_DATA_DIR), "--output_dir", str(tmp_path)])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    assert stats["vocab_size"] == SETTINGS["vocab_size"] and stats["validation"]["truncated_texts"] == 0
    assert '"mean_tokens"' in capsys.readouterr().out
