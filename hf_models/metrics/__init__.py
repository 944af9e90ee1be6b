"""Evaluation metrics that work offline.

``evaluate.load("sacrebleu")`` and ``evaluate.load("accuracy")`` fetch their scripts from the Hugging Face Hub. The
modules in this folder are local ``evaluate.Metric`` scripts instead: ``load_metric(name)`` loads one by its
file path, and the result works with ``evaluate.combine`` like any Hub metric.
"""

from pathlib import Path

import evaluate

METRICS = ("bleu", "chrf", "accuracy", "f1")


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """Load the offline metric ``name`` (one of ``METRICS``); ``kwargs`` go to ``evaluate.load``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; the offline metrics are {', '.join(METRICS)}")
    return evaluate.load(str(Path(__file__).resolve().parent / f"{name}.py"), **kwargs)
