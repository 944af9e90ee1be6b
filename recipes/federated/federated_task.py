"""What a federated run shares with the centralised recipes, and the little that differs: who trains on what.

A run is described by ONE argument list: the federated flags (:class:`FederatedArguments`) followed by the flags of the
centralised recipe of its task (``--task text``: ``train_text_classification.py``'s model and data arguments;
``--task image``: ``train_image_classification.py``'s; both take every ``TrainingArguments`` flag). The ServerApp
sends that list to the ClientApps with every training message, so a ClientApp needs no configuration of its own and
the same app runs in simulation and on separate machines. Data loading, tokenizer or image processor, model sizes,
metrics, the saved folder and its card are the recipes' own, through the hooks each recipe's ``TASK`` gives the
training skeleton (``recipes/recipe_skeleton.py``); the local training of a client
is the recipes' Trainer (plus FedProx's proximal term) for ``--num_train_epochs`` (or ``--max_steps``) on the
client's partition, every round.
"""

import argparse
import dataclasses
import functools
import json
import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import HfArgumentParser, TrainingArguments, set_seed

RECIPES = Path(__file__).resolve().parent.parent
if (RECIPES / "recipe_utils.py").is_file() and str(RECIPES) not in sys.path:
    sys.path.insert(0, str(RECIPES))  # in a checkout; an installed Flower App bundle gets recipes/ from PYTHONPATH
try:
    import train_image_classification
    import train_text_classification
    from huggingface_hub import ModelCard
    from recipe_skeleton import Run, limit_splits
    from recipe_utils import RDropTrainer, parse_recipe_arguments, training_callbacks
except ModuleNotFoundError as error:  # pragma: no cover - only outside a checkout
    raise ImportError(
        f"the federated app imports the centralised recipes ({error.name}): run it from a checkout of the repository "
        "or put its recipes/ folder on PYTHONPATH (recipes/train_federated.py does both)"
    ) from error

from federated_partition import check_partition_arguments, partition_labels, partition_summary  # noqa: E402

TASKS = {"text": train_text_classification, "image": train_image_classification}
STRATEGIES = ("fedavg", "fedavgm", "fedadam", "fedprox")
# The strategies that keep a server optimiser, with the defaults of its flags: FedAvgM's as Hsu et al. (2019), FedAdam's
# as Reddi et al. (2021) (tau 1e-3, the value they found robust; server learning rate 1e-2, inside their tuned range).
SERVER_OPTIMISER_DEFAULTS = {
    "fedavgm": {"server_learning_rate": 1.0, "server_momentum": 0.9},
    "fedadam": {"server_learning_rate": 1e-2, "server_momentum": 0.9, "server_beta_2": 0.99, "server_tau": 1e-3},
}
ROUND_SCHEDULES = ("constant", "linear", "cosine")
# A client trains for its local epochs and reports; checkpoints, evaluation and the best-model choice are the
# server's business (it scores the global model on the test split every round).
LOCAL_TRAINING_FLAGS = [
    "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False", "--report_to", "none",
    "--disable_tqdm", "True", "--push_to_hub", "False",
]


@dataclass
class FederatedArguments:
    """The flags of a federated run; every other flag is the centralised recipe's."""

    task: str = field(default="text", metadata={"help": "text (THUCNews classifier recipe) or image (MNIST ViT/GFNet/AFNO recipe).", "choices": sorted(TASKS)})
    num_clients: int = field(default=10, metadata={"help": "Clients (SuperNodes); each holds one partition of the training split."})
    num_rounds: int = field(default=10, metadata={"help": "Federated rounds (each: sampled clients train locally, the server aggregates and evaluates)."})
    strategy: str = field(
        default="fedavg",
        metadata={
            "help": "fedavg (McMahan et al. 2017), fedavgm (FedAvg with server momentum, Hsu et al. 2019), fedadam (Adam "
            "on the server, Reddi et al. 2021) or fedprox (Li et al. 2020).",
            "choices": list(STRATEGIES),
        },
    )
    proximal_mu: float = field(default=0.01, metadata={"help": "FedProx: weight mu of the proximal term mu/2 ||w - w_global||^2."})
    server_learning_rate: float | None = field(
        default=None, metadata={"help": "FedAvgM / FedAdam: the server's step size on the averaged update. Default: 1.0 / 1e-2."}
    )
    server_momentum: float | None = field(
        default=None,
        metadata={"help": "FedAvgM: momentum beta (0 with learning rate 1 is FedAvg); FedAdam: beta_1. In [0, 1). Default: 0.9."},
    )
    server_beta_2: float | None = field(default=None, metadata={"help": "FedAdam: beta_2 of the second moment, in [0, 1). Default: 0.99."})
    server_tau: float | None = field(
        default=None, metadata={"help": "FedAdam: tau, added to the root of the second moment (its adaptivity). Default: 1e-3."}
    )
    round_lr_scheduler_type: str = field(
        default="constant",
        metadata={
            "help": "How the clients' --learning_rate decays across the rounds: constant, linear or cosine (to 0 after the "
            "last round, as the centralised --lr_scheduler_type of the same name does over its epochs). Within a round a "
            "client trains at that round's rate under its own --lr_scheduler_type.",
            "choices": list(ROUND_SCHEDULES),
        },
    )
    fraction_train: float = field(default=1.0, metadata={"help": "Fraction of the clients sampled per round, in (0, 1] (at least one)."})
    alpha: float | None = field(default=None, metadata={"help": "Dirichlet concentration of the label partition (e.g. 0.5, 0.1); omitted = IID."})
    partition_seed: int | None = field(default=None, metadata={"help": "Seed of the partition. Default: --seed."})
    min_partition_size: int = field(default=1, metadata={"help": "Every client holds at least this many examples."})
    dp_noise_multiplier: float | None = field(
        default=None, metadata={"help": "Central DP (Flower's fixed-clipping wrappers): Gaussian noise multiplier; omitted = no DP."}
    )
    dp_clipping_norm: float = field(default=1.0, metadata={"help": "DP: L2 norm each client's model update is clipped to."})
    dp_clipping: str = field(default="server", metadata={"help": "DP: where updates are clipped.", "choices": ["server", "client"]})
    dp_delta: float = field(default=1e-5, metadata={"help": "DP: the delta at which epsilon is reported."})
    mode: str = field(default="simulation", metadata={"help": "simulation (Flower's simulation runtime, Ray) or deployment (SuperLink + SuperNodes on 127.0.0.1).", "choices": ["simulation", "deployment"]})
    resume: bool = field(default=False, metadata={"help": "Continue from the global model and round saved in --output_dir/federated_checkpoint."})
    round_timeout: float = field(default=3600.0, metadata={"help": "Seconds the server waits for a round's replies; late clients count as failures."})
    client_cpus: float = field(default=1.0, metadata={"help": "Simulation: CPUs per ClientApp (Ray runs CPUs / client_cpus of them at once)."})
    simulation_cpus: int | None = field(default=None, metadata={"help": "Simulation: CPUs Ray may use. Default: all."})
    fail_partitions: str | None = field(
        default=None, metadata={"help": "Fault injection: comma-separated partition ids whose ClientApp raises in every round's fit."}
    )

    def __post_init__(self):
        if self.num_clients < 1:
            raise ValueError(f"--num_clients must be >= 1, got {self.num_clients}")
        if self.num_rounds < 1:
            raise ValueError(f"--num_rounds must be >= 1, got {self.num_rounds}")
        if not 0 < self.fraction_train <= 1:
            raise ValueError(f"--fraction_train must be in (0, 1], got {self.fraction_train}")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"--alpha must be > 0 (Dirichlet concentration; omit it for an IID partition), got {self.alpha}")
        if self.proximal_mu < 0:
            raise ValueError(f"--proximal_mu must be >= 0, got {self.proximal_mu}")
        self._check_server_optimiser()
        if self.dp_noise_multiplier is not None and not self.dp_noise_multiplier > 0:
            raise ValueError(f"--dp_noise_multiplier must be > 0 (omit it to train without DP), got {self.dp_noise_multiplier}")
        if not self.dp_clipping_norm > 0:
            raise ValueError(f"--dp_clipping_norm must be > 0, got {self.dp_clipping_norm}")
        if not 0 < self.dp_delta < 1:
            raise ValueError(f"--dp_delta must be in (0, 1), got {self.dp_delta}")
        self.failing_partitions = {int(part) for part in self.fail_partitions.split(",")} if self.fail_partitions else set()

    def _check_server_optimiser(self) -> None:
        """The server optimiser's flags: each refused for a strategy without it, defaulted and range-checked for one
        with it. Its state carries the un-noised updates of earlier rounds into every later one (and its learning
        rate scales them) after Flower's DP wrappers add the noise, so the accountant's epsilon would not hold: no DP."""
        defaults = SERVER_OPTIMISER_DEFAULTS.get(self.strategy, {})
        for flag in ("server_learning_rate", "server_momentum", "server_beta_2", "server_tau"):
            if flag in defaults:
                if getattr(self, flag) is None:
                    setattr(self, flag, defaults[flag])
            elif getattr(self, flag) is not None:
                owners = " or ".join(strategy for strategy, flags in SERVER_OPTIMISER_DEFAULTS.items() if flag in flags)
                raise ValueError(f"--{flag} applies to --strategy {owners} only (got --strategy {self.strategy})")
        if not defaults:
            return
        if not self.server_learning_rate > 0:
            raise ValueError(f"--server_learning_rate must be > 0, got {self.server_learning_rate}")
        for flag in ("server_momentum", "server_beta_2"):
            if flag in defaults and not 0 <= getattr(self, flag) < 1:
                raise ValueError(f"--{flag} must be in [0, 1), got {getattr(self, flag)}")
        if "server_tau" in defaults and not self.server_tau > 0:
            raise ValueError(f"--server_tau must be > 0, got {self.server_tau}")
        if self.dp_noise_multiplier is not None:
            raise ValueError(
                f"--strategy {self.strategy} cannot run under --dp_noise_multiplier: Flower's DP wrappers add the noise "
                "after the server optimiser's step, whose state carries the un-noised updates of earlier rounds into "
                "every later one, so the accountant's epsilon would not hold; use fedavg or fedprox"
            )

    @property
    def clients_per_round(self) -> int:
        """How many clients FedAvg samples: ``int(num_clients * fraction_train)``, at least one."""
        return max(1, int(self.num_clients * self.fraction_train))

    def round_lr_factor(self, server_round: int) -> float:
        """The factor on ``--learning_rate`` for round ``server_round`` (1-based): the schedule at the round's start,
        ``t = (server_round - 1) / num_rounds``, so round 1 trains at the full rate and no round at 0."""
        t = (server_round - 1) / self.num_rounds
        if self.round_lr_scheduler_type == "linear":
            return 1.0 - t
        if self.round_lr_scheduler_type == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0

    @property
    def proximal_weight(self) -> float:
        """mu of the proximal term the clients add: FedProx's, 0 under FedAvg."""
        return self.proximal_mu if self.strategy == "fedprox" else 0.0


def parse_federated_arguments(argv: list[str]):
    """(federated, model, data, training) arguments of a run; the model and data dataclasses are those of the task's
    centralised recipe, so all of its flags (``--model_size``, ``--arch``, ``--max_train_samples``, ...) work here."""
    recipe = TASKS[task_of(argv)]
    parser = HfArgumentParser((FederatedArguments, recipe.ModelArguments, recipe.DataArguments, TrainingArguments))
    return parse_recipe_arguments(parser, argv)


def task_of(argv: list[str]) -> str:
    """The ``--task`` of an argument list: it decides which recipe's dataclasses parse the rest."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=FederatedArguments.task)
    task = pre.parse_known_args(argv)[0].task
    if task not in TASKS:
        raise ValueError(f"--task {task!r} unknown; choose from {sorted(TASKS)}")
    return task


class FedProxTrainer(RDropTrainer):
    """The recipes' Trainer (R-Drop included) plus FedProx's proximal term (Li et al. 2020): the local loss gets
    ``mu/2 * ||w - w_global||^2``, which keeps a client near the round's global model and limits client drift on
    non-IID partitions. ``proximal_mu=0`` is FedAvg's plain local training."""

    def __init__(self, *args, proximal_mu: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.proximal_mu = proximal_mu
        self.global_parameters = [parameter.detach().clone() for parameter in self.model.parameters()] if proximal_mu else []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not self.proximal_mu or not model.training:
            return result
        loss, outputs = result if return_outputs else (result, None)
        squared_distance = sum((local - anchor).pow(2).sum() for local, anchor in zip(model.parameters(), self.global_parameters))
        loss = loss + self.proximal_mu / 2 * squared_distance
        return (loss, outputs) if return_outputs else loss


class FederatedTask:
    """One process's view of a run (the ServerApp's or a ClientApp's): its arguments, the recipe's splits, tokenizer or
    processor and model, and the partition (computed from the seed, identical in every process)."""

    def __init__(self, argv: list[str]):
        self.argv = list(argv)
        self.federated, self.model_args, self.data_args, self.training_args = parse_federated_arguments(self.argv)
        self.recipe = TASKS[self.federated.task]
        self.is_text = self.federated.task == "text"
        set_seed(self.training_args.seed)  # before the model is built: the seed fixes the initial global model
        splits, self.is_reference_corpus = self.recipe.TASK.load_splits(self.data_args)
        # No validation split: nothing selects a checkpoint; the server scores every round on the test split.
        splits = limit_splits(datasets.DatasetDict({name: split for name, split in splits.items() if name != "validation"}), self.data_args)
        if "train" not in splits or "test" not in splits:
            raise ValueError(
                f"a federated run needs a training split (partitioned over the clients) and a test split (scored by the "
                f"server every round); got {sorted(splits)}"
            )
        self.label_names = splits["train"].features["label"].names
        self.train_labels = np.asarray(splits["train"]["label"][:])
        seed = self.training_args.seed if self.federated.partition_seed is None else self.federated.partition_seed
        check_partition_arguments(len(self.train_labels), self.federated.num_clients, self.federated.alpha, self.federated.min_partition_size)
        self.partition = partition_labels(
            self.train_labels, self.federated.num_clients, self.federated.alpha, seed, self.federated.min_partition_size
        )
        # The centralised recipe's build (recipe_skeleton.RecipeTask.build): tokenizer or processor, model, datasets.
        self.run = Run(self.model_args, self.data_args, self.training_args, self.argv, splits=splits, is_reference_corpus=self.is_reference_corpus)
        self.recipe.TASK.build(self.run)
        self.model, self.data, self.processing_class = self.run.model, self.run.datasets, self.run.processing_class
        self.collator, self.compute_metrics = self.run.data_collator, self.run.compute_metrics
        # Augmentation / re-segmentation draws per (seed, epoch, example): the seed changes every round and client.
        self.randomness = self.run.randomness
        if self.is_text:
            self.data["test"] = sorted_by_length(self.data["test"])
        # Local Trainers save nothing; their output_dir is a scratch folder, removed with this object (or at exit).
        self.scratch = tempfile.TemporaryDirectory(prefix="federated_client_")
        local_argv = [*self.argv, *LOCAL_TRAINING_FLAGS, "--output_dir", self.scratch.name]
        self.local_args = parse_federated_arguments(local_argv)[3]
        # Images become pixel_values on the fly from the image column: the transforms need every column.
        self.local_args.remove_unused_columns = self.is_text and not self.data_args.piece_split_probability

    def summary(self) -> dict:
        return partition_summary(self.partition, self.train_labels, self.label_names)

    def client_dataset(self, partition_id: int) -> datasets.Dataset:
        train = self.data["train"]
        if self.is_text and self.data_args.piece_split_probability:
            train = train.with_transform(
                self.recipe.piece_splitting(self.processing_class, self.data_args.piece_split_probability, self.data_args.max_seq_length, self.randomness)
            )
        return train.select(self.partition[partition_id])

    def trainer(
        self, train_dataset=None, proximal_mu: float = 0.0, seed: int | None = None, learning_rate: float | None = None
    ) -> FedProxTrainer:
        args = self.local_args
        args.seed = self.randomness.seed = self.training_args.seed if seed is None else seed
        args.learning_rate = self.training_args.learning_rate if learning_rate is None else learning_rate
        return FedProxTrainer(
            proximal_mu=proximal_mu,
            rdrop_alpha=self.model_args.rdrop_alpha,
            model=self.model,
            args=args,
            train_dataset=train_dataset,
            data_collator=self.collator,
            processing_class=self.processing_class,
            compute_metrics=self.compute_metrics,
            callbacks=training_callbacks(self.randomness),
        )

    def load(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict, strict=True)

    def train_client(self, partition_id: int, state_dict: dict, server_round: int) -> tuple[dict, dict]:
        """Local training of one client from the round's global weights; returns its weights and metrics."""
        if not 0 <= partition_id < self.federated.num_clients:
            raise ValueError(f"partition id {partition_id} outside the run's {self.federated.num_clients} clients")
        self.load(state_dict)
        dataset = self.client_dataset(partition_id)
        seed = self.training_args.seed + 1000 * server_round + partition_id  # other batches every round and client
        learning_rate = self.training_args.learning_rate * self.federated.round_lr_factor(server_round)
        output = self.trainer(dataset, self.federated.proximal_weight, seed, learning_rate).train()
        weights = {name: tensor.detach().cpu() for name, tensor in self.model.state_dict().items()}
        return weights, {"train-loss": float(output.training_loss), "num-examples": len(dataset), "unit-weight": 1}

    def evaluate(self, state_dict: dict) -> dict:
        """Test loss and metrics of a global model, on the centralised recipe's test split."""
        self.load(state_dict)
        return self.trainer().evaluate(self.data["test"], metric_key_prefix="test")

    def save(self, state_dict: dict, output_dir: Path, training_seconds: float, setup_section: str, command: str) -> dict:
        """The final global model in ``output_dir`` (the run's ``--output_dir``), saved by the centralised recipe's
        own hooks (weights, code, tokenizer or processor, pipeline, test confusion matrix and pictures, model card),
        the card extended by the federated setup."""
        self.load(state_dict)
        output_dir.mkdir(parents=True, exist_ok=True)
        test = self.trainer().predict(self.data["test"], metric_key_prefix="test")
        run = dataclasses.replace(self.run, results=dict(test.metrics), training_seconds=training_seconds)
        self.recipe.TASK.save(run, self.model)
        self.recipe.TASK.save_test_outputs(run, self.model, test)
        self.recipe.TASK.write_card(run, self.model)
        extend_card(output_dir / "README.md", setup_section, command)
        return run.results


def sorted_by_length(split: datasets.Dataset) -> datasets.Dataset:
    """The tokenized test split in order of length. A batch pads to its longest text, so batches of similar lengths
    make the server's evaluation, run every round, about half as costly on THUCNews headlines (median 14 tokens,
    longest 29); no metric depends on the order."""
    return split.select(np.argsort([len(ids) for ids in split["input_ids"]], kind="stable"))


def extend_card(path: Path, setup_section: str, command: str) -> None:
    """The centralised recipe's card, told that the model was trained federated: tags, a "Federated training"
    section, and the command that reproduces THIS run instead of the centralised recipe's."""
    card = ModelCard.load(path)
    card.data.tags = [*(card.data.tags or []), "federated-learning", "flower"]
    text = re.sub(r"\n## Reproduce\n.*", "", card.text, flags=re.DOTALL)
    text += (
        f"\n## Federated training\n\n{setup_section.strip()}\n\n## Reproduce\n\nRun from the repository root "
        f"(`OMP_NUM_THREADS=1` for the CPU figures above):\n\n```bash\n{command}\n```\n"
    )
    ModelCard(f"---\n{card.data.to_yaml()}\n---\n{text}").save(path)


@functools.lru_cache(maxsize=1)
def task_for(argv_json: str) -> FederatedTask:
    """The process's task for a run's JSON-encoded argument list (a ClientApp process serves many rounds and, in
    simulation, many clients: data and model are built once)."""
    return FederatedTask(json.loads(argv_json))

