"""Labelled-text loading for the classification recipe (recipes/thucnews_data.py): THUCNews and users' files."""

import json
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from thucnews_data import (  # noqa: E402
    DEFAULT_DATA_DIR,
    THUCNEWS,
    load_classification_files,
    load_thucnews,
    read_label_names,
)

NAMES = ["finance", "sports", "game"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def skip_warnings(caplog) -> list[str]:
    """The warnings about skipped lines (tiny files also draw the warning about small classes)."""
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING and "skipped" in record.getMessage()]


def test_malformed_lines_are_skipped_and_counted_in_one_warning(tmp_path, caplog):
    lines = [
        "股市大涨\t0",  # 1 ok
        "没有标签的一行",  # 2 no tab
        "姚明复出\t1",  # 3 ok
        "\t2",  # 4 empty text
        "   \t2",  # 5 whitespace-only text
        "游戏新作\tx",  # 6 label not an integer nor a name
        "游戏新作\t3",  # 7 label out of range
        "游戏新作\t-1",  # 8 negative label
        "网游\t公测\t2",  # 9 ok: the label follows the last tab
        "新赛季\tsports",  # 10 ok: a class name
        "基金\t",  # 11 empty label
    ]
    train = write(tmp_path / "train.txt", "\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="thucnews_data"):
        splits = load_classification_files(train, label_names=NAMES)
    assert splits["train"]["text"] == ["股市大涨", "姚明复出", "网游\t公测", "新赛季"]
    assert splits["train"]["label"] == [0, 1, 2, 1]
    assert splits["train"].features["label"].names == NAMES
    [message] = skip_warnings(caplog)
    assert str(train) in message and "skipped 7 malformed lines of 11" in message
    assert "2, 4, 5, 6, 7, ..." in message
    assert "labels that are no class: {'x': 1, '3': 1, '-1': 1, '': 1}" in message


def test_a_clean_file_gives_no_warning(tmp_path, caplog):
    train = write(tmp_path / "train.tsv", "a\t0\r\nb\t1\r\n")  # CRLF line ends are fine too
    with caplog.at_level(logging.WARNING, logger="thucnews_data"):
        splits = load_classification_files(train, label_names="neg,pos")
    assert splits["train"]["text"] == ["a", "b"] and not skip_warnings(caplog)


def test_csv_and_json_files_with_text_and_label_columns(tmp_path, caplog):
    train = write(tmp_path / "train.csv", "text,label,source\n股市大涨,finance,x\n姚明复出,1,y\n,2,z\n")
    validation = write(
        tmp_path / "dev.jsonl",
        "\n".join(json.dumps(record, ensure_ascii=False) for record in [{"text": "网游公测", "label": 2}, {"text": "球赛", "label": 9}]),
    )
    test = write(tmp_path / "test.json", json.dumps([{"text": "基金", "label": "finance"}], ensure_ascii=False))
    with caplog.at_level(logging.WARNING, logger="thucnews_data"):
        splits = load_classification_files(train, validation, test, label_names=NAMES)
    assert splits["train"]["text"] == ["股市大涨", "姚明复出"] and splits["train"]["label"] == [0, 1]
    assert splits["validation"]["label"] == [2] and splits["test"]["label"] == [0]
    messages = skip_warnings(caplog)
    assert len(messages) == 2
    assert "train.csv: skipped 1 malformed records of 3" in messages[0] and "numbers: 3" in messages[0]
    assert "dev.jsonl: skipped 1 malformed records of 2" in messages[1]


def test_label_names_from_a_file_and_inferred(tmp_path):
    names_file = write(tmp_path / "class.txt", "finance\nsports\ngame")  # no final newline, as THUCNews' class.txt
    assert read_label_names(names_file) == NAMES and read_label_names(str(names_file)) == NAMES
    integers = write(tmp_path / "ints.txt", "a\t2\nb\t0\n")
    assert load_classification_files(integers)["train"].features["label"].names == ["0", "1", "2"]
    words = write(tmp_path / "words.txt", "a\tpos\nb\tneg\nc\tpos\n")
    splits = load_classification_files(words)
    assert splits["train"].features["label"].names == ["neg", "pos"] and splits["train"]["label"] == [1, 0, 1]


@pytest.mark.parametrize(
    "names, error, match",
    [
        ("missing_classes.txt", FileNotFoundError, "missing_classes.txt"),
        ("only", FileNotFoundError, "only"),
        ("a,b,a", ValueError, "unique"),
        (["solo"], ValueError, "at least 2"),
    ],
)
def test_bad_label_names_are_rejected(names, error, match):
    with pytest.raises(error, match=match):
        read_label_names(names)


def test_bad_files_are_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.txt holds no valid line"):
        load_classification_files(write(tmp_path / "empty.txt", "no tab here\n"), label_names=NAMES)
    with pytest.raises(ValueError, match=r"unsupported extension '\.xml'"):
        load_classification_files(write(tmp_path / "data.xml", "<a/>"), label_names=NAMES)
    with pytest.raises(ValueError, match=r"columns.*missing \['label'\]"):
        load_classification_files(write(tmp_path / "data.csv", "text,category\na,b\n"), label_names=NAMES)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("ok\t0\n".encode() + "caf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt line 2 is not UTF-8"):
        load_classification_files(latin1, label_names=NAMES)
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_classification_files(tmp_path / "nowhere.txt", label_names=NAMES)
    with pytest.raises(ValueError, match="at least one"):
        load_classification_files(label_names=NAMES)


@pytest.mark.skipif(not (DEFAULT_DATA_DIR / THUCNEWS["folder"]).is_dir(), reason="THUCNews not in the data folder")
def test_thucnews_splits(caplog):
    with caplog.at_level(logging.WARNING, logger="thucnews_data"):
        splits = load_thucnews()
    assert {name: len(split) for name, split in splits.items()} == {"train": 33590, "validation": 10000, "test": 10000}
    assert splits["train"].features["label"].names[:3] == ["finance", "realty", "stocks"]
    assert splits["train"][0] == {"text": "中华女子学院：本科层次仅1专业招男生", "label": 3}
    assert splits["validation"]["label"].count(0) == 1000
    assert not caplog.records  # every line of the shipped files is well formed
