"""What the sacreBLEU-based metrics (BLEU, chrF) share: their inputs' features and reference handling."""

import datasets
import evaluate


def sacrebleu_metric_info(description: str, citation: str, inputs_description: str) -> evaluate.MetricInfo:
    """``MetricInfo`` of a sacreBLEU metric: string predictions, one string reference or a list of them each."""
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs_description,
        features=[
            datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
            datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        ],
        reference_urls=["https://github.com/mjpost/sacrebleu"],
    )


def reference_streams(references: list) -> list[list[str]]:
    """Turn per-sentence references (``str`` or ``list[str]``) into sacreBLEU's streams.

    sacreBLEU wants one stream per reference position, ``streams[j][i]`` being the j-th reference of sentence i, so
    every sentence must have the same number of references.
    """
    references = [[reference] if isinstance(reference, str) else reference for reference in references]
    reference_counts = {len(sentence_references) for sentence_references in references}
    if len(reference_counts) != 1:
        raise ValueError(f"every prediction needs the same number of references, got counts {sorted(reference_counts)}")
    return [list(stream) for stream in zip(*references)]
