"""Which training examples each federated client holds: IID, or non-IID by label with Dirichlet(alpha) proportions.

flwr-datasets has both partitioners, but its 0.6.1 cannot share a venv with ``datasets>=5`` (pip finds no resolution),
so the two are written here. A partition is a function of (labels, number of clients, alpha, seed) alone: the
ServerApp and every ClientApp compute the same one without exchanging it, and a run is reproducible from its seed.
"""

import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def check_partition_arguments(num_examples: int, num_clients: int, alpha: float | None, min_partition_size: int = 1) -> None:
    """Clear errors for impossible partitions, before any client starts."""
    if num_clients < 1:
        raise ValueError(f"--num_clients must be >= 1, got {num_clients}")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"--alpha must be > 0 (Dirichlet concentration; omit it for an IID partition), got {alpha}")
    if min_partition_size < 1:
        raise ValueError(f"--min_partition_size must be >= 1, got {min_partition_size}")
    if num_clients * min_partition_size > num_examples:
        raise ValueError(
            f"--num_clients {num_clients} x --min_partition_size {min_partition_size} is more than the {num_examples} "
            "training examples: some clients would hold no data"
        )


def iid_partition(num_examples: int, num_clients: int, seed: int) -> list[np.ndarray]:
    """A random permutation of the example indices cut into ``num_clients`` parts whose sizes differ by at most one."""
    check_partition_arguments(num_examples, num_clients, None)
    order = np.random.default_rng(seed).permutation(num_examples)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int, min_partition_size: int = 1, max_tries: int = 100
) -> list[np.ndarray]:
    """Label-skewed partition (Hsu et al. 2019, "Measuring the effects of non-identical data distribution"): for every
    class, client proportions are drawn from Dirichlet(alpha, ..., alpha) and the class's shuffled examples are cut
    in those proportions. Small alpha (0.1) gives most clients a few classes; large alpha approaches IID.

    Draws are repeated (same seeded generator) until every client holds at least ``min_partition_size`` examples, as
    flwr-datasets' DirichletPartitioner does; after ``max_tries`` draws it is an error naming the smallest client."""
    labels = np.asarray(labels)
    check_partition_arguments(len(labels), num_clients, alpha, min_partition_size)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for label in classes:
            members = rng.permutation(np.flatnonzero(labels == label))
            proportions = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(int)
            for client, share in enumerate(np.split(members, cuts)):
                parts[client].append(share)
        partition = [np.sort(np.concatenate(part)) for part in parts]
        sizes = [len(part) for part in partition]
        if min(sizes) >= min_partition_size:
            return partition
    raise ValueError(
        f"no Dirichlet(alpha={alpha}) partition of {len(labels)} examples over {num_clients} clients gave every client "
        f">= {min_partition_size} examples in {max_tries} draws (smallest last time: {min(sizes)}); use fewer clients, a "
        "larger alpha or a smaller --min_partition_size"
    )


def partition_labels(
    labels: np.ndarray, num_clients: int, alpha: float | None, seed: int, min_partition_size: int = 1
) -> list[np.ndarray]:
    """IID when ``alpha`` is None, else Dirichlet(alpha) by label; a list of sorted index arrays, one per client."""
    if alpha is None:
        check_partition_arguments(len(labels), num_clients, None, min_partition_size)
        return iid_partition(len(labels), num_clients, seed)
    return dirichlet_partition(labels, num_clients, alpha, seed, min_partition_size)


def partition_summary(partition: list[np.ndarray], labels: np.ndarray, label_names: list[str]) -> dict:
    """Client id -> example count and label histogram (every class listed, zeros included)."""
    labels = np.asarray(labels)
    return {
        str(client): {
            "count": int(len(indices)),
            "label_histogram": dict(zip(label_names, np.bincount(labels[indices], minlength=len(label_names)).tolist())),
        }
        for client, indices in enumerate(partition)
    }


def write_partition(summary: dict, title: str, output_dir: str | Path) -> None:
    """``partition.json`` (the summary) and ``partition.png``: one stacked bar per client, a colour per class."""
    output_dir = Path(output_dir)
    (output_dir / "partition.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    clients = list(summary)
    label_names = list(next(iter(summary.values()))["label_histogram"])
    counts = np.array([[summary[client]["label_histogram"][name] for name in label_names] for client in clients])
    figure, axes = plt.subplots(figsize=(max(5.0, 0.45 * len(clients) + 2), 3.8))
    colours = plt.get_cmap("tab10" if len(label_names) <= 10 else "tab20")
    bottom = np.zeros(len(clients))
    for index, name in enumerate(label_names):
        axes.bar(range(len(clients)), counts[:, index], bottom=bottom, color=colours(index % colours.N), label=f"class {index}")
        bottom += counts[:, index]
    axes.set_xticks(range(len(clients)), clients, fontsize=8 if len(clients) <= 30 else 5)
    axes.set_xlabel("client (partition id)")
    axes.set_ylabel("training examples")
    axes.set_title(title)
    axes.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    figure.tight_layout()
    figure.savefig(output_dir / "partition.png", dpi=110)
    plt.close(figure)
