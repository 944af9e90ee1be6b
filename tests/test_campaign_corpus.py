"""Bad-input campaign, corpus kind: labelled texts and parallel files a careful user might hand the recipes.

Every probe ends in a right result, an error naming the file and the problem, or a counted, logged skip (issue 16).
Probes that need a recipe run live in ``test_campaign_faults.py``.
"""

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # recipes/ is a script folder, not a package

from thucnews_data import load_classification_files  # noqa: E402
from translation_data import load_parallel_files  # noqa: E402


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


# ---- labels: the class a label names is the class it gets (issue 16, item 1) ----


def test_integer_class_names_are_names_not_ids(tmp_path, caplog):
    train = write(tmp_path / "train.tsv", "terrible\t1\nbad\t2\nok\t3\ngood\t4\ngreat\t5\n" * 5)
    with caplog.at_level(logging.WARNING):
        split = load_classification_files(train, label_names="1,2,3,4,5")["train"]
    assert len(split) == 25, "no line is skipped"
    names = split.features["label"].names
    assert {text: names[label] for text, label in zip(split["text"], split["label"])} == {
        "terrible": "1", "bad": "2", "ok": "3", "good": "4", "great": "5"
    }
    assert not warnings_of(caplog)


def test_mixed_labels_are_names_in_natural_order(tmp_path):
    labels = ["0", "1", "2", "10", "11", "x"]
    train = write(tmp_path / "train.tsv", "".join(f"text {label}\t{label}\n" for label in labels * 5))
    split = load_classification_files(train)["train"]
    names = split.features["label"].names
    assert names == labels
    assert all(names[label] == text.split()[1] for text, label in zip(split["text"], split["label"]))


def test_validation_and_test_files_follow_the_training_mapping(tmp_path):
    train = write(tmp_path / "train.tsv", "a\tpos\nb\tneg\n" * 5)
    test = write(tmp_path / "test.jsonl", '{"text": "c", "label": "neg"}\n{"text": "d", "label": "pos"}\n')
    splits = load_classification_files(train, test_file=test)
    assert splits["train"].features["label"].names == splits["test"].features["label"].names == ["neg", "pos"]
    assert splits["test"]["label"] == [0, 1]


def test_the_mapping_is_recorded_with_the_data(tmp_path):
    train = write(tmp_path / "train.tsv", "a\tpos\nb\tneg\n" * 5)
    description = load_classification_files(train)["train"].info.description
    assert "0 = 'neg', 1 = 'pos'" in description and "train.tsv" in description and str(tmp_path) not in description


def test_thucnews_style_ids_with_word_names_still_work(tmp_path):
    train = write(tmp_path / "train.txt", "股市\t0\n球赛\t1\n" * 5)
    split = load_classification_files(train, label_names="finance,sports")["train"]
    assert split["label"][:2] == [0, 1]


# ---- typo labels and degenerate tasks are reported (issue 16, item 2) ----


def test_a_stray_label_is_reported_as_a_tiny_class(tmp_path, caplog):
    lines = [f"text {index}\t{index % 10}\n" for index in range(100)] + ["typo\t10\n"]
    train = write(tmp_path / "train.tsv", "".join(lines))
    with caplog.at_level(logging.WARNING):
        split = load_classification_files(train)["train"]
    assert split.features["label"].num_classes == 11
    [message] = warnings_of(caplog)
    assert str(train) in message and "{'10': 1}" in message and "fewer than 5 training examples" in message


def test_one_class_is_an_error(tmp_path):
    train = write(tmp_path / "train.tsv", "a\t0\nb\t0\nc\t0\n")
    with pytest.raises(ValueError, match=r"train\.tsv: every label is \['0'\]: a classifier needs at least 2 classes"):
        load_classification_files(train)
    with pytest.raises(ValueError, match=r"train\.tsv: every training example is of class 'neg'"):
        load_classification_files(train, label_names="neg,pos")


def test_a_class_missing_from_training_is_reported(tmp_path, caplog):
    train = write(tmp_path / "train.tsv", "a\tneg\nb\tpos\n" * 5)
    test = write(tmp_path / "test.tsv", "c\tneg\nd\tneutral\n")
    with caplog.at_level(logging.WARNING):
        splits = load_classification_files(train, test_file=test)
    assert splits["test"]["label"] == [0]
    [message] = warnings_of(caplog)
    assert str(test) in message and "skipped 1 malformed lines of 2" in message and "{'neutral': 1}" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_classification_files(train, label_names="neg,pos,neutral")
    [message] = warnings_of(caplog)
    assert "{'neutral': 0}" in message


# ---- files whose errors used to mislead (issue 16, item 8) and NUL rows (item 9) ----


def test_one_empty_label_cell_skips_one_record(tmp_path, caplog):
    rows = "".join(f"text {index},{index % 2}\n" for index in range(100))
    train = write(tmp_path / "train.csv", "text,label\n" + rows.replace("text 7,1\n", "text 7,\n"))
    with caplog.at_level(logging.WARNING):
        split = load_classification_files(train)["train"]
    assert len(split) == 99 and split.features["label"].names == ["0", "1"]
    assert "skipped 1 malformed records of 100" in " ".join(warnings_of(caplog))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("train.jsonl", "", r"train\.jsonl is empty"),
        ("train.csv", "", r"train\.csv is empty"),
        ("train.csv", "text,label\n", r"train\.csv holds no records \(only a header\?\)"),
    ],
    ids=["empty-jsonl", "empty-csv", "header-only-csv"],
)
def test_empty_tables_are_named(tmp_path, name, content, message):
    train = write(tmp_path / "good.tsv", "a\tneg\nb\tpos\n")
    with pytest.raises(ValueError, match=message):
        load_classification_files(train, write(tmp_path / name, content))


def test_nul_only_texts_are_skipped(tmp_path, caplog):
    train = write(tmp_path / "train.tsv", "a\tneg\nb\tpos\n\x00\x00\x00\tpos\n")
    with caplog.at_level(logging.WARNING):
        split = load_classification_files(train)["train"]
    assert split["text"] == ["a", "b"]
    assert "skipped 1 malformed lines of 3" in " ".join(warnings_of(caplog))


def test_invalid_utf8_in_a_translation_file_names_its_own_line(tmp_path):
    lines = [f"sentence number {index}\t句子 {index}\n".encode() for index in range(1, 400)]
    lines[299] = b"caf\xe9\t\xe5\x92\x96\n"  # Latin-1 "café": not UTF-8
    path = tmp_path / "train.tsv"
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=r"train\.tsv line 300 is not UTF-8"):
        load_parallel_files(path)


def test_empty_and_nul_translation_files(tmp_path, caplog):
    with pytest.raises(ValueError, match=r"dev\.jsonl is empty"):
        load_parallel_files(validation_file=write(tmp_path / "dev.jsonl", "\n"))
    with caplog.at_level(logging.WARNING):
        pairs = load_parallel_files(write(tmp_path / "train.tsv", "hello\t你好\n\x00\x00\t\x00\n"))["train"]
    assert len(pairs) == 1 and "Skipped 1 malformed line" in " ".join(warnings_of(caplog))


# ---- the corpora: where they come from, fetched and verified (issue 15) ----

import shutil  # noqa: E402

from prepare_data import MANIFEST, prepare  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the corpora are not in ../shared/data")
def test_the_shared_corpora_match_their_pinned_checksums():
    assert prepare(SHARED_DATA, list(MANIFEST["corpora"])) == []


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the corpora are not in ../shared/data")
def test_download_from_a_mirror_installs_only_verified_files(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED_DATA / "mnist", mirror / "mnist")
    data_dir = tmp_path / "data"
    missing = prepare(data_dir, ["mnist"])
    assert len(missing) == 2 and all(line.endswith(" is missing") for line in missing)
    assert prepare(data_dir, ["mnist"], download=True, mirror=mirror.as_uri() + "/") == []
    assert prepare(data_dir, ["mnist"]) == []
    labels = mirror / "mnist" / "t10k-labels-idx1-ubyte.gz"
    altered = bytearray(labels.read_bytes())
    altered[-1] ^= 1
    labels.write_bytes(bytes(altered))
    (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    [error] = prepare(data_dir, ["mnist"], download=True, mirror=mirror.as_uri() + "/")
    assert "t10k-labels-idx1-ubyte.gz has sha256" in error and "not installed" in error
    assert not (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_every_corpus_names_its_source_and_licence():
    for corpus in MANIFEST["corpora"].values():
        assert corpus["source"] and corpus["licence"] and corpus["files"]
        assert all(file["url"].startswith("https://") and len(file["sha256"]) == 64 for file in corpus["files"].values())
