"""MNIST loading: IDX headers checked with clear errors, the Image/ClassLabel dataset, the stratified split."""

import gzip
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
from mnist_data import DEFAULT_DATA_DIR, SETTINGS, load_image_folders, load_mnist, split_mnist  # noqa: E402

LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # t10k, from shared/data/README.md


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(DEFAULT_DATA_DIR)


def test_mnist_has_10000_grayscale_digits(mnist):
    assert len(mnist) == 10_000
    assert mnist.features["label"].names == [str(d) for d in range(10)]
    first = mnist[0]["image"]
    assert first.mode == "L" and first.size == (28, 28)
    assert [count for _, count in sorted(Counter(mnist["label"]).items())] == LABEL_COUNTS


def test_split_is_stratified_and_reproducible(mnist):
    splits = split_mnist(mnist)
    assert (len(splits["train"]), len(splits["test"])) == (SETTINGS["train_size"], SETTINGS["test_size"]) == (8000, 2000)
    test_counts = Counter(splits["test"]["label"])
    for digit, total in enumerate(LABEL_COUNTS):
        assert abs(test_counts[digit] - total * 0.2) <= 1  # every digit keeps its share
    again = split_mnist(mnist)
    assert again["test"]["label"][:] == splits["test"]["label"][:]


def write_idx(path: Path, magic: int, shape: tuple, payload_bytes: int | None = None) -> None:
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape)
    size = int(np.prod(shape)) if payload_bytes is None else payload_bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(header + bytes(size))


@pytest.mark.parametrize(
    "images, labels, message",
    [
        ((2049, (3, 28, 28), None), (2049, (3,), None), "magic number 2049, expected 2051"),
        ((2051, (3, 28, 28), 100), (2049, (3,), None), r"header says shape \(3, 28, 28\)"),
        ((2051, (3, 28, 28), None), (2049, (4,), None), "3 MNIST images but 4 labels"),
    ],
)
def test_malformed_idx_files_fail_clearly(tmp_path, images, labels, message):
    write_idx(tmp_path / SETTINGS["images_file"], images[0], images[1], images[2])
    write_idx(tmp_path / SETTINGS["labels_file"], labels[0], labels[1], labels[2])
    with pytest.raises(ValueError, match=message):
        load_mnist(tmp_path)


def test_missing_files_and_folders_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="--train_dir"):
        load_image_folders(str(tmp_path / "nope"), None)
