"""Model cards written by every recipe, with huggingface_hub's ``ModelCard`` and model-index metadata.

A card says what the model is, what it was trained on (with the data's licence and required attribution), how
(hyper-parameters, time, hardware), how well it does on the test split (measured by the recipe that wrote it),
how to use it, and its limits.
"""

import json
import os
import platform
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData


@dataclass
class DatasetInfo:
    """What a card says about a corpus: its name and Hub-style id, the split used, licence and attribution."""

    name: str
    id: str
    split_description: str
    license: str
    attribution: str


@dataclass
class CardContent:
    """Everything a recipe measured or decided that goes into a card."""

    model_name: str
    task_type: str  # a Hub pipeline tag: "translation", "text-classification", "image-classification"
    task_name: str
    architecture: str
    dataset: DatasetInfo
    metrics: list[tuple[str, str, float]]  # (metric type, display name, value) on the test split
    num_parameters: int
    hyperparameters: dict
    training_seconds: float
    usage: str
    limitations: str
    tags: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    extra_sections: dict[str, str] = field(default_factory=dict)
    command: str = ""  # the launch command that trained the model (see :func:`recipe_command`)


REPO_ROOT = Path(__file__).resolve().parent.parent


def portable(argument, outside: str = "name"):
    """A value fit for a card that others read: an absolute path inside the repository, or inside the folder that
    holds it (where the corpora sit, ``../shared/data``), becomes relative to the repository root; any other
    absolute path (a user's ``/home/me/train.tsv``) is reduced to its file name (``outside="name"``), so that no
    card carries the layout of the machine that trained it, or kept (``outside="keep"``, for the card's command
    line). Other values are returned unchanged."""
    if not isinstance(argument, (str, Path)) or not Path(argument).is_absolute():
        return argument
    path = Path(os.path.abspath(argument))
    if path.is_relative_to(REPO_ROOT.parent):
        return os.path.relpath(path, REPO_ROOT)
    return path.name if outside == "name" else str(argument)


def portable_arguments(arguments) -> dict:
    """A dataclass of recipe arguments as a dict with :func:`portable` values, for the card's JSON."""
    return {key: portable(value) for key, value in asdict(arguments).items()}


def recipe_command(script: str | Path, argv: list[str]) -> str:
    """The command line that reproduces a run, for the card: ``accelerate launch recipes/<script> <arguments>``,
    with the repository's and the corpora's paths made relative (:func:`portable`), so the line works in any
    checkout."""
    arguments = [portable(argument, outside="keep") for argument in [str(Path(script).resolve()), *argv]]
    return shlex.join(["accelerate", "launch", *arguments])


def hardware_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}), {threads} thread{'s' if threads != 1 else ''}"


def build_model_card(content: CardContent) -> ModelCard:
    eval_results = [
        EvalResult(
            task_type=content.task_type,
            task_name=content.task_name,
            dataset_type=content.dataset.id,
            dataset_name=content.dataset.name,
            dataset_split="test",
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=round(float(value), 4),
        )
        for metric_type, metric_name, value in content.metrics
    ]
    card_data = ModelCardData(
        language=content.languages or None,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=content.task_type,
        tags=["hf_models", "custom_code", *content.tags],
        model_name=content.model_name,
        eval_results=eval_results,
    )
    results = "\n".join(f"| {name} | {value:.2f} |" for _, name, value in content.metrics)
    hyperparameters = "\n".join(f"| `{key}` | `{value}` |" for key, value in content.hyperparameters.items())
    sections = dict(content.extra_sections)
    if content.command:
        sections["Reproduce"] = f"Run from the repository root (`OMP_NUM_THREADS=1` for the CPU figures above):\n\n```bash\n{content.command}\n```"
    extra = "".join(f"\n## {title}\n\n{body}\n" for title, body in sections.items())
    minutes = content.training_seconds / 60
    text = f"""---
{card_data.to_yaml()}
---

# {content.model_name}

{content.architecture}

- Parameters: {content.num_parameters:,}
- Code: the `hf_models` package; the model's code is saved next to its weights, so it loads with
  `trust_remote_code=True` without installing the package (pin a `revision` when loading from the Hub).

## Results on the test split

| metric | value |
| --- | --- |
{results}

## Training data

{content.dataset.name}: {content.dataset.split_description}

Licence: {content.dataset.license}. Attribution: {content.dataset.attribution}

## Training

Trained for {minutes:.1f} minutes on {hardware_description()}.

| hyper-parameter | value |
| --- | --- |
{hyperparameters}

## How to use

```python
{content.usage.strip()}
```

## Limitations

{content.limitations}
{extra}"""
    return ModelCard(text)


def write_model_card(output_dir: str | Path, content: CardContent) -> ModelCard:
    """Write ``README.md`` (the card) and ``results.json`` (the same metrics, machine-readable) into ``output_dir``."""
    card = build_model_card(content)
    output_dir = Path(output_dir)
    card.save(output_dir / "README.md")
    results = {name: value for _, name, value in content.metrics}
    results.update(num_parameters=content.num_parameters, training_seconds=round(content.training_seconds, 1))
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return card
