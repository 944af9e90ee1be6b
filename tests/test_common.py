"""The common model tester (tests/model_tester.py) on every family of the registry (tests/families.py)."""

import json
import textwrap

import pytest
import torch
from families import COMMON_FAMILIES, IMAGES, TEXTS
from fresh_process import run_fresh
from model_tester import CHECKS, SLOW_CHECKS, ModelTester, assert_same_outputs
from transformers import AutoModel

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")


@pytest.mark.parametrize(
    "family, check",
    [
        pytest.param(
            family,
            check,
            marks=[pytest.mark.slow] if check in SLOW_CHECKS else [],
            id=f"{family.name}-{check}",
        )
        for family in COMMON_FAMILIES
        for check in CHECKS
    ],
)
def test_contract(family, check, request, tmp_path):
    model, processor = family.build(request)
    getattr(ModelTester(family, model, processor), f"check_{check}")(tmp_path)


# --- a user's machine: a fresh process that cannot import hf_models loads each family's saved folder -------------

FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import contextlib, io, traceback

    import numpy as np
    import PIL.Image
    import torch
    import transformers

    PROMPT = "Do you wish to run the custom code"


    def attempt(results, key, load):
        try:
            results[key] = load()
        except Exception:
            results[key] = {"error": traceback.format_exc()}


    def run(job):
        folder, results = job["folder"], {}
        if job["images"]:
            examples = [PIL.Image.fromarray(image.numpy()) for image in job["examples"]]
            auto_processor, kwargs = transformers.AutoImageProcessor, {}
        else:
            examples, auto_processor, kwargs = job["examples"], transformers.AutoTokenizer, {"padding": True}

        def processor():
            # stdin is closed: a prompt would print its question to stdout, then fail on EOF
            with contextlib.redirect_stdout(io.StringIO()) as stdout:
                processor = auto_processor.from_pretrained(folder, trust_remote_code=True)
            return {"module": type(processor).__module__, "stdout": stdout.getvalue(),
                    "batch": dict(processor(examples, return_tensors="pt", **kwargs))}

        def untrusted_processor():
            with contextlib.redirect_stdout(io.StringIO()) as stdout:
                try:
                    processor = auto_processor.from_pretrained(folder, trust_remote_code=False)
                except ValueError as error:
                    return {"stdout": stdout.getvalue(), "error_message": str(error)}
            return {"stdout": stdout.getvalue(), "module": type(processor).__module__}

        attempt(results, "processor", processor)
        attempt(results, "untrusted_processor", untrusted_processor)
        inputs = dict(results["processor"].get("batch", {}))
        if job["seq2seq"]:
            inputs.update(decoder_input_ids=inputs["input_ids"], use_cache=False)  # a cache object does not pickle

        def outputs(auto_class):
            model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True).eval()
            with torch.no_grad():
                output = model(**inputs)
            return {"class": type(model).__name__, "module": type(model).__module__, "output": output.to_tuple()}

        attempt(results, "head", lambda: outputs(job["auto_model"]))
        attempt(results, "base_model", lambda: outputs("AutoModel"))
        if job["feature_task"]:
            def features():
                extractor = transformers.pipeline(job["feature_task"], model=folder, trust_remote_code=True)
                return torch.tensor(extractor(examples[0]))
            attempt(results, "features", features)
        return results


    torch.save({job["name"]: run(job) for job in torch.load(sys.argv[1])}, sys.argv[2])
    """
)


@pytest.fixture(scope="module")
def fresh_process(request, tmp_path_factory) -> dict:
    """Each family saved the way a user saves (its pipeline's ``save_pretrained``: model, code, tokenizer or image
    processor), then loaded in ONE fresh process without the package, with stdin closed."""
    work_dir = tmp_path_factory.mktemp("fresh_process")
    jobs, local = [], {}
    for family in COMMON_FAMILIES:
        model, processor = family.build(request)
        folder = work_dir / family.name
        family.pipeline(model, processor).save_pretrained(folder)
        local[family.name] = (family, model, processor, folder)
        jobs.append({
            "name": family.name, "folder": str(folder), "images": family.images, "seq2seq": family.seq2seq,
            "auto_model": family.auto_model, "examples": IMAGES if family.images else TEXTS,
            "feature_task": None if family.seq2seq else family.feature_task,  # seq2seq base models need decoder ids
        })  # fmt: skip
    results = run_fresh(FRESH_PROCESS_SCRIPT, jobs, work_dir)
    return {name: (*local[name], remote) for name, remote in results.items()}


def fresh_case(families=COMMON_FAMILIES) -> list:
    return [pytest.param(family.name, marks=pytest.mark.slow, id=family.name) for family in families]


def local_inputs(family, processor) -> dict:
    return {**family.inputs(processor), **({"use_cache": False} if family.seq2seq else {})}


def remote(results: dict, key: str):
    """What the fresh process got for ``key``; its traceback if it raised."""
    result = results[key]
    assert not (isinstance(result, dict) and "error" in result), result["error"]
    return result


@pytest.mark.parametrize("name", fresh_case())
def test_fresh_process_gives_the_same_outputs(fresh_process, name):
    family, model, processor, _, results = fresh_process[name]
    head = remote(results, "head")
    assert head["class"] == type(model).__name__ and head["module"].startswith("transformers_modules."), head
    assert_same_outputs(remote(results, "processor")["batch"], family.process(processor))
    with torch.no_grad():
        expected = model(**local_inputs(family, processor)).to_tuple()
    assert_same_outputs(head["output"], expected)


@pytest.mark.parametrize("name", fresh_case())
def test_fresh_process_automodel_loads_the_base_model(fresh_process, name):
    """``auto_map`` lists ``AutoModel`` beside the head, so the family's base model loads from the head's folder with
    the head's weights (none missing): the same ``last_hidden_state`` as that class loaded here with the package."""
    family, model, processor, folder, results = fresh_process[name]
    assert "AutoModel" in json.loads((folder / "config.json").read_text())["auto_map"]
    base = remote(results, "base_model")
    base_class = AutoModel._model_mapping[type(model.config)]
    assert base["class"] == base_class.__name__, base["class"]
    # every weight of the base model comes from the head's checkpoint (a head may hold or subclass its base model)
    local, loading = base_class.from_pretrained(folder, output_loading_info=True)
    assert not loading["missing_keys"], loading["missing_keys"]
    with torch.no_grad():
        expected = local.eval()(**local_inputs(family, processor))
    torch.testing.assert_close(base["output"][0], expected[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", fresh_case([family for family in COMMON_FAMILIES if not family.seq2seq]))
def test_fresh_process_feature_extraction_pipeline(fresh_process, name):
    family, model, processor, _, results = fresh_process[name]
    features = remote(results, "features")
    with torch.no_grad():  # the base model's last hidden state of the pipeline's (first, unpadded) example
        expected = model.base_model(**processor(family.examples()[:1], return_tensors="pt"))[0]
    assert features.shape[-1] == model.config.hidden_size
    torch.testing.assert_close(features.reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", fresh_case())
def test_fresh_process_processor_asks_nothing(fresh_process, name):
    """``AutoTokenizer`` / ``AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)`` print no
    "Do you wish to run the custom code?" prompt. The tokenizer needs no remote code at all (a built-in class loads
    it even with ``trust_remote_code=False``); the image processor is the package's, so without
    ``trust_remote_code`` it refuses with an error that says to pass it."""
    family, _, _, _, results = fresh_process[name]
    assert "Do you wish" not in remote(results, "processor")["stdout"]
    untrusted = remote(results, "untrusted_processor")
    assert "Do you wish" not in untrusted["stdout"]
    if family.images:
        assert "trust_remote_code=True" in untrusted["error_message"]
    else:
        assert untrusted["module"].startswith("transformers."), untrusted
