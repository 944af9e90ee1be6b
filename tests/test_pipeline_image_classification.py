"""pipeline("image-classification", model=folder, trust_remote_code=True) for ViT, GFNet and AFNO in a fresh process
where hf_models cannot be imported: the folders carry their own code, and the answers match the in-memory models."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import PIL.Image
import pytest
import torch
from vision_testing import FAMILIES, tiny_classifier

from hf_models import ClassificationImageProcessor

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

# family name -> (architecture, config overrides): every family, plus ViT with performer attention, whose random
# features must travel in the weights and whose attention code must travel with the folder
CASES = {**{family: (family, {}) for family in FAMILIES}, "vit_performer": ("vit", {"attention_type": "performer"})}


def build(case: str):
    arch, overrides = CASES[case]
    return tiny_classifier(arch, **overrides)

REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys

    sys.modules["hf_models"] = None
    try:
        import hf_models
    except ImportError:
        pass
    else:
        raise SystemExit("hf_models is importable: this run would not show that the folders are self-contained")

    import json

    import PIL.Image
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    folders, image_path, output = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    results = {}
    for family, folder in folders.items():
        classifier = pipeline("image-classification", model=folder, trust_remote_code=True)
        model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**processor(PIL.Image.open(image_path), return_tensors="pt")).logits
        results[family] = {
            "modules": [type(classifier.model).__module__, type(processor).__module__],
            "top": classifier(image_path, top_k=3),
            "logits": logits,
        }
    torch.save(results, output)
    """
)


@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("image_classifiers")
    processor = ClassificationImageProcessor(
        size={"height": 16, "width": 16}, num_channels=1, image_mean=[0.1307], image_std=[0.3081]
    )
    folders = {}
    for family in CASES:
        folders[family] = root / family
        build(family).save_pretrained(folders[family])
        processor.save_pretrained(folders[family])
    return folders


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "digit.png"
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(path)
    return path


@pytest.fixture(scope="module")
def remote_results(saved_folders, image_path, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("remote_run")
    output = work_dir / "results.pt"
    env = {**os.environ, "HF_MODULES_CACHE": str(work_dir / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    folders = json.dumps({family: str(folder) for family, folder in saved_folders.items()})
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, folders, str(image_path), str(output)],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(output)


@pytest.mark.parametrize("family", list(CASES))
def test_remote_pipeline_classifies_like_the_saved_model(family, remote_results, image_path):
    result = remote_results[family]
    model_module, processor_module = result["modules"]
    arch = CASES[family][0]
    assert model_module.startswith("transformers_modules.") and model_module.endswith(f".modeling_{arch}")
    assert processor_module.endswith(".image_processing_classification")

    model = build(family)
    processor = ClassificationImageProcessor(
        size={"height": 16, "width": 16}, num_channels=1, image_mean=[0.1307], image_std=[0.3081]
    )
    with torch.no_grad():
        logits = model(**processor(PIL.Image.open(image_path), return_tensors="pt")).logits
    torch.testing.assert_close(result["logits"], logits, rtol=0, atol=1e-6)
    probabilities = torch.softmax(logits[0], dim=-1)
    expected = sorted(
        ({"label": model.config.id2label[i], "score": p.item()} for i, p in enumerate(probabilities)),
        key=lambda entry: -entry["score"],
    )
    assert [entry["label"] for entry in result["top"]] == [entry["label"] for entry in expected]
    np.testing.assert_allclose([e["score"] for e in result["top"]], [e["score"] for e in expected], atol=1e-5)
