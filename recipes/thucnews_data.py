"""Labelled texts for the text-classification recipe: the THUCNews headline subset, or a user's own files.

Every dataset built here has two columns, ``text`` (a string) and ``label`` (a ``datasets.ClassLabel``, so the
class names travel with the data and end up in the model's ``id2label``).

Accepted files:
- ``.txt`` / ``.tsv``: one example per line, ``text<TAB>label`` (the label after the LAST tab), THUCNews' format;
- ``.csv`` (with a header) and ``.json`` / ``.jsonl``: records with a ``text`` and a ``label`` field.

A label is the class id (an integer ``0 <= id < number of classes``) or the exact class name. A malformed example
(no tab, an empty text, a label that is neither) is skipped, and all of a file's skips are counted in ONE warning
that names the file and the first line/record numbers; nothing is dropped silently. A file with no valid example,
an unknown extension or missing ``text``/``label`` columns is an error.

Importing: ``recipes/`` is a folder of scripts; run as ``python recipes/x.py`` it is on ``sys.path`` already, other
code (tests) inserts it first. Defaults (data folder, THUCNews file names) come from
``settings/text_classification_data.json``.
"""

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = json.loads((Path(__file__).resolve().parent / "settings" / "text_classification_data.json").read_text())
DEFAULT_DATA_DIR = REPO_ROOT / SETTINGS["data_dir"]  # given relative to the repository root
THUCNEWS = SETTINGS["thucnews"]

TEXT_LABEL_SUFFIXES = (".txt", ".tsv")
TABLE_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "json"}
MAX_REPORTED_ROWS = 5  # how many malformed line/record numbers a warning quotes
INTEGER = re.compile(r"[+-]?\d+")

Row = tuple[int, str | None, object]  # (line or record number, text, raw label); text None = unparsable


def read_label_names(source: str | Path | Sequence[str]) -> list[str]:
    """Class names in id order from a file with one name per line (THUCNews' ``class.txt``), a comma-separated
    string (``"neg,pos"``) or a list. A string without a comma is a file name."""
    if isinstance(source, Path) or (isinstance(source, str) and "," not in source):
        if not Path(source).is_file():
            raise FileNotFoundError(f"label names file not found: {source} (or give the names comma-separated)")
        names, origin = Path(source).read_text(encoding="utf-8-sig").splitlines(), str(source)
    elif isinstance(source, str):
        names, origin = source.split(","), f"--label_names {source!r}"
    else:
        names, origin = list(source), "label_names"
    names = [name.strip() for name in names if name.strip()]
    if len(names) < 2:
        raise ValueError(f"{origin}: a classifier needs at least 2 class names, got {names}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{origin}: class names must be unique, repeated: {duplicates}")
    return names


def label_id(raw_label: object, label_names: Sequence[str]) -> int | None:
    """The class id of ``raw_label`` (an id, as int or digits, or a class name), or None when it is neither."""
    if isinstance(raw_label, str):
        raw_label = raw_label.strip()
        if INTEGER.fullmatch(raw_label):
            raw_label = int(raw_label)
        elif raw_label in label_names:
            return label_names.index(raw_label)
    if isinstance(raw_label, int) and not isinstance(raw_label, bool) and 0 <= raw_label < len(label_names):
        return raw_label
    return None


def infer_label_names(rows: Iterable[Row]) -> list[str]:
    """Class names when none are given: ``"0" .. str(max id)`` if every label is an integer, else the sorted
    distinct labels (as transformers' run_glue example does)."""
    labels = {raw.strip() if isinstance(raw, str) else raw for _, text, raw in rows if text is not None and raw is not None}
    if labels and all(isinstance(label, int) or INTEGER.fullmatch(str(label)) for label in labels):
        return [str(index) for index in range(max(int(label) for label in labels) + 1)]
    return sorted(str(label) for label in labels)


def build_dataset(rows: Iterable[Row], label_names: Sequence[str], *, name: str, unit: str) -> datasets.Dataset:
    """Turn parsed rows into a ``text``/``label`` dataset; malformed rows are skipped and reported in one warning."""
    texts, labels, malformed = [], [], []
    total = 0
    for number, text, raw_label in rows:
        total += 1
        label = label_id(raw_label, label_names) if text is not None else None
        if label is None or not text.strip():
            malformed.append(number)
            continue
        texts.append(text.strip())
        labels.append(label)
    expected = f"a non-empty text and a label that is an id 0-{len(label_names) - 1} or a class name"
    if malformed:
        shown = ", ".join(map(str, malformed[:MAX_REPORTED_ROWS])) + (", ..." if len(malformed) > MAX_REPORTED_ROWS else "")
        logger.warning(
            "%s: skipped %d malformed %ss of %d (expected %s); first %s numbers: %s",
            name, len(malformed), unit, total, expected, unit, shown,
        )
    if not texts:
        raise ValueError(f"{name} holds no valid {unit} (expected {expected})")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(label_names))})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)


def text_label_rows(path: Path) -> Iterator[Row]:
    """``text<TAB>label`` lines; the label follows the last tab, so a text may itself contain tabs.

    Lines are decoded one by one so that a non-UTF-8 file is reported with the number of the offending line."""
    with path.open("rb") as lines:
        for number, raw_line in enumerate(lines, start=1):
            try:
                line = raw_line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path} line {number} is not UTF-8 text: {error}") from error
            fields = line.rstrip("\r\n").rsplit("\t", 1)
            yield (number, fields[0], fields[1]) if len(fields) == 2 else (number, None, None)


def table_rows(path: Path) -> Iterator[Row]:
    """Records of a CSV/JSON file, read with ``datasets``; it must have ``text`` and ``label`` columns."""
    table = datasets.load_dataset(TABLE_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train")
    missing = {"text", "label"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: needs the columns 'text' and 'label'; missing {sorted(missing)}, found {table.column_names}")
    columns = table.select_columns(["text", "label"])[:]  # read both columns at once, not row by row
    for number, (text, label) in enumerate(zip(columns["text"], columns["label"]), start=1):
        yield number, text if isinstance(text, str) else None, label


def read_rows(path: Path) -> tuple[list[Row], str]:
    """Parsed rows of one file and the unit its numbers count (lines or records)."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in TEXT_LABEL_SUFFIXES:
        return list(text_label_rows(path)), "line"
    if suffix in TABLE_SUFFIXES:
        return list(table_rows(path)), "record"
    raise ValueError(f"{path}: unsupported extension {path.suffix!r}; use one of {TEXT_LABEL_SUFFIXES + tuple(TABLE_SUFFIXES)}")


def load_classification_files(
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    test_file: str | Path | None = None,
    label_names: str | Path | Sequence[str] | None = None,
) -> datasets.DatasetDict:
    """Load a user's labelled texts, one file per split (splits ``train``, ``validation``, ``test``).

    ``label_names``: see :func:`read_label_names`; without it the names are inferred from the training file (or the
    first file given) with :func:`infer_label_names`.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {split: Path(file) for split, file in files.items() if file is not None}
    if not files:
        raise ValueError("give at least one of train_file, validation_file, test_file")
    parsed = {split: read_rows(path) for split, path in files.items()}
    if label_names is None:
        names = infer_label_names(parsed["train" if "train" in parsed else next(iter(parsed))][0])
        logger.info("no label names given: using %s, inferred from the labels of %s", names, next(iter(files.values())))
    else:
        names = read_label_names(label_names)
    return datasets.DatasetDict(
        {split: build_dataset(rows, names, name=str(files[split]), unit=unit) for split, (rows, unit) in parsed.items()}
    )


def load_thucnews(data_dir: str | Path = DEFAULT_DATA_DIR) -> datasets.DatasetDict:
    """THUCNews headlines from ``<data_dir>/thucnews/``: the partial training file for ``train``, ``dev.txt`` for
    ``validation`` (model selection) and ``test.txt`` for ``test`` (the final figure only); class names from
    ``class.txt``. File names come from ``settings/text_classification_data.json``."""
    folder = Path(data_dir) / THUCNEWS["folder"]
    if not folder.is_dir():
        raise FileNotFoundError(f"THUCNews folder not found: {folder}. Point --data_dir at the folder holding {THUCNEWS['folder']}/.")
    return load_classification_files(
        folder / THUCNEWS["train"],
        folder / THUCNEWS["validation"],
        folder / THUCNEWS["test"],
        label_names=folder / THUCNEWS["label_names"],
    )
