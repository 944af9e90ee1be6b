"""chrF (Popović, 2015) and chrF++ computed by sacreBLEU, as an ``evaluate`` module that needs no Hub access.

A character n-gram F-score: unlike BLEU it needs no word segmentation, which suits Chinese targets, and it gives
partial credit for partly right words. ``word_order=2`` gives chrF++.
"""

import evaluate
from sacrebleu.metrics import CHRF

from .references import reference_streams, sacrebleu_metric_info

_CITATION = """\
@inproceedings{popovic-2015-chrf,
    title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
    year = "2015",
    pages = "392--395",
}
"""

_INPUTS = """
Args:
    predictions (`list[str]`): one system output per sentence.
    references (`list[str]` or `list[list[str]]`): one reference per sentence, or the same number of references
        for every sentence.
    char_order (`int`): longest character n-gram (6).
    word_order (`int`): longest word n-gram (0 = chrF, 2 = chrF++).
    beta (`int`): weight of recall against precision (2).
    lowercase (`bool`): compare lowercased text.
Returns:
    score (0-100), char_order, word_order, beta.
"""


class Chrf(evaluate.Metric):
    def _info(self):
        return sacrebleu_metric_info(__doc__, _CITATION, _INPUTS)

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2, lowercase=False):
        chrf = CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase)
        return {
            "score": chrf.corpus_score(predictions, reference_streams(references)).score,
            "char_order": char_order,
            "word_order": word_order,
            "beta": beta,
        }
