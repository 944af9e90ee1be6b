"""The joint English–Chinese tokenizer (recipes/train_tokenizer.py) and the committed tokenizer_data/tatoeba_en_zh."""

import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from train_tokenizer import BYTE_TOKENS, SETTINGS, main, train_translation_tokenizer, translation_texts  # noqa: E402
from translation_data import DEFAULT_DATA_DIR, REPO_ROOT, TATOEBA_ZIP, load_tatoeba, split_translation_dataset  # noqa: E402

COMMITTED = REPO_ROOT / SETTINGS["output_dir"]
ROUND_TRIP = [
    "Tom didn't know what to say.",
    "It costs $3,000, doesn't it?",
    "玛丽要求她的儿子守规矩。",
    "他说:“我不知道。”",  # CJK quotes stay; the fullwidth colon would already be NFKC-normalised by the data pipeline
    "我有3个iPhone。",
    "Two  spaces, a\ttab and 鱻 (a character Tatoeba lacks).",
]

needs_tatoeba = pytest.mark.skipif(
    not (DEFAULT_DATA_DIR / TATOEBA_ZIP).is_file(), reason=f"Tatoeba archive not at {DEFAULT_DATA_DIR / TATOEBA_ZIP}"
)


@pytest.fixture(scope="module")
def splits():
    if not (DEFAULT_DATA_DIR / TATOEBA_ZIP).is_file():
        pytest.skip(f"Tatoeba archive not at {DEFAULT_DATA_DIR / TATOEBA_ZIP}")
    return split_translation_dataset(load_tatoeba(DEFAULT_DATA_DIR))


@pytest.fixture(scope="module")
def subset_texts(splits) -> list[str]:
    """Every 10th training pair (3,003 pairs of all lengths): trains in well under a second."""
    subset = splits["train"].select(range(0, len(splits["train"]), 10))
    return list(translation_texts(subset, ("en", "zh")))


@pytest.fixture(scope="module")
def tokenizer(subset_texts):
    return train_translation_tokenizer(subset_texts, vocab_size=3000, model_max_length=64)


def test_special_tokens_and_eos_only_post_processing(tokenizer):
    assert [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id] == [0, 1, 2, 3]
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<unk>"]
    ids = tokenizer("Hi.")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.bos_token_id not in ids
    assert ids[:-1] == tokenizer("Hi.", add_special_tokens=False)["input_ids"]
    assert (tokenizer.model_max_length, tokenizer.padding_side) == (64, "right")


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_decode_round_trips(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_chinese_is_character_level_and_english_subwords(tokenizer):
    tokens = tokenizer.tokenize("我们是学生。")
    assert tokens == ["我", "们", "是", "学", "生", "。"]
    assert not [token for token in tokenizer.get_vocab() if sum("\u4e00" <= char <= "\u9fff" for char in token) > 1]
    assert tokenizer.tokenize("我有3个iPhone。")[:4] == ["我", "有", "3", "个"]
    assert "▁the" in tokenizer.get_vocab()  # frequent English words are single subword tokens


def test_unseen_character_falls_back_to_bytes_and_nfkc(tokenizer):
    assert tokenizer.tokenize("鱻") == ["<0xE9>", "<0xB1>", "<0xBB>"]
    assert tokenizer.convert_tokens_to_ids(BYTE_TOKENS[:1] + BYTE_TOKENS[-1:]) == [4, 259]
    assert tokenizer("你好？")["input_ids"] == tokenizer("你好?")["input_ids"]  # fullwidth ？ is NFKC ?


def test_save_and_auto_load(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    batch = loaded(["Hi.", "我有3个iPhone。"], text_target=["嗨。", "Hello."], padding=True)
    assert batch["input_ids"] == tokenizer(["Hi.", "我有3个iPhone。"], padding=True)["input_ids"]
    assert batch["input_ids"][0][-1] == loaded.pad_token_id  # right padding
    assert batch["labels"] == tokenizer(["嗨。", "Hello."], padding=True)["input_ids"]  # targets: same vocabulary
    assert (loaded.model_max_length, loaded.padding_side, loaded.eos_token, loaded.pad_token) == (64, "right", "</s>", "<pad>")


def test_training_is_reproducible(subset_texts, tmp_path):
    for name in ("first", "second"):
        train_translation_tokenizer(subset_texts, vocab_size=3000, model_max_length=64).save_pretrained(tmp_path / name)
    assert (tmp_path / "first" / "tokenizer.json").read_bytes() == (tmp_path / "second" / "tokenizer.json").read_bytes()


def test_vocab_size_must_leave_room_for_merges(subset_texts):
    with pytest.raises(ValueError, match="vocab_size must exceed the 260"):
        train_translation_tokenizer(subset_texts, vocab_size=260, model_max_length=64)


@needs_tatoeba
def test_committed_tokenizer_is_what_the_command_produces(tmp_path):
    """tokenizer_data/README.md's command, rerun, gives the committed files byte for byte."""
    stats = main(["--data_dir", str(DEFAULT_DATA_DIR), "--output_dir", str(tmp_path)])
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    assert stats["vocab_size"] == SETTINGS["vocab_size"] == len(AutoTokenizer.from_pretrained(COMMITTED))
    for language in ("en", "zh"):
        assert stats["validation"][language]["round_trip_failures"] == 0
        assert stats["validation"][language]["unk_rate"] == 0
