"""English→Chinese parallel data for the translation recipes: Tatoeba loading, text normalisation, a leak-free split,
and loading of a user's own parallel files.

Every dataset built here has a ``translation`` column of ``{"en": ..., "zh": ...}`` pairs, the format of transformers'
``run_translation`` example, so its preprocessing carries over.

Importing: ``recipes/`` is a folder of scripts, not a package. A script run as ``python recipes/x.py`` (or with
``accelerate launch recipes/x.py``) has ``recipes/`` on ``sys.path`` already and simply does
``from translation_data import ...``; other code (tests) puts ``recipes/`` on ``sys.path`` first.

Defaults (data folder, split sizes, seed, normalisation) come from ``settings/translation_data.json``, the one place a
published result's data setup is written down.
"""

import functools
import json
import logging
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
import numpy as np
import opencc
from recipe_utils import is_blank, load_table, numbered_lines

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = json.loads((Path(__file__).resolve().parent / "settings" / "translation_data.json").read_text())
DEFAULT_DATA_DIR = REPO_ROOT / SETTINGS["data_dir"]  # the settings file gives it relative to the repository root

TATOEBA_ZIP = Path("tatoeba_cmn_eng") / "cmn-eng.zip"
TATOEBA_MEMBER = "cmn.txt"
JSON_SUFFIXES = (".json", ".jsonl")
TSV_SUFFIXES = (".tsv", ".txt")
MAX_REPORTED_ROWS = 5  # how many malformed line/record numbers a warning quotes


@functools.cache
def _opencc(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def to_simplified(text: str, config: str = "t2s") -> str:
    """Convert Chinese text to Simplified characters with OpenCC.

    Tatoeba mixes Traditional and Simplified sentences (``瑪麗`` beside ``玛丽``); one script halves what the model
    must learn and makes BLEU against Simplified references meaningful. ``config`` is any OpenCC configuration
    (``"t2s"``, ``"tw2s"``, ``"hk2s"``, ...).
    """
    return _opencc(config).convert(text)


def is_chinese(language: str) -> bool:
    return language == "zh" or language.startswith(("zh-", "zh_"))


def normalize_pair(
    pair: dict[str, str],
    *,
    normalize_chinese: str | None = SETTINGS["normalize_chinese"],
    unicode_normalization: str | None = SETTINGS["unicode_normalization"],
) -> dict[str, str]:
    """Strip, Unicode-normalise every side and convert the Chinese side(s) with OpenCC.

    The tokenizer normalises its input with NFKC (fullwidth ``？！，`` become ``?!,``), so a model can only ever
    produce NFKC text; references normalised the same way keep BLEU from penalising every fullwidth comma.
    Tatoeba itself mixes both forms (``？`` 4454 times, ``?`` 549 times on the Chinese side).
    """
    normalized = {}
    for language, text in pair.items():
        text = text.strip()
        if unicode_normalization:
            text = unicodedata.normalize(unicode_normalization, text)
        if normalize_chinese and is_chinese(language):
            text = to_simplified(text, normalize_chinese)
        normalized[language] = text
    return normalized


def _build_dataset(
    rows: Iterable[tuple[int, dict[str, str] | None, dict]],
    *,
    name: str,
    languages: tuple[str, str],
    expected: str,
    unit: str,
    normalize_chinese: str | None,
    unicode_normalization: str | None,
) -> datasets.Dataset:
    """Turn ``(row number, pair or None, other columns)`` rows into a dataset.

    A row without a pair, or with an empty side, is skipped and counted; the count and the first row numbers go
    into ONE warning, so a damaged corpus is noticed without flooding the log.
    """
    columns = defaultdict(list)
    malformed = []
    for number, pair, other_columns in rows:
        if pair is None or any(is_blank(pair[language]) for language in languages):
            malformed.append(number)
            continue
        columns["translation"].append(
            normalize_pair(
                {language: pair[language] for language in languages},
                normalize_chinese=normalize_chinese,
                unicode_normalization=unicode_normalization,
            )
        )
        for key, value in other_columns.items():
            columns[key].append(value)
    if malformed:
        shown = ", ".join(map(str, malformed[:MAX_REPORTED_ROWS])) + (", ..." if len(malformed) > MAX_REPORTED_ROWS else "")
        logger.warning(
            "Skipped %d malformed %ss of %s (expected %s); first %s numbers: %s",
            len(malformed), unit, name, expected, unit, shown,
        )
    if not columns:
        raise ValueError(f"{name} holds no valid {unit} (expected {expected})")
    return datasets.Dataset.from_dict(dict(columns))


def _tsv_rows(
    lines: Iterable[bytes], name: str, languages: tuple[str, str], *, third_column: str | None
) -> Iterator[tuple[int, dict | None, dict]]:
    """Parse ``source<TAB>target[<TAB>rest]`` lines; ``third_column`` names a required third field to keep. Invalid
    UTF-8 is an error naming its line (:func:`recipe_utils.numbered_lines`)."""
    for number, line in numbered_lines(lines, name):
        fields = line.rstrip("\r\n").split("\t", 2)
        rest = fields[2].strip() if len(fields) == 3 else ""
        if len(fields) < 2 or (third_column and not rest):
            yield number, None, {}
        else:
            yield number, dict(zip(languages, fields[:2])), {third_column: rest} if third_column else {}


def _tsv_file_rows(path: Path, languages: tuple[str, str]) -> Iterator[tuple[int, dict | None, dict]]:
    with path.open("rb") as lines:
        yield from _tsv_rows(lines, str(path), languages, third_column=None)


def load_tatoeba(
    data_dir: str | Path = DEFAULT_DATA_DIR,
    *,
    normalize_chinese: str | None = SETTINGS["normalize_chinese"],
    unicode_normalization: str | None = SETTINGS["unicode_normalization"],
) -> datasets.Dataset:
    """Read the Tatoeba English–Chinese pairs straight out of ``<data_dir>/tatoeba_cmn_eng/cmn-eng.zip``.

    Each line of ``cmn.txt`` is ``English<TAB>Chinese<TAB>attribution``. The attribution column is kept because
    the pairs are CC-BY: whoever redistributes them must credit the authors. Lines lacking a side or the
    attribution are skipped and counted (see ``_build_dataset``). Pass ``normalize_chinese=None`` to keep
    Tatoeba's Traditional/Simplified mix, ``unicode_normalization=None`` to keep fullwidth forms.
    """
    path = Path(data_dir) / TATOEBA_ZIP
    if not path.is_file():
        raise FileNotFoundError(f"Tatoeba archive not found: {path}. Point --data_dir at the folder holding {TATOEBA_ZIP}.")
    name = f"{path}:{TATOEBA_MEMBER}"
    with zipfile.ZipFile(path) as archive:
        if TATOEBA_MEMBER not in archive.namelist():
            raise FileNotFoundError(f"{path} has no member {TATOEBA_MEMBER} (it holds {archive.namelist()})")
        with archive.open(TATOEBA_MEMBER) as lines:
            return _build_dataset(
                _tsv_rows(lines, name, ("en", "zh"), third_column="attribution"),
                name=name,
                languages=("en", "zh"),
                expected="'English<TAB>Chinese<TAB>attribution', every field non-empty",
                unit="line",
                normalize_chinese=normalize_chinese,
                unicode_normalization=unicode_normalization,
            )


def split_translation_dataset(
    dataset: datasets.Dataset,
    *,
    test_size: int = SETTINGS["test_size"],
    validation_size: int = SETTINGS["validation_size"],
    seed: int = SETTINGS["seed"],
    source_lang: str = "en",
) -> datasets.DatasetDict:
    """Split into train/validation/test with no source sentence in two splits, and exact eval sizes.

    Tatoeba often gives one English sentence several Chinese translations. Splitting pairs at random would put
    ``"Goodbye!" → 再见!`` in train and ``"Goodbye!" → 告辞!`` in test, so test BLEU would reward memorising.
    Pairs are therefore grouped by their exact source text, and whole groups are dealt out in a seeded random
    order: a group goes to test if it fits in what test still lacks, else to validation if it fits there, else to
    train. Because most groups are single pairs, test and validation end up with exactly the requested number of
    PAIRS while a source with several translations keeps all of them in one split (a multi-reference sentence in
    test stays a fair test). Rows keep their original order inside each split.
    """
    groups: dict[str, list[int]] = {}
    for index, pair in enumerate(dataset["translation"][:]):  # [:] reads the column at once, not row by row
        groups.setdefault(pair[source_lang], []).append(index)
    group_list = list(groups.values())
    wanted = {"test": test_size, "validation": validation_size}
    chosen = {"test": [], "validation": [], "train": []}
    for position in np.random.default_rng(seed).permutation(len(group_list)):
        indices = group_list[position]
        split = next((s for s in ("test", "validation") if len(chosen[s]) + len(indices) <= wanted[s]), "train")
        chosen[split].extend(indices)
    for split, size in wanted.items():
        if len(chosen[split]) != size:
            raise ValueError(
                f"cannot fill the {split} split with exactly {size} pairs from {len(dataset)} pairs "
                f"in {len(group_list)} source groups (got {len(chosen[split])})"
            )
    return datasets.DatasetDict({split: dataset.select(sorted(chosen[split])) for split in ("train", "validation", "test")})


def _json_rows(path: Path, languages: tuple[str, str]) -> Iterator[tuple[int, dict, dict]]:
    """Records of a JSON (lines) file; a record without a text ``translation.<language>`` is an error, not a skip."""
    for number, record in enumerate(load_table(path, "json"), start=1):
        pair = record.pop("translation", None)
        if not isinstance(pair, dict):
            raise ValueError(
                f"{path}: every record needs a 'translation' object like "
                f'{{"{languages[0]}": ..., "{languages[1]}": ...}}; record {number} has fields {sorted(record)}'
            )
        for language in languages:
            if not isinstance(pair.get(language), str):
                raise ValueError(f"{path}: record {number} has no text field 'translation.{language}' (found {pair})")
        yield number, pair, record


def load_parallel_files(
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    test_file: str | Path | None = None,
    source_lang: str = "en",
    target_lang: str = "zh",
    *,
    normalize_chinese: str | None = SETTINGS["normalize_chinese"],
    unicode_normalization: str | None = SETTINGS["unicode_normalization"],
) -> datasets.DatasetDict:
    """Load a user's parallel corpus, one file per split, like transformers' ``run_translation`` example.

    ``.json``/``.jsonl``: records ``{"translation": {"en": ..., "zh": ...}}`` (other fields are kept as columns).
    ``.tsv``/``.txt``: lines ``source<TAB>target[<TAB>anything]``; the third field is ignored.
    Pairs with an empty side (and TSV lines without a TAB) are skipped and counted; the same normalisation as
    ``load_tatoeba`` is applied, the OpenCC conversion to the side whose language code is ``zh``/``zh-*``.
    """
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {split: Path(file) for split, file in files.items() if file is not None}
    if not files:
        raise ValueError("give at least one of train_file, validation_file, test_file")
    languages = (source_lang, target_lang)
    splits = {}
    for split, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{split} file not found: {path}")
        suffix = path.suffix.lower()
        if suffix in JSON_SUFFIXES:
            rows = _json_rows(path, languages)
            expected, unit = f"non-empty 'translation.{source_lang}' and 'translation.{target_lang}'", "record"
        elif suffix in TSV_SUFFIXES:
            rows = _tsv_file_rows(path, languages)
            expected, unit = f"'{source_lang}<TAB>{target_lang}[<TAB>anything]', both sides non-empty", "line"
        else:
            raise ValueError(
                f"{split} file {path}: unsupported extension {path.suffix!r}; use one of {JSON_SUFFIXES + TSV_SUFFIXES}"
            )
        splits[split] = _build_dataset(
            rows,
            name=str(path),
            languages=languages,
            expected=expected,
            unit=unit,
            normalize_chinese=normalize_chinese,
            unicode_normalization=unicode_normalization,
        )
    return datasets.DatasetDict(splits)
