"""Corpus BLEU (Papineni et al., 2002) computed by sacreBLEU, as an ``evaluate`` module that needs no Hub access.

``evaluate.load("sacrebleu")`` downloads its script from the Hub; this file is the offline replacement, loaded with
``evaluate.load("/path/to/bleu.py")`` (or ``hf_models.metrics.load_metric("bleu")``). Scores are sacreBLEU's, so
they are comparable with published numbers that give the same tokenizer: ``tokenize="zh"`` for Chinese targets
(every Chinese character is a word), the default ``"13a"`` for English and other space-separated languages.

The tokenizer can also be fixed when loading, as the module's configuration: ``evaluate.load(path, config_name="zh")``.
That is the way to use it inside ``evaluate.combine``, which hands every compute argument to every module.
"""

import evaluate
import sacrebleu

from .references import reference_streams, sacrebleu_metric_info

_CITATION = """\
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}
"""

_INPUTS = """
Args:
    predictions (`list[str]`): one system output per sentence, detokenized.
    references (`list[str]` or `list[list[str]]`): one reference per sentence, or the same number of references
        for every sentence.
    tokenize (`str`): sacreBLEU tokenizer: "13a", "zh", "intl", "char", "none", ...; defaults to the module's
        config_name, or "13a" when loaded without one.
    lowercase (`bool`): compare lowercased text.
Returns:
    score (BLEU, 0-100), counts, totals, precisions (n-gram matches, candidates and precisions for n = 1..4),
    bp (brevity penalty), sys_len, ref_len.
"""


class Bleu(evaluate.Metric):
    def _info(self):
        return sacrebleu_metric_info(__doc__, _CITATION, _INPUTS)

    def _compute(self, predictions, references, tokenize=None, lowercase=False):
        if tokenize is None:
            tokenize = "13a" if self.config_name == "default" else self.config_name
        if tokenize not in sacrebleu.BLEU.TOKENIZERS:
            raise ValueError(f"unknown sacreBLEU tokenizer {tokenize!r}; choose one of {', '.join(sacrebleu.BLEU.TOKENIZERS)}")
        bleu = sacrebleu.corpus_bleu(predictions, reference_streams(references), tokenize=tokenize, lowercase=lowercase)
        return {
            "score": bleu.score,
            "counts": bleu.counts,
            "totals": bleu.totals,
            "precisions": bleu.precisions,
            "bp": bleu.bp,
            "sys_len": bleu.sys_len,
            "ref_len": bleu.ref_len,
        }
