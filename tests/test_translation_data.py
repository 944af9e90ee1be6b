"""The translation data pipeline (recipes/translation_data.py) on the real Tatoeba archive and on small files."""

import json
import logging
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from translation_data import (  # noqa: E402
    DEFAULT_DATA_DIR,
    SETTINGS,
    TATOEBA_ZIP,
    load_parallel_files,
    load_tatoeba,
    split_translation_dataset,
    to_simplified,
)

needs_tatoeba = pytest.mark.skipif(
    not (DEFAULT_DATA_DIR / TATOEBA_ZIP).is_file(), reason=f"Tatoeba archive not at {DEFAULT_DATA_DIR / TATOEBA_ZIP}"
)


@pytest.fixture(scope="module")
def tatoeba():
    return load_tatoeba(DEFAULT_DATA_DIR)


@pytest.fixture(scope="module")
def splits(tatoeba):
    return split_translation_dataset(tatoeba)


def _sources(dataset) -> list[str]:
    return [pair["en"] for pair in dataset["translation"][:]]


@needs_tatoeba
def test_load_tatoeba_reads_every_pair_with_attribution(tatoeba):
    assert len(tatoeba) == 32028  # every line of cmn.txt is well formed (shared/data/README.md)
    assert tatoeba.column_names == ["translation", "attribution"]
    assert tatoeba[0]["translation"] == {"en": "Hi.", "zh": "嗨。"}
    assert tatoeba[0]["attribution"] == "CC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #891077 (Martha)"
    assert all(attribution.startswith("CC-BY 2.0") for attribution in tatoeba["attribution"])


@needs_tatoeba
def test_load_tatoeba_converts_to_simplified_and_nfkc(tatoeba):
    by_source = {pair["en"]: pair["zh"] for pair in tatoeba["translation"][:]}
    # cmn.txt has 瑪麗要求她的兒子守規矩。 (Traditional)
    assert by_source["Mary asked her son to behave himself."] == "玛丽要求她的儿子守规矩。"
    chinese = "".join(pair["zh"] for pair in tatoeba["translation"][:])
    assert "瑪" not in chinese and "？" not in chinese  # fullwidth ？ became ? (NFKC)

    raw = load_tatoeba(DEFAULT_DATA_DIR, normalize_chinese=None, unicode_normalization=None)
    raw_by_source = {pair["en"]: pair["zh"] for pair in raw["translation"][:]}
    assert raw_by_source["Mary asked her son to behave himself."] == "瑪麗要求她的兒子守規矩。"
    assert "？" in "".join(pair["zh"] for pair in raw["translation"][:])


def test_to_simplified():
    assert to_simplified("瑪麗") == "玛丽"
    assert to_simplified("我们已经是简体。") == "我们已经是简体。"


def _write_tatoeba_zip(data_dir: Path, lines: list[str]) -> Path:
    path = data_dir / TATOEBA_ZIP
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cmn.txt", "".join(line + "\n" for line in lines))
    return path


def test_load_tatoeba_skips_and_counts_malformed_lines(tmp_path, caplog):
    path = _write_tatoeba_zip(
        tmp_path,
        [
            "Hi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #1 (a) & #2 (b)",
            "No separator at all",
            "Empty side.\t \tCC-BY 2.0 (France) Attribution: tatoeba.org #3 (a) & #4 (b)",
            "No attribution.\t没有。",
            "\t只有中文。\tCC-BY 2.0 (France) Attribution: tatoeba.org #5 (a) & #6 (b)",
            "Run!\t跑！\tCC-BY 2.0 (France) Attribution: tatoeba.org #7 (a) & #8 (b)",
        ],
    )
    with caplog.at_level(logging.WARNING):
        dataset = load_tatoeba(tmp_path)
    assert [pair["en"] for pair in dataset["translation"][:]] == ["Hi.", "Run!"]
    assert dataset[1]["translation"]["zh"] == "跑!"
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"Skipped 4 malformed lines of {path}:cmn.txt" in message and "first line numbers: 2, 3, 4, 5" in message


def test_load_tatoeba_missing_archive_names_path_and_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cmn-eng\.zip.*--data_dir"):
        load_tatoeba(tmp_path)


@needs_tatoeba
def test_split_sizes_are_exact_and_sources_do_not_leak(tatoeba, splits):
    assert SETTINGS["test_size"] == 1000 and SETTINGS["validation_size"] == 1000
    pairs = {name: split["translation"][:] for name, split in splits.items()}
    assert {name: len(split_pairs) for name, split_pairs in pairs.items()} == {
        "train": len(tatoeba) - 2000,
        "validation": 1000,
        "test": 1000,
    }
    sources = {name: {pair["en"] for pair in split_pairs} for name, split_pairs in pairs.items()}
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    as_tuples = Counter((pair["en"], pair["zh"]) for split_pairs in pairs.values() for pair in split_pairs)
    assert as_tuples == Counter((pair["en"], pair["zh"]) for pair in tatoeba["translation"][:])  # none lost or doubled


@needs_tatoeba
def test_split_is_deterministic_and_depends_on_seed(tatoeba, splits):
    again = split_translation_dataset(tatoeba)
    assert _sources(again["test"]) == _sources(splits["test"])
    assert _sources(again["validation"]) == _sources(splits["validation"])
    other = split_translation_dataset(tatoeba, seed=SETTINGS["seed"] + 1)
    assert len(other["test"]) == 1000
    assert _sources(other["test"]) != _sources(splits["test"])


def test_split_keeps_multi_translation_groups_together_and_refuses_impossible_sizes(tmp_path):
    lines = [f"Sentence {i}.\t句子{i}。\tCC-BY" for i in range(20)] + [f"Shared.\t共享{i}。\tCC-BY" for i in range(5)]
    _write_tatoeba_zip(tmp_path, lines)
    dataset = load_tatoeba(tmp_path)
    for seed in range(5):
        parts = split_translation_dataset(dataset, test_size=4, validation_size=6, seed=seed)
        assert [len(parts[name]) for name in ("train", "validation", "test")] == [15, 6, 4]
        holding_shared = [name for name, part in parts.items() if "Shared." in _sources(part)]
        assert len(holding_shared) == 1 and _sources(parts[holding_shared[0]]).count("Shared.") == 5
    with pytest.raises(ValueError, match="exactly 30 pairs"):
        split_translation_dataset(dataset, test_size=30, validation_size=0)


def test_load_parallel_files_jsonl_and_tsv(tmp_path, caplog):
    train = tmp_path / "train.jsonl"
    records = [
        {"translation": {"en": "Say it.", "zh": "請說。"}, "id": 1},
        {"translation": {"en": "Empty.", "zh": ""}, "id": 2},
        {"translation": {"en": "Thanks!", "zh": "謝謝！"}, "id": 3},
    ]
    train.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    validation = tmp_path / "validation.tsv"
    validation.write_text("Good.\t好。\tsome note\nno tab here\nFine.\t很好。\n")
    with caplog.at_level(logging.WARNING):
        data = load_parallel_files(train_file=train, validation_file=validation)
    assert list(data) == ["train", "validation"]
    assert list(data["train"]["translation"]) == [{"en": "Say it.", "zh": "请说。"}, {"en": "Thanks!", "zh": "谢谢!"}]
    assert list(data["train"]["id"]) == [1, 3]
    assert list(data["validation"]["translation"]) == [{"en": "Good.", "zh": "好。"}, {"en": "Fine.", "zh": "很好。"}]
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "Skipped 1 malformed records of " + str(train) in messages[0] and "first record numbers: 2" in messages[0]
    assert "Skipped 1 malformed lines of " + str(validation) in messages[1] and "first line numbers: 2" in messages[1]


def test_load_parallel_files_other_language_pair(tmp_path):
    path = tmp_path / "fr_en.tsv"
    path.write_text("Bonjour.\tHello.\n")
    data = load_parallel_files(test_file=path, source_lang="fr", target_lang="en")
    assert list(data["test"]["translation"]) == [{"fr": "Bonjour.", "en": "Hello."}]


def test_load_parallel_files_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        load_parallel_files()
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_parallel_files(train_file=tmp_path / "missing.jsonl")
    csv = tmp_path / "pairs.csv"
    csv.write_text("en,zh\nHi,嗨\n")
    with pytest.raises(ValueError, match=r"pairs\.csv.*unsupported extension '\.csv'"):
        load_parallel_files(train_file=csv)
    no_chinese = tmp_path / "no_zh.jsonl"
    no_chinese.write_text(json.dumps({"translation": {"en": "Hi.", "fr": "Salut."}}) + "\n")
    with pytest.raises(ValueError, match=r"no_zh\.jsonl: record 1 has no text field 'translation\.zh'"):
        load_parallel_files(train_file=no_chinese)
    one_missing = tmp_path / "one_missing.jsonl"
    one_missing.write_text(
        json.dumps({"translation": {"en": "Hi.", "zh": "嗨。"}}) + "\n" + json.dumps({"translation": {"en": "Bye."}}) + "\n"
    )
    with pytest.raises(ValueError, match=r"one_missing\.jsonl: record 2 has no text field 'translation\.zh'"):
        load_parallel_files(train_file=one_missing)
    flat = tmp_path / "flat.jsonl"
    flat.write_text(json.dumps({"en": "Hi.", "zh": "嗨。"}) + "\n")
    with pytest.raises(ValueError, match=r"flat\.jsonl: every record needs a 'translation' object"):
        load_parallel_files(train_file=flat)
