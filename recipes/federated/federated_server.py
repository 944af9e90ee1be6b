"""The ServerApp: samples clients, aggregates their models with FedAvg, FedAvgM, FedAdam or FedProx (optionally under central
differential privacy), scores the global model on the centralised recipe's test split after every round, keeps a
checkpoint to resume from, and finally saves the model exactly as the centralised recipe saves its own.

Deployment (``flwr run``) reads the run's argument list from the run config key ``recipe-args`` (a JSON list);
``recipes/train_federated.py`` builds the same ServerApp with :func:`make_server_app` for the simulation runtime.
"""

import json
import logging
import shlex
import time
from pathlib import Path

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, NeighboringRelation, PrivacyConfig, RdpAccountant, SamplingMethod, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Strategy,
)
from safetensors.torch import load_file, save_file

from federated_partition import write_partition
from federated_task import FederatedArguments, FederatedTask, task_for
from model_card import portable

logger = logging.getLogger("flwr").getChild(__name__)  # Flower's handlers: the lines reach `flwr run --stream` too

CHECKPOINT = "federated_checkpoint"
SERVER_OPTIMISER_FILE = "server_optimiser.safetensors"
RESULTS_FILE = "federated_results.json"
TABLE_HEADER = "| round | test accuracy | test loss | seconds | bytes sent | clients | failures |"


class ObservedStrategy(Strategy):
    """Wraps the aggregating strategy: puts the run's arguments and the global round number (which continues after
    a resume) into every training message, and records per round what was sent and received (bytes both ways,
    replies, failures: clients that raised or did not answer within the timeout). A failed client never stops the
    round: the strategy aggregates the replies that came, and the failures are counted and logged.

    The inner strategy sees the global round number too: FedAdam's bias correction counts rounds across a resume.
    """

    def __init__(self, inner: Strategy, argv_json: str, first_round: int = 1):
        self.inner = inner
        self.argv_json = argv_json
        self.offset = first_round - 1
        self.rounds: dict[int, dict] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        round_number = server_round + self.offset
        config["recipe-args"] = self.argv_json
        config["global-round"] = round_number
        messages = list(self.inner.configure_train(round_number, arrays, config, grid))
        self.rounds[round_number] = {"start": time.perf_counter(), "clients": len(messages), "bytes_down": len(messages) * arrays.count_bytes()}
        return messages

    def aggregate_train(self, server_round: int, replies):
        round_number = server_round + self.offset
        stats = self.rounds[round_number]
        replies = list(replies)
        errors = [reply for reply in replies if reply.has_error()]
        for reply in errors:
            logger.warning("round %d: client on node %d failed: %s", round_number, reply.metadata.src_node_id, reply.error.reason)
        missing = stats["clients"] - len(replies)
        if missing:
            logger.warning("round %d: %d of %d sampled clients did not reply in time", round_number, missing, stats["clients"])
        stats["failures"] = len(errors) + missing
        stats["bytes_up"] = sum(
            record.count_bytes() for reply in replies if not reply.has_error() for record in reply.content.array_records.values()
        )
        arrays, metrics = self.inner.aggregate_train(round_number, replies)
        stats["aggregated"] = arrays is not None
        if arrays is None:
            logger.warning("round %d: nothing was aggregated; the global model stays as it was", round_number)
        if metrics is not None and "train-loss" in metrics:
            stats["train_loss"] = float(metrics["train-loss"])
        return arrays, metrics

    def configure_evaluate(self, server_round, arrays, config, grid):
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round, replies):
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()


def build_accountant(federated: FederatedArguments) -> RdpAccountant | None:
    """Flower's RDP accountant (dp-accounting underneath) for the DP wrappers. Flower's fixed-clipping wrappers only
    account without amplification by sampling (each round's release counted as a full Gaussian mechanism on the
    clipped sum), so the epsilon is an upper bound that ignores ``--fraction_train``."""
    if federated.dp_noise_multiplier is None:
        return None
    return RdpAccountant(
        PrivacyConfig(
            target_delta=federated.dp_delta,
            population_size=federated.num_clients,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )


class FedAdamInModelDtype(FedAdam):
    """Flower's FedAdam (Reddi et al. 2021): Adam on the server with the round's change of the averaged model as its
    gradient, ``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d^2``, ``w <- w + lr m / (sqrt(v) + tau)``. Its step
    is a numpy float64 scalar, which turns float32 weights into float64 (NumPy 2 promotion): the model would go out
    at twice the bytes, in a dtype it never had. This casts the new global model back to the dtypes it came in."""

    def aggregate_train(self, server_round: int, replies):
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        dtypes = {name: array.dtype for name, array in self.current_arrays.items()}
        return ArrayRecord({name: Array(array.numpy().astype(dtypes[name], copy=False)) for name, array in arrays.items()}), metrics


def build_strategy(federated: FederatedArguments, accountant: RdpAccountant | None) -> Strategy:
    """FedAvg, FedAvgM, FedAdam or FedProx, weighted by the clients' example counts; under DP wrapped in Flower's
    fixed-clipping wrapper, whose noise calibration (std = noise x clip / clients) assumes an unweighted mean, so
    every client then weighs 1. Only server-side evaluation: ``fraction_evaluate`` is 0.

    FedAvgM (Hsu et al. 2019) treats the round's change of the averaged model as a pseudo-gradient and steps along
    its momentum: ``m = beta m + (w - mean_k w_k)``, ``w <- w - lr_server m``. On IID clients a FedAvg round moves
    the model about as far as the local epochs on ONE client's share of the data; the momentum carries the
    direction of earlier rounds and lengthens the step (1 / (1 - beta) in a steady direction)."""
    common = {
        "fraction_train": federated.fraction_train,
        "fraction_evaluate": 0.0,
        "min_train_nodes": 1,
        "min_available_nodes": federated.num_clients,  # wait until every SuperNode is connected
        "weighted_by_key": "unit-weight" if accountant else "num-examples",
    }
    if federated.strategy == "fedprox":
        strategy = FedProx(**common, proximal_mu=federated.proximal_mu)
    elif federated.strategy == "fedavgm":
        strategy = FedAvgM(**common, server_learning_rate=federated.server_learning_rate, server_momentum=federated.server_momentum)
    elif federated.strategy == "fedadam":
        strategy = FedAdamInModelDtype(
            **common, eta=federated.server_learning_rate, beta_1=federated.server_momentum, beta_2=federated.server_beta_2,
            tau=federated.server_tau,
        )
    else:
        strategy = FedAvg(**common)
    if accountant is None:
        return strategy
    wrapper = {"server": DifferentialPrivacyServerSideFixedClipping, "client": DifferentialPrivacyClientSideFixedClipping}[federated.dp_clipping]
    return wrapper(strategy, federated.dp_noise_multiplier, federated.dp_clipping_norm, federated.clients_per_round, accountant=accountant)


def server_optimiser_state(strategy: ObservedStrategy, names: list[str]) -> dict[str, np.ndarray] | None:
    """What a checkpoint must keep of the server optimiser (never DP-wrapped: FederatedArguments refuses that), by
    weight name: FedAvgM's momentum (``momentum.<weight>``; Flower holds it as a list in the model's order) or FedAdam's
    moments (``m_t.<weight>``, ``v_t.<weight>``). None before the first aggregation and for strategies without one."""
    optimiser = strategy.inner
    if isinstance(optimiser, FedAvgM) and optimiser.momentum_vector is not None:
        return {f"momentum.{name}": vector for name, vector in zip(names, optimiser.momentum_vector, strict=True)}
    if isinstance(optimiser, FedAdam) and optimiser.m_t:
        return {f"{moment}.{name}": getattr(optimiser, moment)[name] for moment in ("m_t", "v_t") for name in names}
    return None


def restore_server_optimiser(strategy: ObservedStrategy, folder: Path, state: dict, names: list[str]) -> None:
    """Puts the saved state back into FedAvgM or FedAdam: without it a resumed run would silently restart from zero
    momentum (and FedAdam from zero moments, whose first steps then have the full server learning rate)."""
    if not state.get("server_optimiser_saved"):
        return
    path = folder / SERVER_OPTIMISER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} is missing (the server optimiser's state after the saved rounds)")
    saved = {key: tensor.numpy() for key, tensor in load_file(path).items()}
    optimiser = strategy.inner
    moments = ("momentum",) if isinstance(optimiser, FedAvgM) else ("m_t", "v_t")
    if set(saved) != {f"{moment}.{name}" for moment in moments for name in names}:
        raise ValueError(f"--resume: {path} holds another optimiser's state or other weights than the model's")
    if isinstance(optimiser, FedAvgM):
        optimiser.momentum_vector = [saved[f"momentum.{name}"] for name in names]
    else:
        optimiser.m_t, optimiser.v_t = ({name: saved[f"{moment}.{name}"] for name in names} for moment in moments)


def run_identity(task: FederatedTask) -> dict:
    """What must not change between a run and its resumption: whatever decides the partition and the model."""
    federated, data = task.federated, task.data_args
    return {
        "task": federated.task, "num_clients": federated.num_clients, "alpha": federated.alpha,
        "partition_seed": federated.partition_seed, "seed": task.training_args.seed,
        "min_partition_size": federated.min_partition_size, "max_train_samples": data.max_train_samples,
        "strategy": federated.strategy, "dp_noise_multiplier": federated.dp_noise_multiplier,
        "model": type(task.model).__name__, "num_parameters": task.model.num_parameters(),
    }


def load_checkpoint(task: FederatedTask, output_dir: Path) -> tuple[dict, dict]:
    """The saved global weights and run state; a clear error when there is none or it belongs to another run."""
    folder = output_dir / CHECKPOINT
    if not (folder / "state.json").is_file():
        raise FileNotFoundError(f"--resume: no checkpoint in {folder} (state.json missing); start without --resume")
    state = json.loads((folder / "state.json").read_text())
    identity = run_identity(task)
    changed = {key: (state["identity"].get(key), value) for key, value in identity.items() if state["identity"].get(key) != value}
    if changed:
        raise ValueError(f"--resume: the checkpoint in {folder} is from another setup (saved, now): {changed}")
    weights = load_file(folder / "global_model.safetensors")
    # In the model's order, as the clients send them (safetensors sorts the names): FedAvgM pairs arrays by position.
    return {name: weights[name] for name in task.model.state_dict()}, state


def save_checkpoint(output_dir: Path, state_dict: dict, state: dict, optimiser_state: dict | None = None) -> None:
    """Weights (and the server optimiser's state) first, then state.json through a rename: a run killed mid-save leaves the
    previous round's state."""
    folder = output_dir / CHECKPOINT
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in state_dict.items()}, folder / "global_model.safetensors")
    if optimiser_state is not None:
        save_file({key: torch.from_numpy(np.ascontiguousarray(array)) for key, array in optimiser_state.items()}, folder / SERVER_OPTIMISER_FILE)
    temporary = folder / "state.json.tmp"
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(folder / "state.json")


def table_row(row: dict) -> str:
    return (
        f"| {row['round']} | {100 * row['test_accuracy']:.2f} | {row['test_loss']:.4f} | {row['seconds']:.1f} | "
        f"{row['bytes_sent']:,} | {row['clients']} | {row['failures']} |"
    )


def round_schedule(federated) -> str:
    """How the card names the decay of the learning rate across rounds (nothing when it is constant)."""
    if federated.round_lr_scheduler_type == "constant":
        return ""
    return f", decayed {federated.round_lr_scheduler_type} across the rounds to {federated.round_lr_factor(federated.num_rounds):.3g}x in the last"


def setup_section(task: FederatedTask, history: list[dict], privacy: dict | None) -> str:
    """The card's "Federated training" section: the setup and the per-round table."""
    federated = task.federated
    partition = "IID" if federated.alpha is None else f"non-IID by label, Dirichlet(alpha={federated.alpha})"
    if federated.strategy == "fedavgm":
        strategy = f"FedAvgM (Hsu et al. 2019), server learning rate {federated.server_learning_rate:g}, momentum {federated.server_momentum:g}"
    elif federated.strategy == "fedadam":
        strategy = (
            f"FedAdam (Reddi et al. 2021), server learning rate {federated.server_learning_rate:g}, beta_1 "
            f"{federated.server_momentum:g}, beta_2 {federated.server_beta_2:g}, tau {federated.server_tau:g}"
        )
    elif federated.strategy == "fedprox":
        strategy = f"FedProx (Li et al. 2020), mu={federated.proximal_mu}"
    else:
        strategy = "FedAvg (McMahan et al. 2017)"
    steps, epochs = task.training_args.max_steps, task.training_args.num_train_epochs
    local_work = f"{steps} steps" if steps > 0 else f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    lines = [
        f"Trained with Flower across {federated.num_clients} clients that never shared their data ({partition}; "
        f"per-client counts and label histograms in `partition.json` / `partition.png`).",
        "",
        f"- strategy: {strategy}; {federated.clients_per_round} of {federated.num_clients} clients per round "
        f"(fraction {federated.fraction_train}); {len(history) - 1} rounds, each client training locally for {local_work} "
        f"per round (learning rate {task.training_args.learning_rate:g}{round_schedule(federated)}, batch "
        f"{task.training_args.per_device_train_batch_size})",
        "- evaluation: the server scores the global model on the test split of the centralised recipe after every "
        "round; nothing selects a checkpoint (no validation split is read): the model is the last round's",
        f"- failed client updates over the run: {sum(row['failures'] for row in history)}",
        f"- total bytes communicated (model weights, both directions): {history[-1]['bytes_total']:,}",
    ]
    if privacy:
        lines.append(
            f"- differential privacy: Flower's {privacy['clipping']}-side fixed clipping (clip {privacy['clipping_norm']}, noise "
            f"multiplier {privacy['noise_multiplier']}), client-level (epsilon {privacy['epsilon']:.3f}, delta {privacy['delta']:g}) "
            f"after {privacy['releases']} releases, Flower's RDP accountant without amplification by sampling"
        )
    else:
        lines.append("- differential privacy: off")
    if not task.is_text:
        lines.append("- the image processor's mean/std were measured on the pooled training images, as in the centralised recipe")
    lines += ["", TABLE_HEADER, "| --- | --- | --- | --- | --- | --- | --- |", *map(table_row, history)]
    return "\n".join(lines)


def run_server(grid: Grid, argv: list[str]) -> dict:
    """The whole federated run on the server side; returns what ``federated_results.json`` holds."""
    argv_json = json.dumps(list(argv))
    task = task_for(argv_json)
    federated = task.federated
    output_dir = Path(task.training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    partition_title = "IID" if federated.alpha is None else f"Dirichlet alpha={federated.alpha}"
    write_partition(task.summary(), f"{federated.num_clients} clients, {partition_title}", output_dir)

    accountant = build_accountant(federated)
    initial = {name: tensor.detach().cpu() for name, tensor in task.model.state_dict().items()}
    history: list[dict] = []
    first_round = 1
    if federated.resume:
        initial, state = load_checkpoint(task, output_dir)
        history, first_round = state["history"], state["round"] + 1
        if accountant and state.get("accountant"):
            accountant.load_state_dict(state["accountant"])
        logger.info("resuming after round %d from %s", state["round"], output_dir / CHECKPOINT)
    resumed = bool(history)
    strategy = ObservedStrategy(build_strategy(federated, accountant), argv_json, first_round)
    names = list(initial)
    if resumed:
        restore_server_optimiser(strategy, output_dir / CHECKPOINT, state, names)
    started = time.perf_counter()
    previous_seconds = sum(row["seconds"] for row in history)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        round_number = server_round + strategy.offset
        if server_round == 0 and resumed:
            return None  # the restored model was scored when it was saved
        state_dict = arrays.to_torch_state_dict()
        metrics = task.evaluate(state_dict)
        stats = strategy.rounds.get(round_number, {"start": started, "clients": 0, "bytes_down": 0})
        row = {
            "round": round_number,
            "test_accuracy": float(metrics["test_accuracy"]),
            "test_loss": float(metrics["test_loss"]),
            "seconds": time.perf_counter() - stats["start"] if round_number else 0.0,
            "bytes_sent": stats["bytes_down"] + stats.get("bytes_up", 0),
            "clients": stats["clients"],
            "failures": stats.get("failures", 0),
            "train_loss": stats.get("train_loss"),
            "learning_rate": task.training_args.learning_rate * federated.round_lr_factor(round_number) if round_number else None,
        }
        row["bytes_total"] = (history[-1]["bytes_total"] if history else 0) + row["bytes_sent"]
        if accountant is not None and accountant.num_releases:
            row["epsilon"] = accountant.get_privacy_spent().epsilon
        history.append(row)
        if server_round == (1 if resumed else 0):
            logger.info("progress:\n%s", TABLE_HEADER)
        logger.info("%s", table_row(row))
        (output_dir / "progress.json").write_text(json.dumps(history, indent=2) + "\n")
        optimiser_state = server_optimiser_state(strategy, names)
        save_checkpoint(output_dir, state_dict, {
            "round": round_number, "identity": run_identity(task), "history": history,
            "accountant": accountant.state_dict() if accountant else None, "server_optimiser_saved": optimiser_state is not None,
        }, optimiser_state)
        return MetricRecord({"test-accuracy": row["test_accuracy"], "test-loss": row["test_loss"]})

    remaining = federated.num_rounds - first_round + 1
    final = initial
    if remaining > 0:
        result = strategy.start(
            grid=grid, initial_arrays=ArrayRecord(initial), num_rounds=remaining, timeout=federated.round_timeout,
            evaluate_fn=evaluate,
        )
        final = result.arrays.to_torch_state_dict() if result.arrays else initial
    else:
        logger.info("the checkpoint already holds round %d of %d: only saving the model", first_round - 1, federated.num_rounds)

    privacy = None
    if accountant is not None:
        spent = accountant.get_privacy_spent() if accountant.num_releases else None
        privacy = {
            "clipping": federated.dp_clipping, "clipping_norm": federated.dp_clipping_norm,
            "noise_multiplier": federated.dp_noise_multiplier, "delta": federated.dp_delta,
            "epsilon": spent.epsilon if spent else 0.0, "releases": accountant.num_releases,
            "accounting": "Flower RdpAccountant, no amplification by sampling",
        }
    seconds = previous_seconds + time.perf_counter() - started
    command = shlex.join(["python", "recipes/train_federated.py", *(portable(argument, outside="keep") for argument in argv)])
    results = task.save(final, output_dir, seconds, setup_section(task, history, privacy), command)
    summary = {
        "setup": run_identity(task) | {
            "fraction_train": federated.fraction_train, "proximal_mu": federated.proximal_weight, "num_rounds": federated.num_rounds,
            "server_learning_rate": federated.server_learning_rate, "server_momentum": federated.server_momentum,
            "server_beta_2": federated.server_beta_2, "server_tau": federated.server_tau,
            "learning_rate": task.training_args.learning_rate, "round_lr_scheduler_type": federated.round_lr_scheduler_type,
        },
        "history": history,
        "test_accuracy": results["test_accuracy"],
        "test_loss": results["test_loss"],
        "total_bytes": history[-1]["bytes_total"] if history else 0,
        "failures": sum(row["failures"] for row in history),
        "seconds": seconds,
        "privacy": privacy,
    }
    (output_dir / RESULTS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def make_server_app(argv: list[str] | None = None, results: dict | None = None) -> ServerApp:
    """A ServerApp for the run ``argv``; without it, the run config's ``recipe-args`` (deployment). What the run
    returns is put into ``results`` when given (the simulation launcher reads it)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_argv = argv if argv is not None else json.loads(str(context.run_config.get("recipe-args") or "[]"))
        summary = run_server(grid, run_argv)
        if results is not None:
            results.update(summary)

    return app


app = make_server_app()
