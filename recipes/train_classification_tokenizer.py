"""Train the tokenizer of the Chinese headline classifier (THUCNews) with ``tokenizers``.

Run from the repository root:

    python recipes/train_classification_tokenizer.py --data_dir ../shared/data --output_dir tokenizer_data/thucnews
    python recipes/train_classification_tokenizer.py --train_file my_train.txt --output_dir my_tokenizer

Defaults come from ``settings/tokenizer_thucnews.json``. The tokenizer sees the TRAINING split only and prints
measured statistics on the validation split as JSON.

Design:
- Normalisation: NFKC (fullwidth ``：（１`` become ``:(1``) and lowercasing (``iPhone``/``IPHONE`` are one word).
- Pre-tokenisation: whitespace separates pieces and is dropped; runs of Chinese (Han) characters, runs of Latin
  letters, single digits and single punctuation marks are the pre-tokens, so no token crosses a script boundary.
- BPE on those pre-tokens: every character seen in training is a token (Chinese stays readable at character level),
  and the ``vocab_size`` budget left after the characters goes to merges, i.e. frequent multi-character Chinese
  pieces (``基金``, ``房价``) and Latin subwords (``iphone``), at most ``max_token_length`` characters long and seen
  at least ``min_frequency`` times. A ``vocab_size`` no larger than the character count gives pure characters.
- Digits are single tokens (years and prices would otherwise fill the vocabulary with rare numbers).
- Unseen characters (an emoji, a rare Han character) become ``[UNK]``.
- Special tokens ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3; a text is encoded as ``[CLS] text [SEP]`` (a
  pair as ``[CLS] a [SEP] b [SEP]``), so a classifier can pool the ``[CLS]`` state. Decoding concatenates the pieces
  (whitespace is not kept).
"""

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from recipe_utils import parse_tokenizer_arguments, save_tokenizer_with_stats, wrap_trained_tokenizer
from thucnews_data import DEFAULT_DATA_DIR, REPO_ROOT, load_classification_files, load_thucnews

SETTINGS = json.loads((Path(__file__).resolve().parent / "settings" / "tokenizer_thucnews.json").read_text())

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP]  # ids 0, 1, 2, 3
HAN_RUN = Regex(r"\p{Han}+")


def is_chinese_character(character: str) -> bool:
    """CJK Unified Ideographs and Extension A, where virtually every character of Chinese news text lies."""
    return "\u4e00" <= character <= "\u9fff" or "\u3400" <= character <= "\u4dbf"


def train_classification_tokenizer(
    texts: Iterable[str],
    vocab_size: int = SETTINGS["vocab_size"],
    min_frequency: int = SETTINGS["min_frequency"],
    max_token_length: int = SETTINGS["max_token_length"],
    model_max_length: int = SETTINGS["model_max_length"],
) -> PreTrainedTokenizerFast:
    """Train on ``texts`` (the training split) and wrap the result for transformers.

    Deterministic: the same texts in the same order give a byte-identical ``tokenizer.json``.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(HAN_RUN, behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        max_token_length=max_token_length,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.decoder = decoders.Fuse()
    cls_id, sep_id = SPECIAL_TOKENS.index(CLS), SPECIAL_TOKENS.index(SEP)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B {SEP}", special_tokens=[(CLS, cls_id), (SEP, sep_id)]
    )
    return wrap_trained_tokenizer(
        tokenizer, model_max_length, pad_token=PAD, unk_token=UNK, cls_token=CLS, sep_token=SEP, truncation_side="right"
    )


def tokenizer_stats(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> dict:
    """Tokens per text (without [CLS]/[SEP]), [UNK] rate, share of multi-character tokens, texts truncated at
    ``model_max_length``."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    total = sum(map(len, encoded))
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    multi_character = {index for index, token in enumerate(vocab) if token not in SPECIAL_TOKENS and len(token) > 1}
    return {
        "texts": len(texts),
        "mean_tokens": round(total / len(texts), 3),
        "max_tokens": max(map(len, encoded)),
        "unk_rate": round(sum(ids.count(tokenizer.unk_token_id) for ids in encoded) / total, 5),
        "texts_with_unk": sum(tokenizer.unk_token_id in ids for ids in encoded),
        "multi_character_token_rate": round(sum(i in multi_character for ids in encoded for i in ids) / total, 4),
        "truncated_texts": sum(len(ids) + 2 > tokenizer.model_max_length for ids in encoded),
    }


def vocabulary_stats(tokenizer: PreTrainedTokenizerFast) -> dict:
    """What the vocabulary holds: single characters (Chinese among them) and multi-character pieces."""
    pieces = [token for token in tokenizer.get_vocab() if token not in SPECIAL_TOKENS]
    single = [token for token in pieces if len(token) == 1]
    multi = [token for token in pieces if len(token) > 1]
    return {
        "vocab_size": len(tokenizer),
        "characters": len(single),
        "chinese_characters": sum(is_chinese_character(token) for token in single),
        "multi_character_pieces": len(multi),
        "chinese_multi_character_pieces": sum(all(map(is_chinese_character, token)) for token in multi),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA_DIR, help="folder holding thucnews/")
    parser.add_argument("--train_file", type=Path, help="your own labelled texts (.txt/.tsv/.csv/.json/.jsonl) instead of THUCNews")
    parser.add_argument("--validation_file", type=Path, help="with --train_file: the split the statistics are measured on")
    parser.add_argument("--output_dir", type=Path, default=REPO_ROOT / SETTINGS["output_dir"])
    parser.add_argument("--vocab_size", type=int, default=SETTINGS["vocab_size"])
    parser.add_argument("--min_frequency", type=int, default=SETTINGS["min_frequency"])
    parser.add_argument("--max_token_length", type=int, default=SETTINGS["max_token_length"])
    parser.add_argument("--model_max_length", type=int, default=SETTINGS["model_max_length"])
    args = parse_tokenizer_arguments(parser, argv, "THUCNews' dev.txt is built in")

    if args.train_file:
        splits = load_classification_files(args.train_file, args.validation_file)
    else:
        splits = load_thucnews(args.data_dir)
    tokenizer = train_classification_tokenizer(
        splits["train"]["text"][:], args.vocab_size, args.min_frequency, args.max_token_length, args.model_max_length
    )
    stats = {"output_dir": str(args.output_dir), **vocabulary_stats(tokenizer)}
    return save_tokenizer_with_stats(
        tokenizer, args.output_dir, stats, splits, lambda validation: tokenizer_stats(tokenizer, validation["text"][:])
    )


if __name__ == "__main__":
    main()
