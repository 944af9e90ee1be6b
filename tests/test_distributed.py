"""Real data-parallel training on this CPU: two gloo ranks launched with recipes/accelerate/cpu_ddp_2proc.yaml.

The runs use tests/trainer_probe.py (a recipe in miniature: the recipes' argument parsing and checks, Trainer, rank 0
saving) with a dropout-free model on fixed-length sequences, so that every example weighs the same in the loss and a
2-rank run with per-device batch 4 must take the same steps as one process with batch 8. The translation recipe
itself runs under the same launch at the end. Slowest: test_translation_recipe_under_ddp (about 15 s on 2 free
cores) and the module fixture (two launches in parallel, about 10 s).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import ClusterConfig
from safetensors.torch import load_file
from transformers import TrainingArguments

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "trainer_probe.py"
CONFIGS = ROOT / "recipes" / "accelerate"
ACCELERATE = Path(sys.executable).parent / "accelerate"
sys.path.insert(0, str(ROOT / "recipes"))
from recipe_utils import prepare_training  # noqa: E402

PROBE_ARGS = ["--max_steps", "3", "--seed", "7", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def start_probe(launcher: list[str], folder: Path, per_device_batch: int) -> subprocess.Popen:
    command = [
        *launcher, str(PROBE), "--output_dir", str(folder / "out"), "--record_dir", str(folder / "records"),
        "--per_device_train_batch_size", str(per_device_batch), *PROBE_ARGS,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)


def finish(process: subprocess.Popen, folder: Path) -> dict[int, dict]:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-4000:]
    records = [json.loads(path.read_text()) for path in sorted((folder / "records").glob("rank*.json"))]
    return {record["rank"]: record for record in records}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The same 3 steps twice, in parallel: 2 DDP ranks x batch 4, and 1 process x batch 8."""
    ddp_dir, single_dir = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("single")
    ddp = start_probe([str(ACCELERATE), "launch", "--config_file", str(CONFIGS / "cpu_ddp_2proc.yaml")], ddp_dir, 4)
    single = start_probe([sys.executable], single_dir, 8)
    return {"ddp": finish(ddp, ddp_dir), "ddp_dir": ddp_dir / "out", "single": finish(single, single_dir)[0], "single_dir": single_dir / "out"}


def test_two_ranks_train_together_on_different_batches(runs):
    ranks = runs["ddp"]
    assert sorted(ranks) == [0, 1]
    assert {record["world_size"] for record in ranks.values()} == {2}
    rank0, rank1 = ranks[0]["batches"], ranks[1]["batches"]
    assert len(rank0) == len(rank1) == 3
    for step, (batch0, batch1) in enumerate(zip(rank0, rank1)):
        assert len(batch0) == len(batch1) == 4
        assert not set(batch0) & set(batch1), f"step {step}: both ranks got examples {set(batch0) & set(batch1)}"
        # together the ranks take exactly the examples of the single process's step, in the same order
        assert batch0 + batch1 == runs["single"]["batches"][step]


def test_ddp_weights_equal_one_process_with_twice_the_batch(runs):
    ddp = load_file(runs["ddp_dir"] / "model.safetensors")
    single = load_file(runs["single_dir"] / "model.safetensors")
    assert ddp.keys() == single.keys()
    for name in single:
        # the gradients are the same sums in another order: equal up to fp32 rounding (seen: 2.5e-6 after 3 Adam steps)
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=2e-5, msg=name)


def test_only_rank_zero_writes_the_output_folder(runs):
    ranks = runs["ddp"]
    assert ranks[1]["writes"] == []
    written = {path for _, path in ranks[0]["writes"]}
    assert {"config.json", "modeling_transformer.py"} <= written
    assert (runs["ddp_dir"] / "model.safetensors").exists()


def test_multi_process_launch_without_cpu_mode_is_refused(tmp_path, monkeypatch):
    """What a rank sees when it did not join the process group (world size 1 under a 2-process launch)."""
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="launched as one of 2 processes, but this process trains alone"):
        prepare_training(args)


def test_launch_configs_are_valid_accelerate_configs():
    configs = {path.stem: ClusterConfig.from_yaml_file(path) for path in sorted(CONFIGS.glob("*.yaml"))}
    assert set(configs) == {"cpu_ddp_2proc", "gpu_bf16", "gpu_fp16", "multi_gpu_ddp", "multi_node_ddp", "fsdp"}
    cpu = configs["cpu_ddp_2proc"]
    assert (cpu.distributed_type, cpu.num_processes, cpu.use_cpu) == ("MULTI_GPU", 2, True)
    assert (configs["gpu_bf16"].mixed_precision, configs["gpu_fp16"].mixed_precision) == ("bf16", "fp16")
    node = configs["multi_node_ddp"]
    assert node.num_machines == 2 and node.main_process_ip and node.machine_rank == 0
    fsdp = configs["fsdp"]
    assert fsdp.distributed_type == "FSDP" and fsdp.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    for path in CONFIGS.glob("*.yaml"):
        assert "#" in path.read_text().splitlines()[0], f"{path.name} starts with a comment saying how to use it"
        assert yaml.safe_load(path.read_text())["compute_environment"] == "LOCAL_MACHINE"


def test_translation_recipe_under_ddp(tmp_path, tiny_translation_pairs):
    """The real recipe on 2 ranks: both join (world size 2 in the log), training and the sharded test
    translation finish, and the output folder holds one model and one line per test pair."""
    pairs = tiny_translation_pairs
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("".join(f"{en}\t{zh}\n" for en, zh in pairs * 8), encoding="utf-8")
    test.write_text("".join(f"{en}\t{zh}\n" for en, zh in pairs * 2), encoding="utf-8")
    output_dir = tmp_path / "out"
    result = subprocess.run(
        [
            str(ACCELERATE), "launch", "--config_file", str(CONFIGS / "cpu_ddp_2proc.yaml"),
            str(ROOT / "recipes" / "train_translation.py"), "--arch", "transformer", "--model_size", "tiny",
            "--train_file", str(train), "--test_file", str(test), "--vocab_size", "300", "--output_dir", str(output_dir),
            "--max_steps", "3", "--per_device_train_batch_size", "4", "--test_num_beams", "1",
            "--max_target_length", "8", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
            "--log_level", "info", "--disable_tqdm", "true",
        ],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "world size 2 (rank 0" in result.stderr
    assert "4 per device x 2 processes x 1 accumulation steps = 8" in result.stderr
    assert (output_dir / "model.safetensors").exists() and not list(output_dir.glob("*.bin"))
    lines = (output_dir / "test_translations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 * len(pairs)
