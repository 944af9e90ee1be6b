"""Small helpers shared by the training recipes (``recipes/`` is a script folder: import as ``from recipe_utils import``)."""

import datasets


def limit(dataset: datasets.Dataset | None, count: int | None) -> datasets.Dataset | None:
    """The first ``count`` rows of ``dataset`` (all of them when ``count`` is None or 0; None stays None), for the
    recipes' ``--max_train_samples`` / ``--max_eval_samples`` / ``--max_test_samples``."""
    return dataset.select(range(min(count, len(dataset)))) if dataset is not None and count else dataset
