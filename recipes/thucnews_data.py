"""Labelled texts for the text-classification recipe: the THUCNews headline subset, or a user's own files.

Every dataset built here has two columns, ``text`` (a string) and ``label`` (a ``datasets.ClassLabel``, so the
class names travel with the data and end up in the model's ``id2label``).

Accepted files:
- ``.txt`` / ``.tsv``: one example per line, ``text<TAB>label`` (the label after the LAST tab), THUCNews' format;
- ``.csv`` (with a header) and ``.json`` / ``.jsonl``: records with a ``text`` and a ``label`` field.

How a label is read, the same way in the train, validation and test files (:func:`label_id`):

* With class names given (``--class_names``, THUCNews' ``class.txt``): a label that is one of the names is that
  class. A label that is not a name is read as a class id (an integer ``0 <= id < number of classes``) only when no
  class name is itself an integer: with ``--class_names 1,2,3,4,5`` the label ``1`` is the class named ``1``, never
  id 1.
* Without names: when every training label is an integer ``>= 0`` they are class ids and the classes are
  ``"0" .. str(max id)``; otherwise every label is a class name, sorted with integers first in numeric order
  (``0, 1, 2, 10, 11, x``). The training file decides (the first file given when there is none).

The mapping is logged and stored in each split's ``info.description`` (the recipe writes it into the card). A
class with fewer than ``MIN_CLASS_EXAMPLES`` training examples (a typo label, an empty class) is reported in a
warning; a single class is an error (there is nothing to classify). A malformed example (no tab, an empty or
NUL-only text, a label that is no class, e.g. one seen in the test file but not in training) is skipped, and all of
a file's skips are counted in ONE warning that names the file, the first line/record numbers and the unknown labels;
nothing is dropped silently. A file with no valid example, an empty file, an unknown extension or missing
``text``/``label`` columns is an error naming the file.

Importing: ``recipes/`` is a folder of scripts; run as ``python recipes/x.py`` it is on ``sys.path`` already, other
code (tests) inserts it first. Defaults (data folder, THUCNews file names) come from
``settings/text_classification_data.json``.
"""

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets
from recipe_utils import is_blank, load_table, numbered_lines

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = json.loads((Path(__file__).resolve().parent / "settings" / "text_classification_data.json").read_text())
DEFAULT_DATA_DIR = REPO_ROOT / SETTINGS["data_dir"]  # given relative to the repository root
THUCNEWS = SETTINGS["thucnews"]

TEXT_LABEL_SUFFIXES = (".txt", ".tsv")
TABLE_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "json"}
MAX_REPORTED_ROWS = 5  # how many malformed line/record numbers a warning quotes
INTEGER = re.compile(r"-?(0|[1-9]\d*)")  # canonical integers: "007" is a name, not id 7
MIN_CLASS_EXAMPLES = 5  # fewer training examples than this in a class is reported

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


def label_text(raw_label: object) -> str | None:
    """A raw label as the string it stands for (JSON integers included); None for a missing or non-text label."""
    if isinstance(raw_label, bool) or raw_label is None:
        return None
    if isinstance(raw_label, int):
        return str(raw_label)
    return raw_label.strip() if isinstance(raw_label, str) else None


def ids_allowed(label_names: Sequence[str]) -> bool:
    """Whether a label that is no class name may be read as a class id: only when no class name is an integer."""
    return not any(INTEGER.fullmatch(name) for name in label_names)


def label_id(raw_label: object, label_names: Sequence[str]) -> int | None:
    """The class id of ``raw_label``: its class if it is a class name, else (when :func:`ids_allowed`) the id it
    spells; None when it is neither (see the module docstring)."""
    label = label_text(raw_label)
    if label is None:
        return None
    if label in label_names:
        return list(label_names).index(label)
    if ids_allowed(label_names) and INTEGER.fullmatch(label) and 0 <= int(label) < len(label_names):
        return int(label)
    return None


def infer_label_names(rows: Iterable[Row]) -> list[str]:
    """Class names when none are given: ``"0" .. str(max id)`` if every label is an integer >= 0, else the distinct
    labels, integers first in numeric order, then the others in code-point order."""
    labels = {label_text(raw) for _, text, raw in rows if text is not None} - {None, ""}
    if labels and all(INTEGER.fullmatch(label) and int(label) >= 0 for label in labels):
        return [str(index) for index in range(max(int(label) for label in labels) + 1)]
    numbers = sorted((label for label in labels if INTEGER.fullmatch(label)), key=int)
    return numbers + sorted(labels - set(numbers))


def describe_labels(label_names: Sequence[str], origin: str) -> str:
    """One line saying how the files' labels map to class ids, for the log and the model card."""
    classes = ", ".join(f"{index} = {name!r}" for index, name in enumerate(label_names))
    how = "a label is the class name" + (", or the class id" if ids_allowed(label_names) else " (never an id)")
    return f"classes from {origin}: {classes}; {how}"


def build_dataset(rows: Iterable[Row], label_names: Sequence[str], *, name: str, unit: str, description: str = "") -> datasets.Dataset:
    """Turn parsed rows into a ``text``/``label`` dataset; malformed rows are skipped and reported in one warning."""
    texts, labels, malformed = [], [], []
    unknown_labels: Counter = Counter()
    total = 0
    for number, text, raw_label in rows:
        total += 1
        if text is None or is_blank(text):
            malformed.append(number)
            continue
        label = label_id(raw_label, label_names)
        if label is None:
            malformed.append(number)
            unknown_labels[label_text(raw_label) if label_text(raw_label) is not None else repr(raw_label)] += 1
            continue
        texts.append(text.strip())
        labels.append(label)
    ids = f"an id 0-{len(label_names) - 1} or " if ids_allowed(label_names) else ""
    expected = f"a non-empty text and a label that is {ids}one of the classes {list(label_names)}"
    if malformed:
        shown = ", ".join(map(str, malformed[:MAX_REPORTED_ROWS])) + (", ..." if len(malformed) > MAX_REPORTED_ROWS else "")
        unknown = f"; labels that are no class: {dict(unknown_labels.most_common(MAX_REPORTED_ROWS))}" if unknown_labels else ""
        logger.warning(
            "%s: skipped %d malformed %ss of %d (expected %s); first %s numbers: %s%s",
            name, len(malformed), unit, total, expected, unit, shown, unknown,
        )
    if not texts:
        raise ValueError(f"{name} holds no valid {unit} (expected {expected})")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(label_names))})
    return datasets.Dataset.from_dict(
        {"text": texts, "label": labels}, info=datasets.DatasetInfo(description=description, features=features)
    )


def report_class_sizes(train: datasets.Dataset, name: str) -> None:
    """Warns about classes with fewer than ``MIN_CLASS_EXAMPLES`` training examples (a typo label makes a class of
    one; a class absent from training can never be learnt)."""
    label_names = train.features["label"].names
    counts = Counter(train["label"][:])
    if len(counts) < 2:
        [only] = counts
        raise ValueError(f"{name}: every training example is of class {label_names[only]!r}: a classifier needs at least 2 classes")
    small = {label_names[index]: counts.get(index, 0) for index in range(len(label_names)) if counts.get(index, 0) < MIN_CLASS_EXAMPLES}
    if small:
        logger.warning(
            "%s: %d of %d classes have fewer than %d training examples (a typo label? a class the training data lacks?): %s",
            name, len(small), len(label_names), MIN_CLASS_EXAMPLES, small,
        )


def text_label_rows(path: Path) -> Iterator[Row]:
    """``text<TAB>label`` lines; the label follows the last tab, so a text may itself contain tabs.

    Invalid UTF-8 is an error naming its line (:func:`recipe_utils.numbered_lines`)."""
    with path.open("rb") as lines:
        for number, line in numbered_lines(lines, str(path)):
            fields = line.rstrip("\r\n").rsplit("\t", 1)
            yield (number, fields[0], fields[1]) if len(fields) == 2 else (number, None, None)


def table_rows(path: Path) -> Iterator[Row]:
    """Records of a CSV/JSON file, read with ``datasets``; it must have ``text`` and ``label`` columns."""
    builder = TABLE_SUFFIXES[path.suffix.lower()]
    # CSV cells are read as written: by default pandas reads an empty cell as NaN and turns the whole label column
    # into floats ("1" -> 1.0), so that every label would look malformed
    options = {"converters": {"text": str, "label": str}, "keep_default_na": False} if builder == "csv" else {}
    table = load_table(path, builder, **options)
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
        first = "train" if "train" in parsed else next(iter(parsed))
        names = infer_label_names(parsed[first][0])
        origin = f"the labels of {files[first].name} (no class names given)"
        if len(names) < 2:
            raise ValueError(f"{files[first]}: every label is {names}: a classifier needs at least 2 classes")
    else:
        names = read_label_names(label_names)
        given = Path(label_names).name if isinstance(label_names, Path) or (isinstance(label_names, str) and "," not in label_names) else label_names
        origin = f"the class names {given if isinstance(given, str) else list(given)}"
    description = describe_labels(names, origin)
    logger.info("%s", description)
    splits = datasets.DatasetDict(
        {
            split: build_dataset(rows, names, name=str(files[split]), unit=unit, description=description)
            for split, (rows, unit) in parsed.items()
        }
    )
    if "train" in splits:
        report_class_sizes(splits["train"], str(files["train"]))
    return splits


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
