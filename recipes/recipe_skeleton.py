"""The one flow of every training recipe, and the hooks through which a recipe says what is its own.

Each ``recipes/train_*.py`` defines its argument dataclasses, data loading, model building, metrics and card fields,
and hands them to this skeleton as one :class:`RecipeTask` object (``TASK`` in the module). :meth:`RecipeTask.main`
is the run, the same for all:

1. parse the arguments (``--args_file`` included), set up logging, :func:`~recipe_utils.prepare_training` (process
   group, fp16 on CPU, ``--resume_from_checkpoint`` verified), keep ``--push_to_hub`` for the end, seed;
2. :meth:`~RecipeTask.configure` (the recipe's own argument checks and settings), load the splits
   (:meth:`~RecipeTask.load_splits`) and cut them to ``--max_train/eval/test_samples``;
3. :meth:`~RecipeTask.build`: tokenizer or image processor, model, the Trainer's datasets, collator and metrics;
4. the Trainer (:meth:`~RecipeTask.make_trainer`) with the common callbacks; train, score the validation split;
5. save the model, its code, tokenizer or processor and pipeline (:meth:`~RecipeTask.save`); predict the test split
   (:meth:`~RecipeTask.predict_test`) and draw or write what goes with it (:meth:`~RecipeTask.save_test_outputs`);
6. write the card and ``results.json`` (:meth:`~RecipeTask.card_content`), print the test metrics, publish.

The federated app (``recipes/federated/federated_task.py``) builds, saves and writes cards through the same hooks.
"""

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import transformers
from datasets import DatasetDict
from transformers import HfArgumentParser, Trainer, set_seed
from transformers.trainer_utils import PredictionOutput

from model_card import CardContent, DatasetInfo, portable, portable_arguments, recipe_command, write_model_card
from plots import confusion_counts, plot_confusion_matrix
from recipe_utils import (
    ExampleRandomness,
    RDropTrainer,
    limit,
    parse_recipe_arguments,
    prepare_training,
    print_test_metrics,
    publish_output_folder,
    take_push_to_hub,
    train,
    training_callbacks,
)

# The TrainingArguments a card lists, in its order; a recipe names those that apply to it.
TRAINING_HYPERPARAMETERS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "per_device_train_batch_size",
    "num_train_epochs", "max_steps", "label_smoothing_factor", "metric_for_best_model", "seed",
)  # fmt: skip


# ---- Arguments every recipe's dataclasses declare, with the same meaning (the help says what is the recipe's) ----


def arch_argument(default: str, architectures: dict):
    """``--arch``: the model family, one of the recipe's ``architectures``."""
    return field(default=default, metadata={"help": "Model family.", "choices": sorted(architectures)})


def model_size_argument(default: str, sizes_file: str):
    """``--model_size``: a named size of ``recipes/settings/<sizes_file>``."""
    return field(default=default, metadata={"help": f"A named size from settings/{sizes_file}."})


def attn_implementation_argument(family: str | None = None):
    """``--attn_implementation``: the softmax attention kernel, for the ``family`` that has one (all: None)."""
    return field(default="sdpa", metadata={"help": f"eager or sdpa{f' ({family} only)' if family else ''}."})


def vocab_size_argument(default: int):
    """``--vocab_size`` of the tokenizer a recipe trains on the user's training file."""
    return field(default=default, metadata={"help": "Vocabulary size when a tokenizer is trained here."})


def data_dir_argument(default: Path, holding: str):
    """``--data_dir``: the folder with the recipe's own corpus, read when no files of the user's are given."""
    return field(default=str(default), metadata={"help": f"Folder holding {holding}."})


def sample_limit_argument(examples: str):
    """A ``--max_train_samples`` / ``--max_eval_samples`` / ``--max_test_samples``: :func:`limit_splits` keeps the
    first N ``examples`` of its split (all of them without it, or with 0)."""
    return field(default=None, metadata={"help": f"Use only the first N {examples}."})


def config_overrides_argument(example: str):
    """``--config_overrides``: config fields over the named size (:func:`~recipe_utils.parse_config_overrides`)."""
    return field(default=None, metadata={"help": f"Change fields of the named size, e.g. {example!r}."})


def rdrop_alpha_argument():
    """``--rdrop_alpha``: the classifiers' R-Drop weight (:class:`~recipe_utils.RDropTrainer`)."""
    return field(
        default=0.0,
        metadata={"help": "R-Drop weight (Liang et al. 2021): each batch runs twice and the two predictions are pulled together; 0 = off."},
    )


@dataclass
class Run:
    """One run of a recipe: its arguments, and what the skeleton and the recipe's hooks build from them."""

    model_args: Any
    data_args: Any
    training_args: Any
    argv: list[str] | None = None  # None: the command line
    hub_model_id: str | None = None
    splits: DatasetDict | None = None  # the raw examples, cut to --max_*_samples
    is_reference_corpus: bool = False  # the recipe's own corpus (MNIST, THUCNews, Tatoeba), not the user's files
    model: Any = None
    processing_class: Any = None  # the tokenizer or the image processor
    datasets: DatasetDict | None = None  # what the Trainer reads
    data_collator: Any = None
    compute_metrics: Any = None
    randomness: ExampleRandomness | None = None  # the training transforms' draws (a callback tracks the epoch)
    results: dict = field(default_factory=dict)
    training_seconds: float = 0.0

    @property
    def output_dir(self) -> Path:
        return Path(self.training_args.output_dir)

    @property
    def model_location(self) -> str:
        """Where the card's usage snippet loads the model from: the Hub repo it is published to, else the folder."""
        return self.hub_model_id or self.training_args.output_dir


def limit_splits(splits: DatasetDict, data_args) -> DatasetDict:
    """``splits`` cut to ``--max_train_samples`` / ``--max_eval_samples`` / ``--max_test_samples``."""
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_test_samples}
    return DatasetDict({name: limit(split, limits[name]) for name, split in splits.items()})


def user_dataset(name: str, dataset_id: str, source: str, train, validation, test) -> DatasetInfo:
    """What a card says about the user's own files or folders (their paths made :func:`~model_card.portable`)."""
    return DatasetInfo(
        name=f"{name} ({portable(train)})",
        id=dataset_id,
        split_description=f"train {portable(train)}, validation {portable(validation)}, test {portable(test)}",
        license=f"see {source}",
        attribution=f"see {source}",
    )


def config_hyperparameters(config) -> dict:
    """The scalar fields a model's config sets away from its defaults, sorted by name, for the card."""
    fields = {
        key: value for key, value in config.to_diff_dict().items()
        if isinstance(value, (int, float, str, bool)) and not key.startswith(("_", "transformers_version"))
    }  # fmt: skip
    return {key: fields[key] for key in sorted(fields)}


def training_hyperparameters(training_args, names: tuple[str, ...]) -> dict:
    """The ``names`` among :data:`TRAINING_HYPERPARAMETERS` as the card shows them: the schedule by its name, the
    best-model metric only when ``--load_best_model_at_end`` uses it."""
    shown = {
        "lr_scheduler_type": getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type),
        "metric_for_best_model": training_args.metric_for_best_model if training_args.load_best_model_at_end else None,
    }
    return {name: shown[name] if name in shown else getattr(training_args, name) for name in names}


class RecipeTask:
    """What a recipe provides to the skeleton. A subclass sets :attr:`script` and :attr:`logger` to its module's,
    :attr:`argument_classes`, and fills in the hooks that have no default."""

    script: str  # the recipe's file: the card's command line launches it
    logger: logging.Logger = logging.getLogger(__name__)
    argument_classes: tuple[type, type, type]  # (ModelArguments, DataArguments, TrainingArguments or a subclass)
    evaluate_validation = True  # score the validation split once more after training
    saves_all_results = False  # also write Trainer's all_results.json (every metric and the training time)
    # The card's TrainingArguments (a subset of TRAINING_HYPERPARAMETERS, in its order).
    card_training_hyperparameters = TRAINING_HYPERPARAMETERS

    def parse_arguments(self, argv: list[str] | None) -> tuple:
        return parse_recipe_arguments(HfArgumentParser(self.argument_classes), argv)

    def configure(self, run: Run) -> None:
        """Checks and settings of the recipe's own, after parsing and seeding, before any data is read."""

    def load_splits(self, data_args) -> tuple[DatasetDict, bool]:
        """The splits, and whether they are the recipe's own corpus (``Run.is_reference_corpus``)."""
        raise NotImplementedError

    def build(self, run: Run) -> None:
        """Sets ``run.model``, ``processing_class``, ``datasets``, ``data_collator``, ``compute_metrics`` and, for
        random training transforms, ``randomness`` from ``run.splits``."""
        raise NotImplementedError

    def model_name(self, run: Run) -> str:
        """The model in the log line that counts its parameters."""
        raise NotImplementedError

    def make_trainer(self, run: Run, **trainer_arguments) -> Trainer:
        return Trainer(**trainer_arguments)

    def save(self, run: Run, model) -> None:
        """Saves the model with its code, tokenizer or processor and pipeline in ``run.output_dir`` (rank zero)."""
        raise NotImplementedError

    def predict_test(self, run: Run, trainer: Trainer) -> PredictionOutput:
        return trainer.predict(run.datasets["test"], metric_key_prefix="test")

    def save_test_outputs(self, run: Run, model, test: PredictionOutput) -> None:
        """Pictures or files made from the test predictions, on rank zero; may add entries to ``run.results``."""

    def card_content(self, run: Run, model) -> dict:
        """The recipe's fields of :class:`~model_card.CardContent`: task, architecture, dataset, metrics,
        hyper-parameters, usage, limitations, tags, languages and extra sections (after "Data arguments")."""
        raise NotImplementedError

    def write_card(self, run: Run, model) -> None:
        """``README.md`` and ``results.json`` in ``run.output_dir``: the recipe's :meth:`card_content` plus what every
        card says (name, size, training time, data arguments, the command that reproduces the run)."""
        content = self.card_content(run, model)
        data_arguments = {"Data arguments": f"```json\n{json.dumps(portable_arguments(run.data_args), indent=2)}\n```"}
        write_model_card(
            run.training_args.output_dir,
            CardContent(
                model_name=run.output_dir.name,
                num_parameters=model.num_parameters(),
                training_seconds=run.training_seconds,
                extra_sections={**data_arguments, **content.pop("extra_sections", {})},
                command=recipe_command(self.script, sys.argv[1:] if run.argv is None else run.argv),
                **content,
            ),
        )

    def main(self, argv: list[str] | None = None) -> dict:
        """Trains, evaluates, saves and describes a model as the module docstring says; returns every metric."""
        model_args, data_args, training_args = self.parse_arguments(argv)
        log_level = training_args.get_process_log_level()
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=log_level)
        transformers.utils.logging.set_verbosity(log_level)
        prepare_training(training_args)
        hub_model_id = take_push_to_hub(training_args)  # published at the end, once everything is saved
        set_seed(training_args.seed)  # before the model is built, so --seed fixes the initial weights too
        run = Run(model_args, data_args, training_args, argv, hub_model_id)
        self.configure(run)

        splits, run.is_reference_corpus = self.load_splits(data_args)
        run.splits = limit_splits(splits, data_args)
        self.build(run)
        self.logger.info("%s: %s parameters", self.model_name(run), f"{run.model.num_parameters():,}")
        trainer = self.make_trainer(
            run,
            model=run.model,
            args=training_args,
            train_dataset=run.datasets.get("train"),
            eval_dataset=run.datasets.get("validation"),
            data_collator=run.data_collator,
            processing_class=run.processing_class,
            compute_metrics=run.compute_metrics,
            callbacks=training_callbacks(*([run.randomness] if run.randomness else [])),
        )
        if "train" in run.datasets:
            start = time.perf_counter()
            run.results.update(train(trainer, training_args.resume_from_checkpoint))
            run.training_seconds = time.perf_counter() - start
        if self.evaluate_validation and "validation" in run.datasets:
            run.results.update(trainer.evaluate(metric_key_prefix="validation"))
        if trainer.is_world_process_zero():
            self.save(run, trainer.model)

        if "test" in run.datasets:
            test = self.predict_test(run, trainer)
            run.results.update(test.metrics)
            if trainer.is_world_process_zero():
                self.save_test_outputs(run, trainer.model, test)
        if trainer.is_world_process_zero():
            if self.saves_all_results:
                trainer.save_metrics("all", {**run.results, "training_seconds": run.training_seconds})
            self.write_card(run, trainer.model)
            print_test_metrics(run.results)
            if hub_model_id:
                publish_output_folder(run.output_dir, hub_model_id, training_args.hub_token, training_args.hub_private_repo)
        return run.results


class ClassificationTask(RecipeTask):
    """A single-label classifier's recipe: R-Drop's Trainer, the ``TrainingArguments`` dataclass, and the test
    split's confusion matrix (``confusion_matrix.png``, ``results["test_confusion_matrix"]``)."""

    def make_trainer(self, run: Run, **trainer_arguments) -> Trainer:
        return RDropTrainer(rdrop_alpha=run.model_args.rdrop_alpha, **trainer_arguments)

    def save_test_outputs(self, run: Run, model, test: PredictionOutput) -> None:
        label_names = [model.config.id2label[index] for index in range(model.config.num_labels)]
        counts = confusion_counts(test.label_ids, np.argmax(test.predictions, axis=-1), len(label_names))
        title = f"{run.output_dir.name}: test accuracy {test.metrics['test_accuracy']:.2%}"
        plot_confusion_matrix(counts, label_names, title, run.output_dir / "confusion_matrix.png")
        run.results["test_confusion_matrix"] = counts.tolist()

