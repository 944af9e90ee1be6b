"""Publishing every model family over real HTTP: ``push_to_hub`` here, ``from_pretrained`` / ``pipeline`` from the
loopback Hub (tests/hub_server.py) in a fresh process that cannot import hf_models, and a pinned ``revision``.

Each family publishes three commits to its own repo: a model with other weights (its sha is the pinned revision),
the tokenizer or image processor, then the real model (plus, for translation, the pipeline's code). One subprocess
then loads every repo the way a user without this package would, with ``trust_remote_code=True``.

A new family is one entry in ``FAMILIES``.
"""

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import pytest
import torch
from huggingface_hub.errors import HfHubHTTPError
from transformers import pipeline
from vision_testing import tiny_classifier

from hf_models import (
    ClassificationImageProcessor,
    GRUSeq2SeqConfig,
    GRUSeq2SeqForConditionalGeneration,
    TransformerConfig,
    TransformerForSequenceClassification,
)
from hf_models.pipeline_translation import TranslationPipeline

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

TEXTS = ["i like tea", "we drink water", "you like rice tea"]
IMAGES = [torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (20, 20), dtype=np.uint8)) for seed in range(3)]


def push_model(model, processor, repo_id: str) -> None:
    model.push_to_hub(repo_id)


def push_translation_pipeline(model, tokenizer, repo_id: str) -> None:
    """Model, tokenizer, generation config, the pipeline's code and its ``custom_pipelines`` entry, in one commit:
    what ``pipeline("translation", model=repo_id, trust_remote_code=True)`` needs."""
    TranslationPipeline(model=model, tokenizer=tokenizer).push_to_hub(repo_id)


def trained_transformer_translator(request):
    return request.getfixturevalue("tiny_transformer_translator"), request.getfixturevalue("tiny_translation_tokenizer")


def gru_translator(request):
    tokenizer = request.getfixturevalue("tiny_translation_tokenizer")
    torch.manual_seed(0)
    config = GRUSeq2SeqConfig(vocab_size=len(tokenizer), hidden_size=16, embedding_size=16, dropout=0.0)
    model = GRUSeq2SeqForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 6
    return model.eval(), tokenizer


def transformer_text_classifier(request):
    tokenizer = request.getfixturevalue("tiny_translation_tokenizer")
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        encoder_layers=1,
        decoder_layers=0,
        max_position_embeddings=16,
        dropout=0.0,
        id2label={0: "tea", 1: "water", 2: "rice"},
    )
    return TransformerForSequenceClassification(config).eval(), tokenizer


def image_classifier(family: str):
    def build(request):
        model = tiny_classifier(family)
        size = model.config.image_size
        processor = ClassificationImageProcessor(
            size={"height": size, "width": size}, num_channels=1, image_mean=[0.5], image_std=[0.5]
        )
        return model, processor

    return build


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable  # (pytest request) -> (model in eval mode, tokenizer or image processor)
    auto_model: str  # the Auto class a user loads the model with
    task: str  # the pipeline task
    publish: Callable = push_model  # (model, processor, repo_id): the last commit
    pipeline_class: type | None = None  # the in-process reference, where transformers has no pipeline for the task

    @property
    def images(self) -> bool:
        return self.task == "image-classification"

    @property
    def repo_id(self) -> str:
        return f"tester/tiny-{self.name}"


FAMILIES = [
    Family("transformer-translation", trained_transformer_translator, "AutoModelForSeq2SeqLM", "translation",
           push_translation_pipeline, TranslationPipeline),
    Family("gru-translation", gru_translator, "AutoModelForSeq2SeqLM", "translation",
           push_translation_pipeline, TranslationPipeline),
    Family("transformer-text-classification", transformer_text_classifier, "AutoModelForSequenceClassification",
           "text-classification"),
    Family("vit", image_classifier("vit"), "AutoModelForImageClassification", "image-classification"),
    Family("gfnet", image_classifier("gfnet"), "AutoModelForImageClassification", "image-classification"),
    Family("afno", image_classifier("afno"), "AutoModelForImageClassification", "image-classification"),
]  # fmt: skip


def examples(family: Family) -> list:
    """What a user hands to the processor and the pipeline: strings, or PIL images."""
    return [PIL.Image.fromarray(image.numpy()) for image in IMAGES] if family.images else list(TEXTS)


def process(family: Family, processor) -> dict[str, torch.Tensor]:
    kwargs = {} if family.images else {"padding": True}
    return dict(processor(examples(family), return_tensors="pt", **kwargs))


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
            "modules": [type(obj).__module__ for obj in (model, first, remote_pipeline.model, processor)],
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


def publish(family: Family, request) -> Published:
    model, processor = family.build(request)
    torch.manual_seed(1)
    first_model = type(model)(model.config).eval()  # same architecture, other weights
    commits = [first_model.push_to_hub(family.repo_id).oid]
    commits.append(processor.push_to_hub(family.repo_id).oid)
    family.publish(model, processor, family.repo_id)
    return Published(family, model, first_model, processor, commits)


@pytest.fixture(scope="module")
def published(local_hub, request, tmp_path_factory) -> dict[str, Published]:
    results = {family.name: publish(family, request) for family in FAMILIES}
    jobs = [
        {
            "name": family.name,
            "repo_id": family.repo_id,
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
        cwd=work_dir, env=env, capture_output=True, text=True, timeout=300,
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
    files = local_hub.files(family_result.family.repo_id)
    assert "model.safetensors" in files and "config.json" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))], "pickle-free weights only"
    assert [name for name in files if name.startswith("modeling_")], "the model's code travels with it"
    processor_file = "preprocessor_config.json" if family_result.family.images else "tokenizer.json"
    assert processor_file in files
    shas = local_hub.commit_shas(family_result.family.repo_id)
    assert shas[1:3] == family_result.commits and len(shas) == 4  # creation, first model, processor, model


def test_remote_processor_gives_the_same_inputs(family_result):
    expected = process(family_result.family, family_result.processor)
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
    objects = {"model": family_result.model, "image_processor" if family.images else "tokenizer": family_result.processor}
    reference = family.pipeline_class(**objects) if family.pipeline_class else pipeline(family.task, **objects)
    expected = reference(examples(family))
    assert family_result.remote["predictions"] == expected


def test_remote_classes_come_from_the_repo_code(family_result):
    model_modules = family_result.remote["modules"][:3]
    assert all(module.startswith("transformers_modules.tester.") for module in model_modules), model_modules
    if family_result.family.images:  # the image processor is this package's code too
        assert family_result.remote["modules"][3].startswith("transformers_modules.tester.")


def test_push_with_an_unknown_token_is_refused(local_hub, tiny_translation_tokenizer):
    with pytest.raises(HfHubHTTPError, match="Invalid credentials") as error:
        tiny_translation_tokenizer.push_to_hub("tester/refused", token="hf_not_a_valid_token")
    assert error.value.response.status_code == 401
    assert "tester/refused" not in local_hub.repos
