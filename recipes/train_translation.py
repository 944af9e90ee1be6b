"""Train a translation model (Transformer or GRU seq2seq with attention) with Seq2SeqTrainer.

    accelerate launch recipes/train_translation.py --arch transformer --model_size tiny --output_dir outputs/t
    accelerate launch recipes/train_translation.py --args_file recipes/published/translation_transformer_base.args

Every standard ``Seq2SeqTrainingArguments`` flag works (``--max_steps``, ``--num_train_epochs``,
``--per_device_train_batch_size``, ``--learning_rate``, ``--seed``, ``--bf16``, ``--use_cpu``, ...); flags given on
the command line override those of an ``--args_file``. Data: Tatoeba English-Chinese from ``--data_dir`` (split by
``settings/translation_data.json``), or the user's own ``--train_file/--validation_file/--test_file`` (JSON lines
``{"translation": {...}}`` or TSV) with ``--source_lang/--target_lang``. The output folder holds the model and its
code, the tokenizer, the generation config, the translation pipeline, a model card and ``results.json``.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from torch.utils.data import SequentialSampler
from transformers import (
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    GenerationConfig,
    HfArgumentParser,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

import hf_models
from hf_models.metrics import load_metric
from model_card import DatasetInfo
from recipe_skeleton import TRAINING_HYPERPARAMETERS, RecipeTask, Run, config_hyperparameters, training_hyperparameters, user_dataset
from recipe_skeleton import arch_argument, attn_implementation_argument, config_overrides_argument, data_dir_argument
from recipe_skeleton import model_size_argument, sample_limit_argument, vocab_size_argument
from recipe_utils import parse_config_overrides, parse_recipe_arguments
from train_tokenizer import train_translation_tokenizer
from translation_data import (
    DEFAULT_DATA_DIR,
    SETTINGS,
    is_chinese,
    load_parallel_files,
    load_tatoeba,
    split_translation_dataset,
)

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parent
MODEL_SIZES = json.loads((RECIPES / "settings" / "translation_models.json").read_text())
DEFAULT_TOKENIZER = RECIPES.parent / "tokenizer_data" / "tatoeba_en_zh"
# A run of fewer optimizer steps than this is a quick trial: unless --max_test_samples says otherwise, its test
# decoding stops after QUICK_TRIAL_TEST_PAIRS pairs (beam search over all 1,000 Tatoeba test pairs took 20 minutes).
QUICK_TRIAL_STEPS = 100
QUICK_TRIAL_TEST_PAIRS = 100
ARCHITECTURES = {
    "transformer": (hf_models.TransformerConfig, hf_models.TransformerForConditionalGeneration),
    "gru": (hf_models.GRUSeq2SeqConfig, hf_models.GRUSeq2SeqForConditionalGeneration),
}
TATOEBA = DatasetInfo(
    name="Tatoeba English-Chinese (manythings.org Anki export, 2026-02-13)",
    id="tatoeba_cmn_eng",
    split_description=(
        f"32,028 pairs; Chinese side converted to Simplified with OpenCC ({SETTINGS['normalize_chinese']}); "
        f"split with seed {SETTINGS['seed']} into {SETTINGS['test_size']} test and {SETTINGS['validation_size']} "
        "validation pairs and the rest for training, grouped by English sentence so that no source sentence "
        "occurs in two splits."
    ),
    license="CC-BY 2.0 (France), https://creativecommons.org/licenses/by/2.0/",
    attribution=(
        "www.manythings.org/anki and tatoeba.org; every pair carries its own credit line "
        "(`CC-BY 2.0 (France) Attribution: tatoeba.org #<id> (<user>) & #<id> (<user>)`), kept in the "
        "`attribution` column of the dataset the recipe builds."
    ),
)


@dataclass
class ModelArguments:
    arch: str = arch_argument("transformer", ARCHITECTURES)
    model_size: str = model_size_argument("tiny", "translation_models.json")
    tokenizer_name: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer folder or name. Default: tokenizer_data/tatoeba_en_zh for Tatoeba; a tokenizer "
            "trained on --train_file otherwise."
        },
    )
    vocab_size: int = vocab_size_argument(8000)
    attn_implementation: str = attn_implementation_argument("Transformer")
    config_overrides: str | None = config_overrides_argument("attention_type=performer,dropout=0.2")


@dataclass
class DataArguments:
    data_dir: str = data_dir_argument(DEFAULT_DATA_DIR, "tatoeba_cmn_eng/")
    train_file: str | None = field(default=None, metadata={"help": "JSON lines or TSV training pairs."})
    validation_file: str | None = field(default=None, metadata={"help": "JSON lines or TSV validation pairs."})
    test_file: str | None = field(default=None, metadata={"help": "JSON lines or TSV test pairs."})
    source_lang: str = field(default="en")
    target_lang: str = field(default="zh")
    max_source_length: int = field(default=128, metadata={"help": "Longer sources are truncated (counted, warned)."})
    max_target_length: int = field(default=128, metadata={"help": "Longer targets are truncated (counted, warned)."})
    max_train_samples: int | None = sample_limit_argument("training pairs")
    max_eval_samples: int | None = sample_limit_argument("validation pairs")
    max_test_samples: int | None = field(
        default=None,
        metadata={"help": "Use only the first N test pairs (0 = all). Default: all, or 100 when --max_steps < 100 (a quick trial)."},
    )
    test_num_beams: int = field(default=4, metadata={"help": "Beam size for the final test translation."})


class InOrderSeq2SeqTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose evaluation keeps the dataset order.

    transformers 5.24 applies ``--train_sampling_strategy group_by_length`` to evaluation too, which shuffles the
    predictions; they are scored against the raw reference strings in dataset order (and written next to their
    sources), so evaluation must stay sequential. Under DDP the default (None) lets Accelerate shard in order.
    """

    def _get_eval_sampler(self, eval_dataset):
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def _issue_warnings_after_load(self, load_result):
        # A checkpoint stores a tied weight once (safetensors refuses shared tensors), so a resume "misses" every
        # tied copy (the embeddings, lm_head) and Trainer warned about them each time; they are re-tied instead.
        # Any other missing key is still reported.
        tied = set(getattr(self.model, "all_tied_weights_keys", None) or {})
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def evaluation_loop(self, *args, **kwargs):
        # Seq2SeqTrainer.evaluate/predict gather with accelerator.gather, which keeps the examples Accelerate repeats
        # to give every rank a full last batch: under DDP there were more predictions than references.
        self.gather_function = self.accelerator.gather_for_metrics
        return super().evaluation_loop(*args, **kwargs)


def load_splits(data_args: DataArguments) -> tuple[datasets.DatasetDict, bool]:
    """The user's files when given, else the Tatoeba split. Returns the splits and whether they are Tatoeba."""
    if data_args.train_file or data_args.validation_file or data_args.test_file:
        splits = load_parallel_files(
            data_args.train_file,
            data_args.validation_file,
            data_args.test_file,
            source_lang=data_args.source_lang,
            target_lang=data_args.target_lang,
        )
        return splits, False
    if (data_args.source_lang, data_args.target_lang) != ("en", "zh"):
        raise ValueError("Tatoeba here is English->Chinese: use --source_lang en --target_lang zh or give files")
    return split_translation_dataset(load_tatoeba(data_args.data_dir)), True


def load_or_train_tokenizer(model_args: ModelArguments, data_args: DataArguments, splits, is_tatoeba: bool):
    if model_args.tokenizer_name:
        return AutoTokenizer.from_pretrained(model_args.tokenizer_name)
    if is_tatoeba:
        return AutoTokenizer.from_pretrained(DEFAULT_TOKENIZER)
    if "train" not in splits:
        raise ValueError("without --train_file there is nothing to train a tokenizer on: pass --tokenizer_name")
    logger.info("training a %d-token tokenizer on %s", model_args.vocab_size, data_args.train_file)
    texts = (text for pair in splits["train"]["translation"] for text in pair.values())
    return train_translation_tokenizer(texts, vocab_size=model_args.vocab_size, model_max_length=data_args.max_source_length)


def tokenize_splits(splits: datasets.DatasetDict, tokenizer, data_args: DataArguments) -> datasets.DatasetDict:
    """Token ids for sources and labels; over-long examples are truncated, counted and reported once per split."""
    source, target = data_args.source_lang, data_args.target_lang

    def encode(batch):
        sources = [pair[source] for pair in batch["translation"]]
        targets = [pair[target] for pair in batch["translation"]]
        encoded = tokenizer(sources, max_length=data_args.max_source_length, truncation=True)
        labels = tokenizer(text_target=targets, max_length=data_args.max_target_length, truncation=True)
        full_sources = tokenizer(sources)["input_ids"]
        full_targets = tokenizer(text_target=targets)["input_ids"]
        encoded["labels"] = labels["input_ids"]
        encoded["truncated"] = [
            len(s) > data_args.max_source_length or len(t) > data_args.max_target_length
            for s, t in zip(full_sources, full_targets)
        ]
        return encoded

    tokenized = splits.map(encode, batched=True, remove_columns=splits["train" if "train" in splits else next(iter(splits))].column_names, desc="tokenizing")
    for name, split in tokenized.items():
        truncated = int(np.sum(split["truncated"]))
        if truncated:
            logger.warning(
                "%s: %d of %d pairs are longer than max_source_length=%d / max_target_length=%d tokens and were truncated",
                name, truncated, len(split), data_args.max_source_length, data_args.max_target_length,
            )
    return tokenized.remove_columns("truncated")


def build_model(model_args: ModelArguments, data_args: DataArguments, tokenizer):
    config_class, model_class = ARCHITECTURES[model_args.arch]
    sizes = MODEL_SIZES[model_args.arch]
    if model_args.model_size not in sizes:
        raise ValueError(f"--model_size {model_args.model_size!r} unknown for {model_args.arch}; choose from {sorted(sizes)}")
    extra = {}
    if model_args.arch == "transformer":
        extra["max_position_embeddings"] = max(data_args.max_source_length, data_args.max_target_length)
    config = config_class(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        **extra,
        **{**sizes[model_args.model_size], **parse_config_overrides(model_args.config_overrides, config_class)},
    )
    if model_args.arch == "transformer":
        config._attn_implementation = model_args.attn_implementation
    model = model_class(config)
    model.generation_config = GenerationConfig(
        max_length=data_args.max_target_length + 1,  # the decoder start token + the longest target
        num_beams=data_args.test_num_beams,
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model


def metrics_for(references: list[str], tokenizer, target_lang: str):
    """A compute_metrics that scores the decoded predictions against the raw reference strings (not the decoded
    label ids, which would hide characters the tokenizer maps to <unk>)."""
    bleu, chrf = load_metric("bleu"), load_metric("chrf")
    bleu_tokenize = "zh" if target_lang.startswith("zh") else "13a"

    def compute_metrics(prediction):
        ids = np.where(prediction.predictions < 0, tokenizer.pad_token_id, prediction.predictions)
        hypotheses = [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} predictions for {len(references)} references")
        refs = [[reference] for reference in references]
        return {
            "bleu": bleu.compute(predictions=hypotheses, references=refs, tokenize=bleu_tokenize)["score"],
            "chrf": chrf.compute(predictions=hypotheses, references=refs)["score"],
        }

    return compute_metrics


def bound_quick_trial(training_args, data_args: DataArguments) -> None:
    """A quick trial (``--max_steps`` below ``QUICK_TRIAL_STEPS``) decodes only ``QUICK_TRIAL_TEST_PAIRS`` test pairs
    unless ``--max_test_samples`` is given, and says so."""
    if 0 < training_args.max_steps < QUICK_TRIAL_STEPS and data_args.max_test_samples is None:
        data_args.max_test_samples = QUICK_TRIAL_TEST_PAIRS
        logger.warning(
            "quick trial (--max_steps %d < %d): the test split is beam-decoded on its first %d pairs only; pass "
            "--max_test_samples 0 to decode all of it", training_args.max_steps, QUICK_TRIAL_STEPS, QUICK_TRIAL_TEST_PAIRS,
        )


def parse_arguments(argv: list[str] | None = None) -> tuple:
    """The recipe's arguments. The Transformer's default schedule is the paper's warmup + inverse-square-root decay:
    it is the parser's default for ``--arch transformer``, so any ``--lr_scheduler_type`` (``--lr_scheduler_type
    linear``, ``--lr_scheduler_type=linear``, or a line of an ``--args_file``) still wins."""
    parser = HfArgumentParser((ModelArguments, DataArguments, Seq2SeqTrainingArguments))
    model_args, data_args, training_args = parse_recipe_arguments(parser, argv)
    if model_args.arch == "transformer":
        parser.set_defaults(lr_scheduler_type="inverse_sqrt")
        model_args, data_args, training_args = parse_recipe_arguments(parser, argv)
    return model_args, data_args, training_args


def references(run: Run, split: str) -> list[str]:
    """The raw target sentences of ``split``, in order: what its translations are scored against."""
    return [pair[run.data_args.target_lang] for pair in run.splits[split]["translation"]]


class TranslationTask(RecipeTask):
    """The translation recipe's hooks for the skeleton (recipes/recipe_skeleton.py)."""

    script = __file__
    logger = logger
    argument_classes = (ModelArguments, DataArguments, Seq2SeqTrainingArguments)
    evaluate_validation = False  # the validation split is decoded while training (--eval_strategy), not again after
    card_training_hyperparameters = tuple(
        name for name in TRAINING_HYPERPARAMETERS if name not in ("weight_decay", "metric_for_best_model")
    )

    def parse_arguments(self, argv: list[str] | None) -> tuple:
        return parse_arguments(argv)

    def configure(self, run: Run) -> None:
        run.training_args.predict_with_generate = True
        bound_quick_trial(run.training_args, run.data_args)

    def load_splits(self, data_args: DataArguments) -> tuple[datasets.DatasetDict, bool]:
        return load_splits(data_args)

    def build(self, run: Run) -> None:
        model_args, data_args, training_args = run.model_args, run.data_args, run.training_args
        tokenizer = load_or_train_tokenizer(model_args, data_args, run.splits, run.is_reference_corpus)
        run.datasets = tokenize_splits(run.splits, tokenizer, data_args)
        run.model = model = build_model(model_args, data_args, tokenizer)
        run.processing_class = tokenizer
        training_args.generation_num_beams = training_args.generation_num_beams or 1  # greedy during validation
        training_args.generation_max_length = training_args.generation_max_length or model.generation_config.max_length
        run.data_collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
        if "validation" in run.splits:
            run.compute_metrics = metrics_for(references(run, "validation"), tokenizer, data_args.target_lang)

    def model_name(self, run: Run) -> str:
        return f"{run.model_args.arch} {run.model_args.model_size}"

    def make_trainer(self, run: Run, **trainer_arguments) -> Seq2SeqTrainer:
        return InOrderSeq2SeqTrainer(**trainer_arguments)

    def save(self, run: Run, model) -> None:
        model.config.use_cache = True  # Trainer turns it off for training; generation wants it on
        hf_models.save_for_translation(model, run.processing_class, run.training_args.output_dir)

    def predict_test(self, run: Run, trainer: Seq2SeqTrainer):
        trainer.compute_metrics = metrics_for(references(run, "test"), run.processing_class, run.data_args.target_lang)
        return trainer.predict(run.datasets["test"], metric_key_prefix="test", num_beams=run.data_args.test_num_beams)

    def save_test_outputs(self, run: Run, model, test) -> None:
        """``test_translations.jsonl``: every test pair with the model's translation."""
        tokenizer = run.processing_class
        ids = np.where(test.predictions < 0, tokenizer.pad_token_id, test.predictions)
        hypotheses = tokenizer.batch_decode(ids, skip_special_tokens=True)
        with open(run.output_dir / "test_translations.jsonl", "w", encoding="utf-8") as out:
            for pair, hypothesis in zip(run.splits["test"]["translation"], hypotheses):
                out.write(json.dumps({**pair, "prediction": hypothesis.strip()}, ensure_ascii=False) + "\n")

    def card_content(self, run: Run, model) -> dict:
        model_args, data_args, training_args, results = run.model_args, run.data_args, run.training_args, run.results
        family = {
            "transformer": "Encoder-decoder Transformer (Vaswani et al. 2017): sinusoidal positions, multi-head attention, "
            "shared source/target embeddings tied to the output layer.",
            "gru": "GRU encoder-decoder with attention over the encoder states (Bahdanau et al. 2015 / Luong et al. 2015).",
        }[model_args.arch]
        hyperparameters = {
            "model_size": model_args.model_size,
            "config_overrides": model_args.config_overrides,
            **config_hyperparameters(model.config),
            **training_hyperparameters(training_args, self.card_training_hyperparameters),
            "test_num_beams": data_args.test_num_beams,
        }
        usage = f"""from transformers import pipeline

translator = pipeline("translation", model="{run.model_location}", trust_remote_code=True)
print(translator("How are you?", num_beams={data_args.test_num_beams}))"""
        return dict(
            task_type="translation",
            task_name=f"Translation {data_args.source_lang}->{data_args.target_lang}",
            architecture=family,
            dataset=TATOEBA if run.is_reference_corpus else user_dataset(
                "user corpus", "custom", "the corpus", data_args.train_file, data_args.validation_file, data_args.test_file
            ),
            metrics=[
                (name, label, results[f"test_{name}"]) for name, label in (("bleu", "BLEU"), ("chrf", "chrF")) if f"test_{name}" in results
            ],
            hyperparameters=hyperparameters,
            usage=usage,
            limitations=translation_limitations(run),
            languages=[data_args.source_lang, data_args.target_lang],
            tags=["translation", model_args.arch],
        )


def translation_limitations(run: Run) -> str:
    """The card's limitations: Tatoeba's own, or what holds for any corpus a user trained on (its size, the BLEU
    tokenisation the target language got, and the OpenCC conversion only where a side is Chinese)."""
    target = run.data_args.target_lang
    tokenize = "zh" if target.startswith("zh") else "13a"
    scoring = (
        f"BLEU is computed with sacreBLEU's `{tokenize}` tokenisation against a single reference, which underrates "
        "valid paraphrases."
    )
    if run.is_reference_corpus:
        return (
            "Trained on about 30,000 short, everyday sentence pairs: expect poor output on long, technical or "
            f"out-of-domain text. {scoring} The output is Simplified Chinese (the training targets were converted "
            "with OpenCC)."
        )
    pairs = len(run.splits["train"]) if "train" in run.splits else 0
    chinese = [lang for lang in (run.data_args.source_lang, target) if is_chinese(lang)]
    conversion = (
        f" The {' and '.join(chinese)} side{'s were' if len(chinese) > 1 else ' was'} converted to Simplified "
        "Chinese with OpenCC before training and scoring." if chinese else ""
    )
    return (
        f"Trained on a user corpus of {pairs:,} sentence pairs: its quality on text unlike that corpus is unknown, "
        f"and the scores above hold for its test split only. {scoring}{conversion}"
    )


TASK = TranslationTask()

main = TASK.main  # the run (recipe_skeleton.RecipeTask.main), for callers that import it


if __name__ == "__main__":
    main()
