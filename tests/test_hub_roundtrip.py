"""Publishing every model family over real HTTP: ``push_to_hub`` here, ``from_pretrained`` / ``pipeline`` from the
loopback Hub (tests/hub_server.py) in a fresh process that cannot import hf_models, and a pinned ``revision``.

Each family (tests/families.py) publishes three commits to its own repo: ``model.push_to_hub`` of a model with
other weights (its sha is the pinned revision), ``push_to_hub`` of the tokenizer or image processor, then the real
model with its pipeline (``pipeline.push_to_hub``: for translation, with the pipeline's code). One subprocess then
loads every repo the way a user without this package would, with ``trust_remote_code=True``.
"""

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest
import torch
from families import FAMILIES, IMAGES, TEXTS, Family
from huggingface_hub.errors import HfHubHTTPError

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

# A user's machine: hf_models cannot be imported, the cache is empty, and no token is set. Every repo is loaded with
# the Auto classes and pipeline(); the results of a family that fails carry its traceback instead.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys

    sys.modules["hf_models"] = None
    try:
        import hf_models
    except ImportError:
        pass
    else:
        raise SystemExit("hf_models is importable: this run would not show that the repos are self-contained")

    import traceback

    import PIL.Image
    import torch
    import transformers


    def load(job):
        repo_id = job["repo_id"]
        if job["images"]:
            examples = [PIL.Image.fromarray(image.numpy()) for image in job["examples"]]
            processor = transformers.AutoImageProcessor.from_pretrained(repo_id, trust_remote_code=True)
            batch = dict(processor(examples, return_tensors="pt"))
        else:
            examples = job["examples"]
            processor = transformers.AutoTokenizer.from_pretrained(repo_id, trust_remote_code=True)
            batch = dict(processor(examples, padding=True, return_tensors="pt"))
        inputs = dict(batch)
        if job["auto_model"] == "AutoModelForSeq2SeqLM":
            inputs["decoder_input_ids"] = batch["input_ids"]  # teacher forcing: any target ids do for a comparison
        auto_model = getattr(transformers, job["auto_model"])
        model = auto_model.from_pretrained(repo_id, trust_remote_code=True).eval()
        first = auto_model.from_pretrained(repo_id, revision=job["first_revision"], trust_remote_code=True).eval()
        remote_pipeline = transformers.pipeline(job["task"], model=repo_id, trust_remote_code=True)
        with torch.no_grad():
            logits, first_logits = model(**inputs).logits, first(**inputs).logits
        return {
            "batch": batch,
            "logits": logits,
            "first_logits": first_logits,
            "predictions": remote_pipeline(examples),
            "modules": [
                type(obj).__module__ for obj in (model, first, remote_pipeline.model, processor, remote_pipeline)
            ],
        }


    results = {}
    for job in torch.load(sys.argv[1]):
        try:
            results[job["name"]] = load(job)
        except Exception:
            results[job["name"]] = {"error": traceback.format_exc()}
    torch.save(results, sys.argv[2])
    """
)


@dataclass
class Published:
    """One family's side of the round trip: what was pushed, and what the fresh process got back."""

    family: Family
    model: object
    first_model: object
    processor: object
    commits: list[str]
    remote: dict = field(default_factory=dict)


def repo_id(family: Family) -> str:
    return f"tester/tiny-{family.name}"


def publish(family: Family, request) -> Published:
    model, processor = family.build(request)
    torch.manual_seed(1)
    first_model = type(model)(model.config).eval()  # same architecture, other weights
    commits = [first_model.push_to_hub(repo_id(family)).oid]
    commits.append(processor.push_to_hub(repo_id(family)).oid)
    family.pipeline(model, processor).push_to_hub(repo_id(family))
    return Published(family, model, first_model, processor, commits)


@pytest.fixture(scope="module")
def published(local_hub, request, tmp_path_factory) -> dict[str, Published]:
    results = {family.name: publish(family, request) for family in FAMILIES}
    jobs = [
        {
            "name": family.name,
            "repo_id": repo_id(family),
            "first_revision": results[family.name].commits[0],
            "auto_model": family.auto_model,
            "task": family.task,
            "images": family.images,
            "examples": IMAGES if family.images else TEXTS,
        }
        for family in FAMILIES
    ]
    work_dir = tmp_path_factory.mktemp("remote_user")
    torch.save(jobs, work_dir / "jobs.pt")
    env = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}  # downloads need no token
    fresh_cache = {"HF_HOME": "home", "HF_HUB_CACHE": "home/hub", "HF_MODULES_CACHE": "home/modules"}
    env.update({key: str(work_dir / path) for key, path in fresh_cache.items()}, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, "jobs.pt", "results.pt"],
        cwd=work_dir, env=env, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for name, remote in torch.load(work_dir / "results.pt").items():
        results[name].remote = remote
    return results


@pytest.fixture(params=[family.name for family in FAMILIES])
def family_result(request, published) -> Published:
    result = published[request.param]
    assert "error" not in result.remote, result.remote.get("error")
    return result


def test_repo_holds_safetensors_code_and_processor(family_result, local_hub):
    files = local_hub.files(repo_id(family_result.family))
    assert "model.safetensors" in files and "config.json" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))], "pickle-free weights only"
    assert [name for name in files if name.startswith("modeling_")], "the model's code travels with it"
    processor_file = "preprocessor_config.json" if family_result.family.images else "tokenizer.json"
    assert processor_file in files
    shas = local_hub.commit_shas(repo_id(family_result.family))
    assert shas[1:3] == family_result.commits and len(shas) == 4  # creation, first model, processor, model


def test_remote_processor_gives_the_same_inputs(family_result):
    expected = family_result.family.process(family_result.processor)
    assert family_result.remote["batch"].keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(family_result.remote["batch"][name], tensor), name


def remote_inputs(result: Published) -> dict[str, torch.Tensor]:
    inputs = dict(result.remote["batch"])
    if result.family.auto_model == "AutoModelForSeq2SeqLM":
        inputs["decoder_input_ids"] = inputs["input_ids"]
    return inputs


def test_remote_model_gives_identical_logits(family_result):
    with torch.no_grad():
        expected = family_result.model(**remote_inputs(family_result)).logits
    assert torch.equal(family_result.remote["logits"], expected)


def test_pinned_revision_gives_the_first_weights(family_result):
    with torch.no_grad():
        expected = family_result.first_model(**remote_inputs(family_result)).logits
    assert torch.equal(family_result.remote["first_logits"], expected)
    assert not torch.equal(family_result.remote["first_logits"], family_result.remote["logits"])


def test_remote_pipeline_predicts_like_the_original(family_result):
    family = family_result.family
    expected = family.pipeline(family_result.model, family_result.processor)(family.examples())
    assert family_result.remote["predictions"] == expected


def test_remote_classes_come_from_the_repo_code(family_result):
    model, first, pipeline_model, processor, remote_pipeline = family_result.remote["modules"]
    for module in (model, first, pipeline_model):
        assert module.startswith("transformers_modules.tester."), module
    if family_result.family.images:  # the image processor is this package's code too
        assert processor.startswith("transformers_modules.tester."), processor
    if family_result.family.pipeline_class:
        assert remote_pipeline.startswith("transformers_modules.tester."), remote_pipeline


def test_push_with_an_unknown_token_is_refused(local_hub, tiny_translation_tokenizer):
    with pytest.raises(HfHubHTTPError, match="Invalid credentials") as error:
        tiny_translation_tokenizer.push_to_hub("tester/refused", token="hf_not_a_valid_token")
    assert error.value.response.status_code == 401
    assert "tester/refused" not in local_hub.repos
