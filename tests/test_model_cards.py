"""Every card under model_cards/: metadata the Hub would accept, with test-split results, and a usage snippet that
runs (against a tiny model of the card's family, saved the way the recipes save theirs)."""

import sys
from pathlib import Path

import pytest
from families import FAMILIES
from huggingface_hub import ModelCard
from model_card_checks import check_card, point_snippet_at, run_snippets, usage_snippet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "recipes"))  # recipes/ is a script folder, not a package
from model_card import CardContent, DatasetInfo, build_model_card, recipe_command  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread_module")

MODEL_CARDS = ROOT / "model_cards"
CARDS = sorted(MODEL_CARDS.glob("**/*.md"))


def family_of(card: ModelCard):
    """The family a card describes: its pipeline tag is the family's task and its tags name the architecture."""
    matches = [f for f in FAMILIES if f.task == card.data.pipeline_tag and f.arch in (card.data.tags or [])]
    assert len(matches) == 1, f"no single family for pipeline_tag {card.data.pipeline_tag!r}, tags {card.data.tags}"
    return matches[0]


@pytest.mark.parametrize("path", CARDS, ids=lambda path: str(path.relative_to(MODEL_CARDS)))
def test_card_metadata_validates(path):
    card = ModelCard.load(path)
    check_card(card)
    family_of(card)


@pytest.mark.skipif(not CARDS, reason="model_cards/ holds no card yet")
def test_usage_snippets_run_against_tiny_models(request, tmp_path):
    folders, snippets = {}, {}
    for path in CARDS:
        card = ModelCard.load(path)
        family = family_of(card)
        if family.name not in folders:
            folders[family.name] = tmp_path / family.name
            family.pipeline(*family.build(request)).save_pretrained(folders[family.name])
        snippets[path.name] = point_snippet_at(usage_snippet(card), folders[family.name])
    failures = run_snippets(snippets, tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert not failures, "\n\n".join(f"{name}:\n{error}" for name, error in failures.items())


def recipe_card(metrics: list[tuple[str, str, float]], command: str = "") -> ModelCard:
    """A card as the recipes write it (recipes/model_card.py)."""
    dataset = DatasetInfo(name="Corpus", id="corpus", split_description="all", license="CC-BY 4.0", attribution="Us")
    content = CardContent(
        model_name="tiny",
        task_type="translation",
        task_name="Translation en->zh",
        architecture="A Transformer.",
        dataset=dataset,
        metrics=metrics,
        num_parameters=10,
        hyperparameters={"seed": 0},
        training_seconds=1.0,
        usage='from transformers import pipeline\n\npipeline("translation", model="me/tiny", trust_remote_code=True)',
        limitations="Tiny.",
        tags=["transformer"],
        command=command,
    )
    return ModelCard(str(build_model_card(content)))


def test_checks_accept_a_recipe_card_and_find_its_snippet_and_family():
    card = recipe_card([("bleu", "BLEU", 12.5), ("chrf", "chrF", 30.0)])
    check_card(card)
    assert family_of(card).name == "transformer-translation"
    assert point_snippet_at(usage_snippet(card), "/tiny") == (
        'from transformers import pipeline\n\npipeline("translation", model=\'/tiny\', trust_remote_code=True)\n'
    )


def test_checks_reject_a_card_without_results():
    with pytest.raises(AssertionError, match="reports no results"):
        check_card(recipe_card([]))


def test_checks_reject_results_not_measured_on_the_test_split():
    card = recipe_card([("bleu", "BLEU", 12.5)])
    assert "split: test" in card.content
    with pytest.raises(AssertionError, match="measured on 'validation'"):
        check_card(ModelCard(card.content.replace("split: test", "split: validation")))


def test_cards_say_how_to_reproduce_the_run_with_paths_that_work_in_any_checkout(tmp_path):
    argv = ["--args_file", str(ROOT / "recipes" / "published" / "translation_gru_base.args"), "--output_dir", str(tmp_path),
            "--hub_model_id", "me/x y"]
    command = recipe_command(ROOT / "recipes" / "train_translation.py", argv)
    assert command == (
        "accelerate launch recipes/train_translation.py --args_file recipes/published/translation_gru_base.args "
        f"--output_dir {tmp_path} --hub_model_id 'me/x y'"
    )
    card = recipe_card([("bleu", "BLEU", 12.5)], command=command)
    check_card(card)
    assert "## Reproduce" in card.content and command in card.content
    assert "## Reproduce" not in recipe_card([("bleu", "BLEU", 12.5)]).content
