"""Every way of saving a model writes a folder whose ``pipeline(task, model=..., trust_remote_code=True)`` works on a
machine without this package: ``model.save_pretrained``, ``model.push_to_hub`` (loopback Hub, tests/hub_server.py)
and ``Trainer.save_model``, for every family. The two later paths run after a pipeline's ``save_pretrained`` (as in
the recipes), which leaves ``custom_pipelines`` in the model's config: before the fix, config.json then named
``pipeline_translation.py`` without the file being written.
"""

import copy
import textwrap

import pytest
from families import FAMILIES, IMAGES, TEXTS
from fresh_process import run_fresh
from transformers import Trainer, TrainingArguments

pytestmark = [pytest.mark.usefixtures("torch_single_thread_module"), pytest.mark.slow]

SAVE_PATHS = ("save_pretrained", "push_to_hub", "trainer_save_model")

REMOTE_SCRIPT = textwrap.dedent(
    """
    import traceback

    import PIL.Image
    import torch
    import transformers

    results = {}
    for job in torch.load(sys.argv[1]):
        examples = [PIL.Image.fromarray(image.numpy()) for image in job["examples"]] if job["images"] else job["examples"]
        try:
            results[job["key"]] = transformers.pipeline(job["task"], model=job["model"], trust_remote_code=True)(examples)
        except Exception:
            results[job["key"]] = {"error": traceback.format_exc()}
    torch.save(results, sys.argv[2])
    """
)


def save(path: str, family, model, processor, target, tmp_path) -> str:
    """Saves ``model`` and its processor through ``path``; returns what ``pipeline(model=...)`` takes."""
    model = copy.deepcopy(model)
    if path == "save_pretrained":  # a model never wrapped in a pipeline
        model.config.custom_pipelines = {}
        model.save_pretrained(target)
        processor.save_pretrained(target)
        return str(target)
    family.pipeline(model, processor).save_pretrained(tmp_path / "pipeline_saved_first")
    if path == "push_to_hub":
        repo_id = f"tester/save-paths-{family.name}"
        model.push_to_hub(repo_id)
        processor.push_to_hub(repo_id)
        return repo_id
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), use_cpu=True, report_to="none")
    Trainer(model=model, args=args, processing_class=processor).save_model(str(target))
    return str(target)


@pytest.fixture(scope="module")
def remote_pipelines(local_hub, request, tmp_path_factory) -> dict:
    jobs, expected = [], {}
    for family in FAMILIES:
        model, processor = family.build(request)
        expected[family.name] = family.pipeline(model, processor)(family.examples())
        for path in SAVE_PATHS:
            work = tmp_path_factory.mktemp(f"{family.name}-{path}")
            location = save(path, family, model, processor, work / "saved", work)
            jobs.append({
                "key": (family.name, path), "task": family.task, "model": location, "images": family.images,
                "examples": IMAGES if family.images else TEXTS,
            })  # fmt: skip
    remote = run_fresh(REMOTE_SCRIPT, jobs, tmp_path_factory.mktemp("save_paths_remote"))
    return {"expected": expected, "remote": remote}


@pytest.mark.parametrize("path", SAVE_PATHS)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_saved_folder_pipeline_works_without_the_package(remote_pipelines, family, path):
    result = remote_pipelines["remote"][(family.name, path)]
    assert not (isinstance(result, dict) and "error" in result), result["error"]
    assert result == remote_pipelines["expected"][family.name]
