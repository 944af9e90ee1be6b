"""What every model card must pass, checked offline: its metadata, its sections, and its usage snippet, which runs.

``ModelCard.validate()`` asks the Hub; these checks stand in for it. ``ModelCard.load`` already parses the metadata
strictly (a malformed ``model-index`` raises); on top, the ``model-index`` must survive a round trip through
huggingface_hub's ``EvalResult`` objects unchanged (nothing in it that the Hub would not read) and report numbers
measured on the test split.
"""

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.repocard_data import eval_results_to_model_index

# The sections a card of this project has (recipes/model_card.py writes them).
REQUIRED_SECTIONS = [
    "## Results on the test split", "## Training data", "## Training", "## How to use", "## Limitations"
]  # fmt: skip
USAGE_SNIPPET = re.compile(r"^## How to use\s*\n.*?```python\n(.*?)```", flags=re.DOTALL | re.MULTILINE)
# Where a snippet names the model: pipeline(..., model="...") or Auto*.from_pretrained("...").
MODEL_REFERENCE = re.compile(r"""(?:\bmodel\s*=\s*|from_pretrained\(\s*)(["'])(.+?)\1""")


def check_card(card: ModelCard) -> None:
    """Asserts that ``card``'s metadata would be accepted by the Hub and that it has the project's sections."""
    data = card.data
    assert data.license and data.library_name == "transformers" and data.pipeline_tag, data.to_dict()
    assert data.model_name and data.eval_results, "the card reports no results (model-index)"
    for result in data.eval_results:
        value = result.metric_value
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), result
        assert result.dataset_split == "test", f"{result.metric_name} was measured on {result.dataset_split!r}"
        assert result.task_type == data.pipeline_tag, result
    metadata = yaml.safe_load(REGEX_YAML_BLOCK.search(card.content).group(2))
    assert eval_results_to_model_index(data.model_name, data.eval_results) == metadata["model-index"]
    missing = [section for section in REQUIRED_SECTIONS if not re.search(f"^{section}$", card.text, re.MULTILINE)]
    assert not missing, f"sections missing: {missing}"
    assert "Licence:" in card.text, "the training data's licence"


def usage_snippet(card: ModelCard) -> str:
    """The ```python block under "## How to use"."""
    match = USAGE_SNIPPET.search(card.text)
    assert match, 'no ```python block under "## How to use"'
    return match.group(1)


def point_snippet_at(snippet: str, model_path: str | os.PathLike) -> str:
    """``snippet`` with every model name it loads replaced by ``model_path``."""
    names = {match.group(2) for match in MODEL_REFERENCE.finditer(snippet)}
    assert names, f"the snippet loads no model by name:\n{snippet}"
    for name in names:
        snippet = snippet.replace(f'"{name}"', repr(str(model_path))).replace(f"'{name}'", repr(str(model_path)))
    return snippet


# Runs every snippet as a user would, in an interpreter where hf_models cannot be imported; reports, per snippet,
# None or its traceback. A snippet that makes transformers ask "Do you wish to run the custom code? [y/N]" fails: a
# user would be stopped by the question (transformers catches any Exception from input(), hence a BaseException).
SNIPPET_RUNNER = textwrap.dedent(
    """
    import builtins
    import json
    import runpy
    import sys
    import traceback

    sys.modules["hf_models"] = None


    class InteractivePrompt(BaseException):
        pass


    def refuse_prompt(prompt=""):
        raise InteractivePrompt(f"the snippet asks the user: {prompt!r}")


    builtins.input = refuse_prompt
    failures = {}
    for path in sys.argv[2:]:
        try:
            runpy.run_path(path, run_name="__main__")
        except (Exception, InteractivePrompt):
            failures[path] = traceback.format_exc()
    with open(sys.argv[1], "w") as out:
        json.dump(failures, out)
    """
)


def run_snippets(snippets: dict[str, str], work_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Runs each snippet (name -> code) in one fresh interpreter with an empty Hugging Face cache under
    ``work_dir``; returns the tracebacks of those that failed, by name."""
    paths = {}
    for index, (name, code) in enumerate(snippets.items()):
        paths[name] = work_dir / f"snippet_{index}.py"
        paths[name].write_text(code)
    home = work_dir / "hf_home"
    env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1"}
    env.update(HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), HF_MODULES_CACHE=str(home / "modules"))
    failures_file = work_dir / "failures.json"
    run = subprocess.run(
        [sys.executable, "-c", SNIPPET_RUNNER, str(failures_file), *map(str, paths.values())],
        cwd=work_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    failures = json.loads(failures_file.read_text())
    return {name: failures[str(path)] for name, path in paths.items() if str(path) in failures}
