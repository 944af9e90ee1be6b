"""The README's "Using a trained model" section shows only calls that work as written: each of its ```python blocks
runs, unchanged, in a fresh process without the package, next to tiny models saved where the README says the
recipes save theirs (``outputs/...``), and asks the user nothing."""

import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from families import FAMILIES
from model_card_checks import MODEL_REFERENCE, run_snippets

README = Path(__file__).resolve().parent.parent / "README.md"
# The output folders the README names -> the family whose tiny model stands in for the trained one.
README_MODELS = {
    "outputs/translation_transformer_base": "transformer-translation",
    "outputs/text_classification_base": "transformer-text-classification",
    "outputs/image_classification_vit_base": "vit",
}


def section_snippets(title: str = "## Using a trained model") -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + len(title) + 2)
    return re.findall(r"^```python\n(.*?)^```", text[start:end], flags=re.DOTALL | re.MULTILINE)


def test_the_section_has_snippets_that_load_known_models():
    snippets = section_snippets()
    assert len(snippets) >= 2
    names = {match.group(2) for snippet in snippets for match in MODEL_REFERENCE.finditer(snippet)}
    assert names and names <= README_MODELS.keys(), f"the README loads models this test does not build: {names}"


@pytest.mark.slow
def test_using_a_trained_model_snippets_run_as_written(request, tmp_path):
    families = {family.name: family for family in FAMILIES}
    for folder, name in README_MODELS.items():
        family = families[name]
        family.pipeline(*family.build(request)).save_pretrained(tmp_path / folder)
    PIL.Image.fromarray(np.full((28, 28), 255, dtype=np.uint8)).save(tmp_path / "digit.png")
    snippets = {f"block {index}": code for index, code in enumerate(section_snippets(), start=1)}
    failures = run_snippets(snippets, tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert not failures, "\n\n".join(f"{name}:\n{error}" for name, error in failures.items())
