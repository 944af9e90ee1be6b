"""What the classification metrics (accuracy, F1) share: their inputs are integer class ids."""

import datasets
import evaluate


def class_id_metric_info(description: str, inputs_description: str) -> evaluate.MetricInfo:
    """``MetricInfo`` of a metric over predicted and true class ids (``int64``), with no citation."""
    return evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description=inputs_description,
        features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
    )
