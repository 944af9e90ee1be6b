"""Federated training with Flower: the suite's classifiers trained across clients that never share their data.

    python recipes/train_federated.py --task text --model_size base --num_clients 10 --num_rounds 10 --alpha 0.5 \
        --num_train_epochs 1 --learning_rate 2e-3 --output_dir outputs/federated_text
    python recipes/train_federated.py --task image --arch vit --model_size base --strategy fedprox --proximal_mu 0.01 \
        --num_clients 10 --fraction_train 0.5 --output_dir outputs/federated_vit
    python recipes/train_federated.py ... --mode deployment        # SuperLink + SuperNodes as processes on 127.0.0.1
    python recipes/train_federated.py ... --strategy fedavgm --server_momentum 0.9       # FedAvg + server momentum
    python recipes/train_federated.py ... --strategy fedadam --server_learning_rate 1e-2  # Adam on the server
    python recipes/train_federated.py ... --dp_noise_multiplier 1.0 --dp_clipping_norm 1.0   # central DP
    python recipes/train_federated.py ... --resume                 # continue from the last saved round

The flags are the federated ones (``--num_clients``, ``--num_rounds``, ``--strategy``, ``--fraction_train``,
``--alpha``, DP, mode; see ``recipes/federated/federated_task.py``) plus every flag of the task's centralised recipe
(``train_text_classification.py`` for ``--task text``, ``train_image_classification.py`` for ``--task image``):
model sizes, data, tokenizer, and the ``TrainingArguments`` of each client's local training (``--num_train_epochs``
or ``--max_steps`` per round, ``--learning_rate``, ``--per_device_train_batch_size``, ...).

``--mode simulation`` runs the Flower App (recipes/federated/) in Flower's simulation runtime (Ray) in this process;
``--mode deployment`` starts a SuperLink and ``--num_clients`` SuperNodes as separate processes on 127.0.0.1, submits
the same app with ``flwr run`` and stops them when it ends. On real machines, start ``flower-superlink`` on one and
``flower-supernode --superlink HOST:PORT --node-config "partition-id=I num-partitions=N"`` on the others, each in a
checkout with the venv and ``PYTHONPATH=recipes``, then ``flwr run recipes/federated <connection> --run-config
run_config.toml`` (this script writes that file into the output folder).

The output folder holds the final global model saved as the centralised recipe saves its own (weights and code,
tokenizer or processor, pipeline, model card extended by the federated setup, confusion matrix), ``partition.json``
and ``partition.png`` (each client's example count and label histogram), ``progress.json`` (per round: test accuracy
and loss, seconds, bytes sent, clients, failures), ``federated_results.json`` and ``federated_checkpoint/``.
"""

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

RECIPES = Path(__file__).resolve().parent
FEDERATED_APP = RECIPES / "federated"
sys.path[:0] = [str(RECIPES), str(FEDERATED_APP)]

import psutil  # noqa: E402  (installed with accelerate)
import tomli_w  # noqa: E402  (installed with flwr)

import federated_client  # noqa: E402
from federated_server import RESULTS_FILE, make_server_app  # noqa: E402
from federated_task import FederatedTask, task_for  # noqa: E402

logger = logging.getLogger(__name__)

PATH_FLAGS = {
    "--output_dir", "--data_dir", "--train_file", "--validation_file", "--test_file", "--tokenizer_name", "--train_dir",
    "--validation_dir", "--test_dir", "--args_file", "--model_name_or_path",
}
BIN = Path(sys.executable).parent
DEPLOYMENT_CONNECTION = "hf-models-loopback"


def absolute_paths(argv: list[str]) -> list[str]:
    """Path flags made absolute: the ServerApp and ClientApps of a deployment run in other working directories."""
    out = list(argv)
    for index, argument in enumerate(out[:-1]):
        if argument in PATH_FLAGS and (argument == "--output_dir" or Path(out[index + 1]).exists()):
            out[index + 1] = str(Path(out[index + 1]).resolve())
    return out


def python_path() -> str:
    """recipes/ and the app folder first, for every process that imports the app (Ray workers, SuperNodes)."""
    return os.pathsep.join(filter(None, [str(RECIPES), str(FEDERATED_APP), os.environ.get("PYTHONPATH")]))


def run_in_simulation(argv: list[str], task: FederatedTask) -> dict:
    """Flower's simulation runtime: the ServerApp in a thread of this process, ``--num_clients`` virtual SuperNodes
    whose ClientApps run in Ray workers (``simulation_cpus / client_cpus`` at a time)."""
    from flwr.simulation import run_simulation

    federated = task.federated
    os.environ["PYTHONPATH"] = python_path()  # Ray's workers are started with this environment
    init_args = {"num_cpus": federated.simulation_cpus} if federated.simulation_cpus else {}
    results: dict = {}
    run_simulation(
        server_app=make_server_app(argv, results),
        client_app=federated_client.app,
        num_supernodes=federated.num_clients,
        backend_config={"client_resources": {"num_cpus": federated.client_cpus, "num_gpus": 0.0}, "init_args": init_args},
    )
    if not results:
        raise RuntimeError("the simulation ended without a result: see the ServerApp's error above")
    return results


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with code {process.returncode} before listening; see {log}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{process.args[0]} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; see {log}")


def run_in_deployment(argv: list[str], task: FederatedTask) -> dict:
    """A SuperLink and ``--num_clients`` SuperNodes as separate processes on loopback, the app submitted with
    ``flwr run``; logs in ``<output_dir>/deployment/``. The processes are stopped however the run ends."""
    federated = task.federated
    output_dir = Path(task.training_args.output_dir)
    folder = output_dir / "deployment"
    folder.mkdir(parents=True, exist_ok=True)
    (output_dir / RESULTS_FILE).unlink(missing_ok=True)
    link_port, *node_ports = free_ports(1 + federated.num_clients)
    base_env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), "PYTHONPATH": python_path(), "FLWR_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    processes: list[subprocess.Popen] = []

    def start(name: str, command: list[str]) -> tuple[subprocess.Popen, Path]:
        home = folder / name
        home.mkdir(exist_ok=True)  # every process its own FLWR_HOME: each SuperNode installs the app bundle itself
        log = folder / f"{name}.log"
        process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env={**base_env, "FLWR_HOME": str(home)})
        processes.append(process)
        return process, log

    try:
        superlink, log = start("superlink", [
            str(BIN / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
            "--host", "127.0.0.1", "--port", str(link_port), "--database", str(folder / "superlink" / "state.db"),
        ])
        wait_for_port(link_port, superlink, log)
        for partition_id, port in enumerate(node_ports):
            start(f"supernode_{partition_id}", [
                str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                "--host", "127.0.0.1", "--port", str(port),
                "--node-config", f"partition-id={partition_id} num-partitions={federated.num_clients}",
            ])
        cli_home = folder / "cli"
        cli_home.mkdir(exist_ok=True)
        (cli_home / "config.toml").write_text(tomli_w.dumps({
            "superlink": {"default": DEPLOYMENT_CONNECTION, DEPLOYMENT_CONNECTION: {"address": f"127.0.0.1:{link_port}", "insecure": True}},
        }))
        run_config = output_dir / "run_config.toml"
        run_config.write_text(tomli_w.dumps({"recipe-args": json.dumps(argv)}))
        submitted = subprocess.run(
            [str(BIN / "flwr"), "run", str(FEDERATED_APP), DEPLOYMENT_CONNECTION, "--run-config", str(run_config), "--stream"],
            env={**base_env, "FLWR_HOME": str(cli_home)}, capture_output=True, text=True,
        )
        (folder / "flwr_run.log").write_text(submitted.stdout + submitted.stderr)
        results_file = output_dir / RESULTS_FILE
        if submitted.returncode != 0 or not results_file.is_file():
            raise RuntimeError(
                f"the deployment run failed (flwr run exit code {submitted.returncode}); logs in {folder}:\n"
                + (submitted.stdout + submitted.stderr)[-3000:]
            )
        return json.loads(results_file.read_text())
    finally:
        stop_process_trees(processes)


def stop_process_trees(processes: list[subprocess.Popen]) -> None:
    """Terminates the processes and everything they started: the SuperLink and SuperNodes spawn ``flower-superexec``
    processes in sessions of their own, which would outlive their parents."""
    tree = []
    for process in processes:
        try:
            tree += [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for member in reversed(tree):
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=20)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    for process in processes:
        process.wait()


def main(argv: list[str] | None = None) -> dict:
    argv = absolute_paths(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("flwr").propagate = False  # Flower prints its own lines (and ours, its children's)
    # Arguments, data, tokenizer or processor, model and partition first: bad flags fail before any runtime starts.
    task = task_for(json.dumps(argv))
    runner = run_in_simulation if task.federated.mode == "simulation" else run_in_deployment
    results = runner(argv, task)
    logger.info("final global model: test accuracy %.2f %% after %d rounds, %s bytes communicated, %d failed client updates; saved in %s",
                100 * results["test_accuracy"], task.federated.num_rounds, f"{results['total_bytes']:,}", results["failures"], task.training_args.output_dir)
    return results


if __name__ == "__main__":
    main()
