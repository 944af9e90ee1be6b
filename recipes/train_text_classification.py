"""Train a Transformer-encoder text classifier with Trainer: Chinese news headlines (THUCNews) or your own texts.

    accelerate launch recipes/train_text_classification.py --model_size tiny --output_dir outputs/c
    accelerate launch recipes/train_text_classification.py --args_file recipes/published/text_classification_base.args
    python recipes/train_text_classification.py --train_file train.csv --validation_file dev.csv --class_names neg,pos \
        --output_dir outputs/mine

Every standard ``TrainingArguments`` flag works (``--num_train_epochs``, ``--learning_rate``, ``--eval_strategy``,
``--load_best_model_at_end --metric_for_best_model accuracy``, ``--seed``, ``--use_cpu``, ...); flags given on the
command line override those of an ``--args_file``. ``--config_overrides`` changes fields of the named model size,
e.g. ``encoder_layers=0,pre_layer_norm=false`` gives the bag-of-embeddings baseline (embedding + positions + mean +
linear). ``--model_name_or_path`` starts from a saved classifier (and its tokenizer) instead of a named size: to
fine-tune it further, e.g. to recover after ``recipes/prune.py``.

Data: THUCNews from ``--data_dir`` (``train_first33590.txt`` to train, ``dev.txt`` to select the model, ``test.txt``
only for the final figures), or ``--train_file/--validation_file/--test_file`` (``text<TAB>label``, CSV or JSON
with ``text``/``label``) with ``--class_names``. The output folder holds the model and its code, the tokenizer, the
text-classification pipeline, a model card, ``results.json`` (the card's figures), ``all_results.json`` (every
metric) and the test set's ``confusion_matrix.png``.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, TrainingArguments

import hf_models
from hf_models.metrics import load_metric
from model_card import DatasetInfo, portable
from recipe_skeleton import ClassificationTask, Run, config_hyperparameters, training_hyperparameters, user_dataset
from recipe_skeleton import attn_implementation_argument, config_overrides_argument, data_dir_argument, model_size_argument
from recipe_skeleton import rdrop_alpha_argument, sample_limit_argument, vocab_size_argument
from recipe_utils import ExampleRandomness, parse_config_overrides
from thucnews_data import DEFAULT_DATA_DIR, THUCNEWS, load_classification_files, load_thucnews
from train_classification_tokenizer import SETTINGS as TOKENIZER_SETTINGS
from train_classification_tokenizer import train_classification_tokenizer

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parent
MODEL_SIZES = json.loads((RECIPES / "settings" / "text_classification_models.json").read_text())
DEFAULT_TOKENIZER = RECIPES.parent / "tokenizer_data" / "thucnews"
THUCNEWS_INFO = DatasetInfo(
    name="THUCNews headline subset (10 classes, 649453932/Chinese-Text-Classification-Pytorch split)",
    id="thucnews",
    split_description=(
        f"trained on `{THUCNEWS['train']}` (the first 33,590 of the 180,000 training headlines; the full file was not "
        f"available), model selected on `{THUCNEWS['validation']}` (10,000 headlines), scored once on "
        f"`{THUCNEWS['test']}` (10,000 headlines, 1,000 per class)."
    ),
    license="MIT (the redistributing repository); the headlines come from THUCNews, http://thuctc.thunlp.org/",
    attribution="THUCNews / THUCTC, Tsinghua University NLP lab; split by github.com/649453932/Chinese-Text-Classification-Pytorch",
)


@dataclass
class ModelArguments:
    model_size: str = model_size_argument("base", "text_classification_models.json")
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from this saved classifier (and its tokenizer) instead of a named size."},
    )
    config_overrides: str | None = config_overrides_argument("encoder_layers=0,pre_layer_norm=false")
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder. Default: tokenizer_data/thucnews for THUCNews; trained on --train_file otherwise."},
    )
    vocab_size: int = vocab_size_argument(TOKENIZER_SETTINGS["vocab_size"])
    attn_implementation: str = attn_implementation_argument()
    rdrop_alpha: float = rdrop_alpha_argument()


@dataclass
class DataArguments:
    data_dir: str = data_dir_argument(DEFAULT_DATA_DIR, "thucnews/")
    train_file: str | None = field(default=None, metadata={"help": "text<TAB>label lines, or CSV/JSON with text/label."})
    validation_file: str | None = field(default=None, metadata={"help": "Same formats; selects the best checkpoint."})
    test_file: str | None = field(default=None, metadata={"help": "Same formats; scored once at the end."})
    class_names: str | None = field(
        default=None,
        metadata={
            "help": "Class names in id order: a file with one per line, or comma-separated. Default: inferred from the "
            "labels. (Not --label_names: that TrainingArguments flag names the label inputs of the model.)"
        },
    )
    max_seq_length: int = field(default=64, metadata={"help": "Tokens per text, [CLS]/[SEP] included; longer is truncated."})
    max_train_samples: int | None = sample_limit_argument("training texts")
    max_eval_samples: int | None = sample_limit_argument("validation texts")
    max_test_samples: int | None = sample_limit_argument("test texts")
    piece_split_probability: float = field(
        default=0.0,
        metadata={"help": "Training only: each multi-character token is replaced by its characters with this probability."},
    )


def load_splits(data_args: DataArguments) -> tuple[datasets.DatasetDict, bool]:
    """The user's files when given, else THUCNews. Returns the splits and whether they are THUCNews."""
    if data_args.train_file or data_args.validation_file or data_args.test_file:
        files_ = (data_args.train_file, data_args.validation_file, data_args.test_file)
        return load_classification_files(*files_, label_names=data_args.class_names), False
    return load_thucnews(data_args.data_dir), True


def load_or_train_tokenizer(model_args: ModelArguments, data_args: DataArguments, splits, is_thucnews: bool):
    if model_args.tokenizer_name or model_args.model_name_or_path or is_thucnews:
        # a saved classifier's embeddings expect its own tokenizer's ids
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path or DEFAULT_TOKENIZER)
    elif "train" not in splits:
        raise ValueError("without --train_file there is nothing to train a tokenizer on: pass --tokenizer_name")
    else:
        logger.info("training a %d-token tokenizer on %s", model_args.vocab_size, data_args.train_file)
        tokenizer = train_classification_tokenizer(splits["train"]["text"][:], vocab_size=model_args.vocab_size)
    tokenizer.model_max_length = data_args.max_seq_length  # what the pipeline truncates to
    return tokenizer


def tokenize_splits(splits: datasets.DatasetDict, tokenizer, max_seq_length: int) -> datasets.DatasetDict:
    """Token ids of every text; over-long texts are truncated, counted and reported once per split."""

    def encode(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=max_seq_length)
        full_lengths = map(len, tokenizer(batch["text"], verbose=False)["input_ids"])
        encoded["truncated"] = [length > max_seq_length for length in full_lengths]
        return encoded

    tokenized = splits.map(encode, batched=True, remove_columns=["text"], desc="tokenizing")
    for name, split in tokenized.items():
        truncated = int(np.sum(split["truncated"][:]))
        if truncated:
            logger.warning("%s: %d of %d texts are longer than max_seq_length=%d tokens and were truncated", name, truncated, len(split), max_seq_length)
    return tokenized.remove_columns("truncated").rename_column("label", "labels")


def piece_splitting(tokenizer, probability: float, max_seq_length: int, randomness: ExampleRandomness | int):
    """A ``datasets`` transform that re-segments training texts at random: every multi-character token (``学院``) is
    replaced by its characters (``学 院``) with ``probability``, anew each epoch, so the model also learns from the
    characters of the frequent pieces (a deterministic cousin of BPE-dropout, Provilkov et al. 2020). The draws of
    a text come from ``randomness`` (seed, epoch, the text's token ids; a seed alone fixes the epoch at 0), so a
    run is reproducible and a resumed run re-segments like an uninterrupted one. Evaluation and the pipeline keep the
    tokenizer's own segmentation."""
    randomness = ExampleRandomness.of(randomness)
    vocab = tokenizer.get_vocab()
    characters = {
        index: [vocab[character] for character in token]
        for token, index in vocab.items()
        if len(token) > 1 and token not in tokenizer.all_special_tokens and all(character in vocab for character in token)
    }

    def transform(batch):
        input_ids = []
        for ids in batch["input_ids"]:
            rng = randomness.generator(np.asarray(ids, dtype=np.int64).tobytes())
            split = [part for index in ids for part in (characters[index] if index in characters and rng.random() < probability else [index])]
            input_ids.append(split if len(split) <= max_seq_length else ids)
        return {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids], "labels": batch["labels"]}

    return transform


def build_model(model_args: ModelArguments, tokenizer, label_names: list[str], max_seq_length: int):
    labels = {"id2label": dict(enumerate(label_names)), "label2id": {name: index for index, name in enumerate(label_names)}}
    if model_args.model_name_or_path:
        overrides = parse_config_overrides(model_args.config_overrides, hf_models.TransformerConfig)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path, num_labels=len(label_names), ignore_mismatched_sizes=True, **labels, **overrides
        )
        if max_seq_length > model.config.max_position_embeddings:
            raise ValueError(
                f"--max_seq_length {max_seq_length} is longer than the {model.config.max_position_embeddings} positions "
                f"of {model_args.model_name_or_path}"
            )
        model.config._attn_implementation = model_args.attn_implementation
        return model
    if model_args.model_size not in MODEL_SIZES:
        raise ValueError(f"--model_size {model_args.model_size!r} unknown; choose from {sorted(MODEL_SIZES)}")
    config = hf_models.TransformerConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_seq_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.cls_token_id,
        decoder_layers=0,
        is_encoder_decoder=False,
        share_embeddings=False,
        tie_word_embeddings=False,
        use_cache=False,
        num_labels=len(label_names),
        **labels,
        **{**MODEL_SIZES[model_args.model_size], **parse_config_overrides(model_args.config_overrides, hf_models.TransformerConfig)},
    )
    config._attn_implementation = model_args.attn_implementation
    return hf_models.TransformerForSequenceClassification(config)


def compute_metrics_fn():
    """Accuracy and macro-F1 of the arg-max predictions, with the offline evaluate modules."""
    accuracy, f1 = load_metric("accuracy"), load_metric("f1")

    def compute_metrics(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {
            **accuracy.compute(predictions=predicted, references=prediction.label_ids),
            "macro_f1": f1.compute(predictions=predicted, references=prediction.label_ids)["f1"],
        }

    return compute_metrics


class TextClassificationTask(ClassificationTask):
    """The text recipe's hooks for the skeleton (recipes/recipe_skeleton.py)."""

    script = __file__
    logger = logger
    argument_classes = (ModelArguments, DataArguments, TrainingArguments)
    saves_all_results = True

    def load_splits(self, data_args: DataArguments) -> tuple[datasets.DatasetDict, bool]:
        return load_splits(data_args)

    def build(self, run: Run) -> None:
        model_args, data_args = run.model_args, run.data_args
        label_names = next(iter(run.splits.values())).features["label"].names
        tokenizer = load_or_train_tokenizer(model_args, data_args, run.splits, run.is_reference_corpus)
        tokenized = tokenize_splits(run.splits, tokenizer, data_args.max_seq_length)
        run.randomness = ExampleRandomness(run.training_args.seed)
        if data_args.piece_split_probability and "train" in tokenized:
            tokenized["train"] = tokenized["train"].with_transform(
                piece_splitting(tokenizer, data_args.piece_split_probability, data_args.max_seq_length, run.randomness)
            )
        run.model = build_model(model_args, tokenizer, label_names, data_args.max_seq_length)
        run.processing_class, run.datasets = tokenizer, tokenized
        run.data_collator, run.compute_metrics = DataCollatorWithPadding(tokenizer), compute_metrics_fn()

    def model_name(self, run: Run) -> str:
        if run.model_args.model_name_or_path:
            return portable(run.model_args.model_name_or_path)
        return f"model size {run.model_args.model_size}"

    def save(self, run: Run, model) -> None:
        hf_models.save_for_text_classification(model, run.processing_class, run.output_dir)

    def card_content(self, run: Run, model) -> dict:
        model_args, data_args, training_args, results = run.model_args, run.data_args, run.training_args, run.results
        is_thucnews, config = run.is_reference_corpus, model.config
        pooling = {"mean": "the mean of the encoder states over the real tokens", "cls": "the [CLS] state"}[config.classifier_pooling]
        architecture = (
            f"Transformer encoder (Vaswani et al. 2017; {config.encoder_layers} layers, d_model {config.hidden_size}, "
            f"{config.num_attention_heads} heads, {'pre' if config.pre_layer_norm else 'post'}-LN, sinusoidal positions) "
            f"with a linear classifier over {pooling}, for {config.num_labels} classes: "
            f"{', '.join(config.id2label[index] for index in range(config.num_labels))}."
        )
        metrics = [  # in percent: the card prints two decimals
            (name, label, 100 * results[f"test_{key}"])
            for name, label, key in (("accuracy", "accuracy (%)", "accuracy"), ("f1", "macro-F1 (%)", "macro_f1"))
            if f"test_{key}" in results
        ]
        hyperparameters = {
            "model_size": model_args.model_size if not model_args.model_name_or_path else portable(model_args.model_name_or_path),
            "config_overrides": model_args.config_overrides,
            "rdrop_alpha": model_args.rdrop_alpha,
            **config_hyperparameters(config),
            "max_seq_length": data_args.max_seq_length,
            **training_hyperparameters(training_args, self.card_training_hyperparameters),
        }
        validation = {key: results[key] for key in ("validation_accuracy", "validation_macro_f1") if key in results}
        usage = f"""from transformers import pipeline

classifier = pipeline("text-classification", model="{run.model_location}", trust_remote_code=True)
print(classifier("同步A股首秀：港股缩量回调"))
print(classifier("同步A股首秀：港股缩量回调", top_k=None))  # every class with its probability"""
        extra = {}
        label_description = next(iter(run.splits.values())).info.description
        if label_description:
            extra["Labels"] = label_description  # how the files' labels became class ids
        if validation:
            extra["Validation split (model selection)"] = "\n".join(f"- {key}: {value:.4f}" for key, value in validation.items())
        if "test_confusion_matrix" in results:
            extra["Confusion matrix (test split)"] = "Rows are the true classes, columns the predicted ones: `confusion_matrix.png`."
        return dict(
            task_type="text-classification",
            task_name="Text classification",
            architecture=architecture,
            dataset=THUCNEWS_INFO if is_thucnews else user_dataset(
                "user corpus", "custom", "the corpus", data_args.train_file, data_args.validation_file, data_args.test_file
            ),
            metrics=metrics,
            hyperparameters=hyperparameters,
            usage=usage,
            limitations=(
                "Trained on short news headlines from one source and period (THUCNews, Sina news 2005-2011): expect lower "
                "accuracy on other genres, long texts (inputs beyond max_seq_length tokens are truncated) or recent events. "
                "Characters absent from the training headlines become [UNK]. Scores are single-label probabilities: every "
                "text gets one of the classes, even text that belongs to none."
            ) if is_thucnews else "Trained on the user corpus named above; see its description for its scope.",
            languages=["zh"] if is_thucnews else [],
            tags=["text-classification", "transformer"],
            extra_sections=extra,
        )


TASK = TextClassificationTask()

main = TASK.main  # the run (recipe_skeleton.RecipeTask.main), for callers that import it


if __name__ == "__main__":
    main()
