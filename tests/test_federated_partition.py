"""The federated partitioners: seeded, disjoint, complete; Dirichlet skew grows as alpha shrinks; impossible
partitions are refused with a clear message."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes" / "federated"))  # the Flower App's folder

from federated_partition import (  # noqa: E402
    dirichlet_partition,
    iid_partition,
    partition_labels,
    partition_summary,
    write_partition,
)

LABELS = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])  # 950 examples, unbalanced


def assert_exact_cover(partition: list[np.ndarray], num_examples: int) -> None:
    """Every example in exactly one client, none lost, none invented."""
    everything = np.concatenate(partition)
    assert len(everything) == num_examples
    assert np.array_equal(np.sort(everything), np.arange(num_examples))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 5.0])
def test_dirichlet_partition_is_reproducible_and_covers_every_example_once(alpha):
    first = dirichlet_partition(LABELS, num_clients=7, alpha=alpha, seed=3)
    again = dirichlet_partition(LABELS, num_clients=7, alpha=alpha, seed=3)
    other = dirichlet_partition(LABELS, num_clients=7, alpha=alpha, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(first, other))
    assert_exact_cover(first, len(LABELS))
    assert min(len(part) for part in first) >= 1


def test_small_alpha_skews_the_labels_and_iid_does_not():
    overall = np.bincount(LABELS) / len(LABELS)

    def mean_distance(partition):  # total variation between a client's label distribution and the overall one
        return np.mean([0.5 * np.abs(np.bincount(LABELS[p], minlength=10) / len(p) - overall).sum() for p in partition])

    skewed = mean_distance(dirichlet_partition(LABELS, 10, alpha=0.1, seed=0))
    mild = mean_distance(dirichlet_partition(LABELS, 10, alpha=100.0, seed=0))
    iid = mean_distance(iid_partition(len(LABELS), 10, seed=0))
    assert skewed > 0.5 and mild < 0.2 and iid < 0.2, (skewed, mild, iid)


def test_iid_partition_has_equal_sizes_and_covers_every_example_once():
    partition = partition_labels(LABELS, num_clients=6, alpha=None, seed=1)
    assert_exact_cover(partition, len(LABELS))
    assert {len(part) for part in partition} <= {158, 159}
    assert all(np.array_equal(a, b) for a, b in zip(partition, iid_partition(len(LABELS), 6, seed=1)))


def test_minimum_partition_size_is_met_by_redrawing():
    partition = dirichlet_partition(LABELS, num_clients=20, alpha=0.1, seed=0, min_partition_size=15)
    assert min(len(part) for part in partition) >= 15
    assert_exact_cover(partition, len(LABELS))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "--alpha must be > 0"),
        ({"alpha": -1.0}, "--alpha must be > 0"),
        ({"num_clients": 951}, "more than the 950 training examples"),
        ({"num_clients": 0}, "--num_clients must be >= 1"),
        ({"num_clients": 10, "min_partition_size": 100}, "more than the 950 training examples"),
    ],
)
def test_impossible_partitions_are_refused(kwargs, message):
    arguments = {"labels": LABELS, "num_clients": 5, "alpha": 0.5, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        partition_labels(**arguments)


def test_summary_and_picture(tmp_path):
    names = [f"c{index}" for index in range(10)]
    partition = dirichlet_partition(LABELS, 4, alpha=0.5, seed=2)
    summary = partition_summary(partition, LABELS, names)
    assert sorted(summary) == ["0", "1", "2", "3"]
    for client, part in enumerate(partition):
        entry = summary[str(client)]
        assert entry["count"] == len(part) == sum(entry["label_histogram"].values())
        assert entry["label_histogram"] == dict(zip(names, np.bincount(LABELS[part], minlength=10).tolist()))
    write_partition(summary, "4 clients, alpha 0.5", tmp_path)
    assert json.loads((tmp_path / "partition.json").read_text()) == summary
    with Image.open(tmp_path / "partition.png") as image:
        assert image.format == "PNG" and min(image.size) > 200
