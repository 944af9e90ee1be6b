"""Reference handling shared by the sacreBLEU-based metrics (BLEU, chrF)."""


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
