"""MNIST for the image-classification recipe: the IDX files in ``../shared/data/mnist`` as a ``datasets.Dataset``
(``image``: an ``Image`` feature holding 28x28 grayscale PIL images, ``label``: a ``ClassLabel`` "0".."9"), a
stratified train/test split, and a user's own images in ``imagefolder`` layout.

Only the 10,000-image MNIST *test* set (t10k) ships here, so the recipe splits it itself: 8,000 images to train and
2,000 to test, stratified by digit, with the seed of ``settings/mnist.json``. Figures from this split are NOT
comparable with results on the official 60,000/10,000 split.

Importing: ``recipes/`` is a folder of scripts; a recipe run as ``python recipes/x.py`` has it on ``sys.path``, other
code (tests) puts it there first.
"""

import functools
import gzip
import io
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = json.loads((Path(__file__).resolve().parent / "settings" / "mnist.json").read_text())
DEFAULT_DATA_DIR = REPO_ROOT / SETTINGS["data_dir"]
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: 0x0803 = unsigned bytes in 3 dimensions, 0x0801 = in 1 dimension
DIGITS = [str(digit) for digit in range(10)]
IMAGE_EXTENSIONS = set(ImageFolder.EXTENSIONS)  # what imagefolder reads as images
MAX_REPORTED = 10  # how many bad files an error names


def _read_idx(path: Path, magic: int, dimensions: int) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array; the magic number, the header and the size are checked."""
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found: {path} (give the folder holding mnist/ with --data_dir)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable (gzip) file: {error}") from error
    header_size = 4 + 4 * dimensions
    if len(data) < header_size:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than an IDX header ({header_size} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: magic number {found}, expected {magic} (is this the right IDX file?)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def load_mnist(data_dir: str | Path = DEFAULT_DATA_DIR) -> datasets.Dataset:
    """The 10,000 images of ``mnist/t10k-*`` under ``data_dir`` in file order (white digits on black, 0..255).
    Read once per process and folder (building the dataset encodes 10,000 PNGs); datasets are immutable, so sharing
    the object is safe."""
    return _load_mnist(Path(data_dir).resolve())


@functools.cache
def _load_mnist(data_dir: Path) -> datasets.Dataset:
    images = _read_idx(data_dir / SETTINGS["images_file"], IMAGES_MAGIC, 3)
    labels = _read_idx(data_dir / SETTINGS["labels_file"], LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} MNIST images but {len(labels)} labels")
    if labels.max(initial=0) > 9:
        raise ValueError(f"MNIST labels must be digits 0..9, found {labels.max()}")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=DIGITS)})
    return datasets.Dataset.from_dict(
        {"image": [PIL.Image.fromarray(image, mode="L") for image in images], "label": labels.tolist()},
        features=features,
    )


def split_mnist(
    dataset: datasets.Dataset,
    train_size: int = SETTINGS["train_size"],
    test_size: int = SETTINGS["test_size"],
    seed: int = SETTINGS["seed"],
) -> datasets.DatasetDict:
    """A stratified split: every digit keeps its share in both parts."""
    if train_size + test_size > len(dataset):
        raise ValueError(f"train_size {train_size} + test_size {test_size} exceed the {len(dataset)} images")
    splits = dataset.train_test_split(
        train_size=train_size, test_size=test_size, stratify_by_column="label", seed=seed
    )
    return datasets.DatasetDict({"train": splits["train"], "test": splits["test"]})


def load_image_folders(train_dir: str | None, validation_dir: str | None, test_dir: str | None = None) -> datasets.DatasetDict:
    """User images in ``imagefolder`` layout (``DIR/<class name>/<image>``); every folder must hold the same classes.

    Every image is decoded once here, before any training starts: a truncated or corrupt file would otherwise stop a
    run mid-epoch with PIL's ``image file is truncated`` and no file name. Bad files are listed in one error."""
    splits = {}
    for name, folder in (("train", train_dir), ("validation", validation_dir), ("test", test_dir)):
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--{name}_dir {folder} is not a folder")
        stray = sorted(path.name for path in Path(folder).iterdir() if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS)
        if stray:
            raise ValueError(
                f"--{name}_dir {folder}: {len(stray)} image(s) lie directly in the folder ({', '.join(stray[:MAX_REPORTED])}"
                f"{', ...' if len(stray) > MAX_REPORTED else ''}), outside the class sub-folders; imagefolder then reads "
                f"no labels at all. Move them into {folder}/<class>/ or out of the folder"
            )
        splits[name] = datasets.load_dataset("imagefolder", data_dir=folder, split="train")
        if "label" not in splits[name].features:
            raise ValueError(f"--{name}_dir {folder}: no class sub-folders found (expected {folder}/<class>/<image>)")
        verify_images(splits[name], f"--{name}_dir {folder}")
    if not splits:
        raise ValueError("give at least one of --train_dir, --validation_dir, --test_dir")
    names = {name: split.features["label"].names for name, split in splits.items()}
    first = next(iter(names.values()))
    for name, classes in names.items():
        if classes != first:
            raise ValueError(f"the {name} folder has classes {classes}, another folder has {first}: they must match")
    return datasets.DatasetDict(splits)


def verify_images(split: datasets.Dataset, source: str) -> None:
    """Decodes every image of ``split``; raises ``ValueError`` naming each file that fails (and why)."""
    bad = []
    for number, item in enumerate(split.cast_column("image", datasets.Image(decode=False))["image"]):
        name = item["path"] or f"image {number}"
        try:
            with PIL.Image.open(io.BytesIO(item["bytes"]) if item["bytes"] else item["path"]) as image:
                image.load()
        except (OSError, PIL.UnidentifiedImageError, SyntaxError, ValueError) as error:
            bad.append(f"{name} ({error})")
    if bad:
        raise ValueError(
            f"{source}: {len(bad)} of {len(split)} images cannot be decoded (truncated or corrupt); remove or replace "
            f"them: {'; '.join(bad[:MAX_REPORTED])}{'; ...' if len(bad) > MAX_REPORTED else ''}"
        )
