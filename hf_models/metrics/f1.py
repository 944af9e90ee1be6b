"""Macro-averaged F1 for single-label classification, as an ``evaluate`` module that needs no Hub access.

Macro-F1 is the unweighted mean of the per-class F1 scores, so every class counts the same however rare it is.
The classes averaged over are those present in the predictions or the references (as scikit-learn does); a
class with no true and no predicted example would be 0/0 and is left out rather than guessed.
"""

import evaluate
import numpy as np

from .class_ids import class_id_metric_info

_INPUTS = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
Returns:
    f1 (macro-averaged F1, 0-1).
"""


class F1(evaluate.Metric):
    def _info(self):
        return class_id_metric_info(__doc__, _INPUTS)

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        classes = np.union1d(predictions, references)
        true_positives = np.array([np.sum((predictions == c) & (references == c)) for c in classes])
        predicted = np.array([np.sum(predictions == c) for c in classes])
        actual = np.array([np.sum(references == c) for c in classes])
        # F1 = 2TP / (2TP + FP + FN) = 2TP / (predicted + actual); a class seen at all has predicted + actual > 0.
        return {"f1": float(np.mean(2 * true_positives / (predicted + actual)))}
