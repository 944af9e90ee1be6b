"""Federated training end to end with tiny models: Flower's simulation runtime (Ray) in this process, and the
loopback deployment (a SuperLink and two SuperNodes as separate processes). The runtimes take a minute or two to
start on a busy 2-core machine, so those tests are slow; the flag checks and the FedProx term are fast."""

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
sys.path[:0] = [str(RECIPES), str(RECIPES / "federated")]  # script folders, not packages

from flwr.serverapp.strategy import FedAvg  # noqa: E402
from model_card_checks import check_card, point_snippet_at, run_snippets, usage_snippet  # noqa: E402

import train_federated  # noqa: E402
from federated_partition import partition_labels  # noqa: E402
from federated_task import FederatedArguments, FedProxTrainer, FederatedTask  # noqa: E402

QUICK = [
    "--max_steps", "2", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "64", "--learning_rate", "5e-3",
    "--report_to", "none", "--seed", "0", "--simulation_cpus", "2",
]
TEXT_RUN = ["--task", "text", "--model_size", "tiny", "--max_train_samples", "90", "--max_test_samples", "40", "--num_clients", "3", "--alpha", "0.5", *QUICK]


def client_weights(reply) -> tuple[float, dict[str, torch.Tensor]]:
    metrics = next(iter(reply.content.metric_records.values()))
    return float(metrics["num-examples"]), reply.content["arrays"].to_torch_state_dict()


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory):
    """A 2-round, 3-client simulation (Dirichlet partition, so the clients hold different numbers of examples), with
    every FedAvg aggregation recorded: the clients' returned weights and what FedAvg made of them."""
    output_dir = tmp_path_factory.mktemp("federated_text")
    aggregations = []
    aggregate_train = FedAvg.aggregate_train

    def recording_aggregate_train(self, server_round, replies):
        replies = list(replies)
        arrays, metrics = aggregate_train(self, server_round, replies)
        clients = [client_weights(reply) for reply in replies if not reply.has_error()]
        aggregations.append({"round": server_round, "clients": clients, "aggregate": arrays.to_torch_state_dict()})
        return arrays, metrics

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FedAvg, "aggregate_train", recording_aggregate_train)
        patch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # the launcher extends it for Ray's workers
        patch.setenv("OMP_NUM_THREADS", "1")
        results = train_federated.main([*TEXT_RUN, "--num_rounds", "2", "--output_dir", str(output_dir)])
    return {"results": results, "aggregations": aggregations, "output_dir": output_dir}


@pytest.mark.slow
def test_simulation_saves_the_fedavg_of_the_client_models(simulated_run):
    results, aggregations, output_dir = simulated_run["results"], simulated_run["aggregations"], simulated_run["output_dir"]
    assert [row["round"] for row in results["history"]] == [0, 1, 2]
    assert [(row["clients"], row["failures"]) for row in results["history"][1:]] == [(3, 0), (3, 0)]
    assert [aggregation["round"] for aggregation in aggregations] == [1, 2]
    last = aggregations[-1]
    counts = [count for count, _ in last["clients"]]
    assert len(counts) == 3 and sum(counts) == 90 and len(set(counts)) > 1, counts  # unequal weights
    saved = load_file(output_dir / "model.safetensors")
    for name, aggregated in last["aggregate"].items():
        by_hand = sum(count * weights[name].double() for count, weights in last["clients"]) / sum(counts)
        torch.testing.assert_close(aggregated.double(), by_hand, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(saved[name].double(), by_hand, rtol=1e-6, atol=1e-6)
    assert saved.keys() == last["aggregate"].keys()
    model_bytes = sum(tensor.numel() * tensor.element_size() for tensor in saved.values())
    assert all(row["bytes_sent"] >= 2 * 3 * model_bytes for row in results["history"][1:])  # down to 3, up from 3
    assert results["total_bytes"] == sum(row["bytes_sent"] for row in results["history"])


@pytest.mark.slow
def test_simulation_writes_partition_progress_and_a_federated_card(simulated_run):
    results, output_dir = simulated_run["results"], simulated_run["output_dir"]
    summary = json.loads((output_dir / "partition.json").read_text())
    task = FederatedTask([*TEXT_RUN, "--output_dir", str(output_dir)])
    expected = partition_labels(task.train_labels, 3, 0.5, seed=0)
    assert [summary[str(client)]["count"] for client in range(3)] == [len(part) for part in expected]
    assert (output_dir / "partition.png").stat().st_size > 1000
    assert json.loads((output_dir / "progress.json").read_text()) == results["history"]
    card = ModelCard.load(output_dir / "README.md")
    check_card(card)
    assert {"federated-learning", "flower"} <= set(card.data.tags)
    assert "## Federated training" in card.text and "FedAvg" in card.text and "Dirichlet(alpha=0.5)" in card.text
    assert "python recipes/train_federated.py --task text" in card.text
    accuracy = next(result for result in card.data.eval_results if result.metric_type == "accuracy")
    assert accuracy.metric_value == round(100 * results["test_accuracy"], 4)


@pytest.mark.slow
def test_saved_global_model_loads_with_pipeline_without_the_package(simulated_run, tmp_path):
    output_dir = simulated_run["output_dir"]
    snippet = point_snippet_at(usage_snippet(ModelCard.load(output_dir / "README.md")), output_dir)
    assert run_snippets({"card usage": snippet}, tmp_path) == {}


@pytest.mark.slow
def test_resumed_run_goes_on_and_a_crashing_client_does_not_stop_the_round(simulated_run, tmp_path):
    output_dir = tmp_path / "resumed"
    shutil.copytree(simulated_run["output_dir"], output_dir)
    round_two = load_file(output_dir / "federated_checkpoint" / "global_model.safetensors")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        patch.setenv("OMP_NUM_THREADS", "1")
        results = train_federated.main(
            [*TEXT_RUN, "--num_rounds", "3", "--resume", "--fail_partitions", "1", "--output_dir", str(output_dir)]
        )
    history = results["history"]
    assert [row["round"] for row in history] == [0, 1, 2, 3]
    assert history[:3] == simulated_run["results"]["history"]  # restored, not re-run
    assert (history[3]["clients"], history[3]["failures"]) == (3, 1) and results["failures"] == 1
    saved = load_file(output_dir / "model.safetensors")
    assert any(not torch.equal(saved[name], round_two[name]) for name in saved)  # the two healthy clients were aggregated
    assert json.loads((output_dir / "federated_checkpoint" / "state.json").read_text())["round"] == 3


@pytest.mark.slow
def test_deployment_superlink_and_two_supernodes_complete_a_round_with_client_side_dp(tmp_path):
    """Separate processes on 127.0.0.1, the image task (tiny ViT), and central DP with client-side clipping: the
    epsilon reported is that of one Gaussian release at noise multiplier 0.8 (Flower's RDP accountant)."""
    output_dir = tmp_path / "deployment"
    results = train_federated.main([
        "--mode", "deployment", "--task", "image", "--arch", "vit", "--model_size", "tiny", "--num_clients", "2",
        "--num_rounds", "1", "--max_train_samples", "64", "--max_test_samples", "64", "--dp_noise_multiplier", "0.8",
        "--dp_clipping", "client", "--dp_clipping_norm", "5.0", *QUICK, "--output_dir", str(output_dir),
    ])
    assert [(row["round"], row["clients"], row["failures"]) for row in results["history"]] == [(0, 0, 0), (1, 2, 0)]
    assert results["privacy"]["releases"] == 1
    assert results["privacy"]["epsilon"] == pytest.approx(single_gaussian_epsilon(0.8, 1e-5), rel=1e-6)
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "partition.png"):
        assert (output_dir / name).is_file(), name
    assert (output_dir / "deployment" / "supernode_1.log").is_file()


def fedavgm_step(beta: float, lr: float):
    """FedAvgM by hand (Hsu et al. 2019): m = beta m + (w - FedAvg), w <- w - lr m; the state is the momentum."""

    def step(round_number, start, average, state):
        momentum = beta * state["momentum"] if state else 0
        momentum = momentum + start - average
        return start - lr * momentum, {"momentum": momentum}

    return step


def fedadam_step(beta_1: float, beta_2: float, lr: float, tau: float):
    """FedAdam by hand (Reddi et al. 2021) with Flower's bias correction at global round t: d = FedAvg - w,
    m = b1 m + (1 - b1) d, v = b2 v + (1 - b2) d^2, w <- w + lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1)) m / (sqrt(v) + tau)."""

    def step(round_number, start, average, state):
        delta = average - start
        m_t = (beta_1 * state["m_t"] if state else 0) + (1 - beta_1) * delta
        v_t = (beta_2 * state["v_t"] if state else 0) + (1 - beta_2) * delta**2
        corrected = lr * math.sqrt(1 - beta_2 ** (round_number + 1)) / (1 - beta_1 ** (round_number + 1))
        return start + corrected * m_t / (v_t.sqrt() + tau), {"m_t": m_t, "v_t": v_t}

    return step


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "step", "card"),
    [
        (
            ["--strategy", "fedavgm", "--server_momentum", "0.5", "--server_learning_rate", "1.5"],
            fedavgm_step(beta=0.5, lr=1.5),
            "FedAvgM (Hsu et al. 2019), server learning rate 1.5, momentum 0.5",
        ),
        (
            ["--strategy", "fedadam", "--server_momentum", "0.8", "--server_beta_2", "0.9", "--server_learning_rate", "0.02", "--server_tau", "0.01"],
            fedadam_step(beta_1=0.8, beta_2=0.9, lr=0.02, tau=0.01),
            "FedAdam (Reddi et al. 2021), server learning rate 0.02, beta_1 0.8, beta_2 0.9, tau 0.01",
        ),
    ],
    ids=["fedavgm", "fedadam"],
)
def test_a_server_optimiser_steps_by_its_formula_and_a_resume_keeps_its_state(flags, step, card, tmp_path):
    """Three rounds of FedAvgM or FedAdam, the third after a resume: each global model is the optimiser's step from
    what the clients were sent and what FedAvg made of their replies, by hand. A resume that lost the momentum (or
    the moments, or FedAdam's round count) would give round 3 a different model; every model stays float32."""
    sent, averaged = [], []
    configure_train, aggregate_train = FedAvg.configure_train, FedAvg.aggregate_train

    def recording_configure_train(self, server_round, arrays, config, grid):
        sent.append(arrays.to_torch_state_dict())
        return configure_train(self, server_round, arrays, config, grid)

    def recording_aggregate_train(self, server_round, replies):
        arrays, metrics = aggregate_train(self, server_round, replies)  # the plain average, before the server's step
        averaged.append(arrays.to_torch_state_dict())
        return arrays, metrics

    run = [*TEXT_RUN, *flags, "--output_dir", str(tmp_path)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FedAvg, "configure_train", recording_configure_train)
        patch.setattr(FedAvg, "aggregate_train", recording_aggregate_train)
        patch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        patch.setenv("OMP_NUM_THREADS", "1")
        train_federated.main([*run, "--num_rounds", "2"])
        saved_state = load_file(tmp_path / "federated_checkpoint" / "server_optimiser.safetensors")
        results = train_federated.main([*run, "--num_rounds", "3", "--resume"])
    assert len(sent) == len(averaged) == 3 and [row["round"] for row in results["history"]] == [0, 1, 2, 3]
    assert card in (tmp_path / "README.md").read_text()
    final = load_file(tmp_path / "model.safetensors")
    states = dict.fromkeys(sent[0])
    for round_index, (start, average) in enumerate(zip(sent, averaged)):
        following = sent[round_index + 1] if round_index < 2 else final
        for name in start:
            expected, states[name] = step(round_index + 1, start[name].double(), average[name].double(), states[name])
            assert following[name].dtype == start[name].dtype == torch.float32
            torch.testing.assert_close(following[name].double(), expected, rtol=1e-5, atol=1e-6)
            if round_index == 1:
                for moment, value in states[name].items():
                    torch.testing.assert_close(saved_state[f"{moment}.{name}"].double(), value, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(final[name], averaged[-1][name]) for name in final)


def single_gaussian_epsilon(noise_multiplier: float, delta: float) -> float:
    """Straight from dp-accounting (Google's library, under Flower's accountant), for one Gaussian mechanism."""
    from dp_accounting import dp_event, rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.GaussianDpEvent(noise_multiplier))
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fraction_train", "0"], r"--fraction_train must be in \(0, 1\]"),
        (["--fraction_train", "1.5"], r"--fraction_train must be in \(0, 1\]"),
        (["--alpha", "0"], "--alpha must be > 0"),
        (["--alpha", "-0.5"], "--alpha must be > 0"),
        (["--num_clients", "91"], "--num_clients 91 x --min_partition_size 1 is more than the 90 training examples"),
        (["--dp_noise_multiplier", "0"], "--dp_noise_multiplier must be > 0"),
        (["--task", "audio"], "--task 'audio' unknown"),
        (["--server_momentum", "0.9"], "--server_momentum applies to --strategy fedavgm or fedadam only"),
        (["--strategy", "fedavgm", "--server_tau", "0.1"], "--server_tau applies to --strategy fedadam only"),
        (["--strategy", "fedavgm", "--server_momentum", "1"], r"--server_momentum must be in \[0, 1\)"),
        (["--strategy", "fedavgm", "--server_learning_rate", "0"], "--server_learning_rate must be > 0"),
        (["--strategy", "fedavgm", "--dp_noise_multiplier", "1.0"], "--strategy fedavgm cannot run under --dp_noise_multiplier"),
        (["--strategy", "fedadam", "--server_beta_2", "1"], r"--server_beta_2 must be in \[0, 1\)"),
        (["--strategy", "fedadam", "--server_tau", "0"], "--server_tau must be > 0"),
        (["--strategy", "fedadam", "--dp_noise_multiplier", "1.0"], "--strategy fedadam cannot run under --dp_noise_multiplier"),
    ],
)
def test_bad_flags_get_clear_errors_before_any_runtime_starts(flags, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train_federated.main([*TEXT_RUN, *flags, "--output_dir", str(tmp_path)])


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--strategy", "fedavg"], "strategy: FedAvg (McMahan et al. 2017);"),
        (["--strategy", "fedavgm"], "strategy: FedAvgM (Hsu et al. 2019), server learning rate 1, momentum 0.9;"),
        (["--strategy", "fedadam"], "strategy: FedAdam (Reddi et al. 2021), server learning rate 0.01, beta_1 0.9, beta_2 0.99, tau 0.001;"),
        (["--strategy", "fedprox", "--proximal_mu", "0.1"], "strategy: FedProx (Li et al. 2020), mu=0.1;"),
        (["--round_lr_scheduler_type", "cosine", "--num_rounds", "4"], "(learning rate 0.005, decayed cosine across the rounds to 0.146x in the last, batch 8)"),
    ],
)
def test_the_card_section_names_the_strategy_and_its_settings(flags, named, tmp_path):
    from federated_server import setup_section

    task = FederatedTask([*TEXT_RUN, *flags, "--output_dir", str(tmp_path)])
    round_zero = {"round": 0, "test_accuracy": 0.1, "test_loss": 2.3, "seconds": 0.0, "bytes_sent": 0, "bytes_total": 0, "clients": 0, "failures": 0}
    assert named in setup_section(task, [round_zero], None)


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    task = FederatedTask([*TEXT_RUN, "--resume", "--output_dir", str(tmp_path)])
    from federated_server import load_checkpoint

    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint in"):
        load_checkpoint(task, tmp_path)


def test_fedprox_adds_the_proximal_term_to_the_local_loss(tmp_path):
    task = FederatedTask([*TEXT_RUN, "--strategy", "fedprox", "--proximal_mu", "0.5", "--output_dir", str(tmp_path)])
    assert FederatedArguments(strategy="fedavg").proximal_weight == 0.0 and task.federated.proximal_weight == 0.5
    model = task.model
    trainer = FedProxTrainer(proximal_mu=0.5, model=model, args=task.local_args, data_collator=task.collator)
    batch = task.collator([task.data["train"][index] for index in range(4)])
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)  # local training moved every weight by 0.01
    model.eval()  # no dropout: the two losses below see the same forward pass
    model.training = True  # ...but the proximal term applies in training mode only
    plain = FedProxTrainer(proximal_mu=0.0, model=model, args=task.local_args).compute_loss(model, dict(batch))
    proximal = trainer.compute_loss(model, dict(batch))
    expected = 0.5 / 2 * sum(parameter.numel() * 0.01**2 for parameter in model.parameters())
    assert float(proximal - plain) == pytest.approx(expected, rel=1e-3)
    assert np.isfinite(float(proximal))


@pytest.mark.parametrize("arch", ["vit", "gfnet", "afno"])
def test_a_client_trains_every_image_family_on_its_partition(arch, tmp_path):
    """The ClientApp's work without the runtime: the round's global weights in, the client's weights and example
    count out, and the server's test evaluation of them."""
    task = FederatedTask([
        "--task", "image", "--arch", arch, "--model_size", "tiny", "--num_clients", "4", "--alpha", "0.5",
        "--max_train_samples", "80", "--max_test_samples", "16", *QUICK, "--output_dir", str(tmp_path),
    ])
    start = {name: tensor.clone() for name, tensor in task.model.state_dict().items()}
    weights, metrics = task.train_client(2, start, server_round=1)
    assert weights.keys() == start.keys()
    assert any(not torch.equal(weights[name], start[name]) for name in start)
    assert metrics["num-examples"] == len(task.partition[2]) and np.isfinite(metrics["train-loss"])
    assert 0 <= task.evaluate(weights)["test_accuracy"] <= 1


@pytest.mark.parametrize(
    ("schedule", "factors"),
    [("constant", [1.0, 1.0, 1.0, 1.0]), ("linear", [1.0, 0.75, 0.5, 0.25]), ("cosine", [1.0, 0.853553, 0.5, 0.146447])],
)
def test_clients_train_at_the_rounds_decayed_learning_rate(schedule, factors, tmp_path, monkeypatch):
    """--round_lr_scheduler_type: round r trains at --learning_rate x the schedule at (r - 1) / num_rounds, seen in
    the optimiser the client's Trainer builds, and resumable since it depends on the round number only."""
    task = FederatedTask([*TEXT_RUN, "--num_rounds", "4", "--round_lr_scheduler_type", schedule, "--output_dir", str(tmp_path)])
    assert [task.federated.round_lr_factor(r) for r in range(1, 5)] == pytest.approx(factors, abs=1e-6)
    rates = []
    create_optimizer = FedProxTrainer.create_optimizer

    def recording_create_optimizer(self, *args, **kwargs):
        optimizer = create_optimizer(self, *args, **kwargs)
        rates.append(optimizer.param_groups[0]["lr"])
        return optimizer

    monkeypatch.setattr(FedProxTrainer, "create_optimizer", recording_create_optimizer)
    start = {name: tensor.clone() for name, tensor in task.model.state_dict().items()}
    for server_round in (1, 3):
        task.train_client(0, start, server_round)
    assert rates == pytest.approx([5e-3 * factors[0], 5e-3 * factors[2]])
    assert task.evaluate(start)  # the server's evaluation Trainer is not decayed: it trains nothing
    assert task.local_args.learning_rate == 5e-3
