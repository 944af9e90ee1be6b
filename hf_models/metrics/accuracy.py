"""Accuracy, the fraction of predictions equal to their reference, as an ``evaluate`` module that needs no Hub."""

import evaluate
import numpy as np

from .class_ids import class_id_metric_info

_INPUTS = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
Returns:
    accuracy (0-1).
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return class_id_metric_info(__doc__, _INPUTS)

    def _compute(self, predictions, references):
        return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(references)))}
