"""Train the joint English–Chinese tokenizer that the translation models share between encoder and decoder.

One vocabulary serves both languages, so a model can tie its source embeddings, target embeddings and output
projection. Run from the repository root:

    python recipes/train_tokenizer.py --data_dir ../shared/data --output_dir tokenizer_data/tatoeba_en_zh --vocab_size 8000
    python recipes/train_tokenizer.py --train_file corpus.jsonl --source_lang en --target_lang zh --output_dir my_tokenizer

Defaults come from ``settings/tokenizer_tatoeba.json`` (and the data split from ``settings/translation_data.json``).
The tokenizer sees the TRAINING split only, and it prints measured statistics on the validation split as JSON.

Design:
- NFKC normalisation (fullwidth ``？`` → ``?``); the data pipeline normalises the references the same way.
- English: BPE subwords. Spaces become ``▁`` (SentencePiece's Metaspace) and are never prepended, so decoding
  gives back exactly the input's spaces and inserts none between Chinese characters.
- Chinese: every Han character is its own pre-token, so BPE never merges characters into words (character-level
  Chinese); punctuation (CJK included) and digits are single pre-tokens too.
- Byte fallback: a character never seen in training is encoded as its UTF-8 bytes ``<0xE9><0xB1><0xBB>`` instead of
  ``<unk>``, so ``decode(encode(x), skip_special_tokens=True) == x`` for any NFKC text.
- Special tokens ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3; every encoded sequence ends with ``</s>`` and
  gets no ``<s>`` (``<s>`` is the decoder start token).
"""

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from recipe_utils import parse_tokenizer_arguments, save_tokenizer_with_stats, wrap_trained_tokenizer
from translation_data import DEFAULT_DATA_DIR, REPO_ROOT, load_parallel_files, load_tatoeba, split_translation_dataset

SETTINGS = json.loads((Path(__file__).resolve().parent / "settings" / "tokenizer_tatoeba.json").read_text())

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]  # ids 4..259, SentencePiece's byte-fallback spelling
SPACE = "▁"  # U+2581, stands for a space inside tokens


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=True),
            pre_tokenizers.Split(Regex(r"\p{Han}"), behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )


def _add_byte_fallback(tokenizer: Tokenizer) -> Tokenizer:
    """Put the 256 byte tokens right after the special tokens and switch byte fallback on.

    ``BpeTrainer`` cannot add them itself (as special tokens they would be dropped by ``skip_special_tokens``), so
    the trained model is rewritten through its JSON form; merges refer to token strings, not ids, and stay valid.
    """
    spec = json.loads(tokenizer.to_str())
    trained = sorted(spec["model"]["vocab"], key=spec["model"]["vocab"].get)
    vocab = SPECIAL_TOKENS + BYTE_TOKENS + [token for token in trained if token not in SPECIAL_TOKENS]
    spec["model"]["vocab"] = {token: index for index, token in enumerate(vocab)}
    spec["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(spec))


def train_translation_tokenizer(
    texts: Iterable[str],
    vocab_size: int = SETTINGS["vocab_size"],
    model_max_length: int = SETTINGS["model_max_length"],
) -> PreTrainedTokenizerFast:
    """Train the joint tokenizer on ``texts`` (source and target sentences alike) and wrap it for transformers.

    ``vocab_size`` counts special and byte tokens. BPE training is deterministic: the same texts in the same order
    give a byte-identical ``tokenizer.json``.
    """
    reserved = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
    if vocab_size <= reserved:
        raise ValueError(f"vocab_size must exceed the {reserved} special and byte tokens, got {vocab_size}")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(BYTE_TOKENS), special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer = _add_byte_fallback(tokenizer)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, SPECIAL_TOKENS.index(EOS))]
    )
    return wrap_trained_tokenizer(tokenizer, model_max_length, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK)


def translation_texts(dataset: datasets.Dataset, languages: tuple[str, str]) -> Iterator[str]:
    """Source and target sentence of every pair, in dataset order (the order matters for reproducibility)."""
    for pair in dataset["translation"][:]:  # [:] reads the column at once, not row by row
        for language in languages:
            yield pair[language]


def tokenizer_stats(tokenizer: PreTrainedTokenizerFast, dataset: datasets.Dataset, languages: tuple[str, str]) -> dict:
    """Mean tokens per sentence (without ``</s>``), unknown and byte-fallback token rates, round-trip failures."""
    byte_ids = set(tokenizer.convert_tokens_to_ids(BYTE_TOKENS))
    stats = {"sentences": len(dataset)}
    for language in languages:
        sentences = [pair[language] for pair in dataset["translation"][:]]
        encoded = tokenizer(sentences, add_special_tokens=False)["input_ids"]
        total = sum(map(len, encoded))
        stats[language] = {
            "mean_tokens": round(total / len(sentences), 3),
            "unk_rate": round(sum(ids.count(tokenizer.unk_token_id) for ids in encoded) / total, 5),
            "byte_fallback_rate": round(sum(i in byte_ids for ids in encoded for i in ids) / total, 5),
            "round_trip_failures": sum(tokenizer.decode(ids) != text for ids, text in zip(encoded, sentences)),
        }
    return stats


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA_DIR, help="folder holding tatoeba_cmn_eng/cmn-eng.zip")
    parser.add_argument("--train_file", type=Path, help="your own parallel corpus (.jsonl/.json/.tsv/.txt) instead of Tatoeba")
    parser.add_argument("--validation_file", type=Path, help="with --train_file: the split the statistics are measured on")
    parser.add_argument("--source_lang", default="en")
    parser.add_argument("--target_lang", default="zh")
    parser.add_argument("--output_dir", type=Path, default=REPO_ROOT / SETTINGS["output_dir"])
    parser.add_argument("--vocab_size", type=int, default=SETTINGS["vocab_size"])
    parser.add_argument("--model_max_length", type=int, default=SETTINGS["model_max_length"])
    args = parse_tokenizer_arguments(parser, argv, "Tatoeba's validation split is built in")

    languages = (args.source_lang, args.target_lang)
    if args.train_file:
        splits = load_parallel_files(
            args.train_file, args.validation_file, source_lang=args.source_lang, target_lang=args.target_lang
        )
    else:
        splits = split_translation_dataset(load_tatoeba(args.data_dir))
    tokenizer = train_translation_tokenizer(
        translation_texts(splits["train"], languages), args.vocab_size, args.model_max_length
    )
    stats = {"output_dir": str(args.output_dir), "vocab_size": len(tokenizer)}
    return save_tokenizer_with_stats(
        tokenizer, args.output_dir, stats, splits, lambda validation: tokenizer_stats(tokenizer, validation, languages)
    )


if __name__ == "__main__":
    main()
