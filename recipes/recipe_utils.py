"""Small helpers shared by the training recipes (``recipes/`` is a script folder: import as ``from recipe_utils import``)."""

import logging
from pathlib import Path

import datasets
from huggingface_hub import HfApi, get_token

logger = logging.getLogger(__name__)


def limit(dataset: datasets.Dataset | None, count: int | None) -> datasets.Dataset | None:
    """The first ``count`` rows of ``dataset`` (all of them when ``count`` is None or 0; None stays None), for the
    recipes' ``--max_train_samples`` / ``--max_eval_samples`` / ``--max_test_samples``."""
    return dataset.select(range(min(count, len(dataset)))) if dataset is not None and count else dataset


# What a recipe's output folder holds besides the published model: Trainer's checkpoints, TensorBoard runs, and
# private files (the same exclusions as Trainer.push_to_hub).
PUBLISH_IGNORE_PATTERNS = ["checkpoint-*", "runs/*", "_*"]


class PublishError(RuntimeError):
    """The upload of a finished output folder failed; the folder itself is complete."""


def take_push_to_hub(training_args) -> str | None:
    """Turns off Trainer's own publishing and returns the repo to publish the final folder to (None without
    ``--push_to_hub``).

    With ``push_to_hub=True`` Trainer creates the repo in its ``__init__`` and pushes checkpoints while it trains,
    so a missing token or an unreachable Hub would stop the run before or during training. The recipe publishes
    once instead, after the local save, the test evaluation and the model card (:func:`publish_output_folder`).
    The repo name defaults to the output folder's name, as in Trainer.
    """
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    return training_args.hub_model_id or Path(training_args.output_dir).absolute().name


def publish_output_folder(output_dir, hub_model_id: str, token: str | None = None, private: bool | None = None):
    """Uploads a recipe's finished ``output_dir`` (model, code, tokenizer or processor, pipeline, model card, results)
    to ``hub_model_id`` as one commit; returns huggingface_hub's ``CommitInfo``.

    The Hub is ``HF_ENDPOINT`` (default huggingface.co) and the token ``token``, else ``HF_TOKEN`` or the saved login.
    Any failure (no token, refused, unreachable) raises :class:`PublishError` naming the endpoint and the repo, and
    saying how to upload the folder later: nothing trained is lost.
    """
    api = HfApi(token=token)
    retry = (
        f"The trained model is saved in {output_dir}; upload it later with: "
        f"hf upload {hub_model_id} {output_dir} --exclude 'checkpoint-*' --exclude 'runs/*'"
    )
    if token is None and get_token() is None:
        raise PublishError(
            f"Cannot publish to {api.endpoint} (repo {hub_model_id}): no Hugging Face token. Set HF_TOKEN, pass "
            f"--hub_token or run `hf auth login`. {retry}"
        )
    try:
        repo_id = api.create_repo(hub_model_id, private=private, exist_ok=True).repo_id
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=output_dir,
            commit_message="Upload the trained model, its code and its model card",
            ignore_patterns=PUBLISH_IGNORE_PATTERNS,
        )
    except Exception as error:  # whatever went wrong, the message must point at the saved folder
        raise PublishError(
            f"Could not publish to {api.endpoint} (repo {hub_model_id}): {type(error).__name__}: {error}. {retry}"
        ) from error
    logger.info("published %s to %s", output_dir, commit.commit_url)
    return commit
