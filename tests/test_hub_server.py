"""The loopback Hub (tests/hub_server.py) on what the round-trip tests do not reach: tree listings, deletions,
write access, and bounded requests. Through huggingface_hub's own client wherever it has a call for it."""

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

import hub_server


@pytest.fixture(scope="module")
def repo(local_hub) -> str:
    """tester/files: a.txt, docs/b.txt, docs/deep/c.txt (first commit), then a.txt deleted (second commit)."""
    api = HfApi()
    api.create_repo("tester/files")
    files = {"a.txt": b"a", "docs/b.txt": b"b", "docs/deep/c.txt": b"c"}
    operations = [CommitOperationAdd(path, data) for path, data in files.items()]
    api.create_commit("tester/files", operations=operations, commit_message="add")
    api.create_commit("tester/files", operations=[CommitOperationDelete("a.txt")], commit_message="delete")
    return "tester/files"


def listing(repo: str, **kwargs) -> list[str]:
    return sorted(entry.path for entry in HfApi().list_repo_tree(repo, **kwargs))


def test_tree_lists_one_level_or_everything(repo):
    assert listing(repo) == ["docs"]
    assert listing(repo, path_in_repo="docs") == ["docs/b.txt", "docs/deep"]
    assert listing(repo, recursive=True) == ["docs", "docs/b.txt", "docs/deep", "docs/deep/c.txt"]
    with pytest.raises(HfHubHTTPError, match="404"):
        listing(repo, path_in_repo="nowhere")


def test_every_commit_stays_readable(repo, local_hub):
    first = local_hub.commit_shas(repo)[1]
    assert listing(repo, revision=first) == ["a.txt", "docs"]
    assert HfApi().model_info(repo, revision=first).sha == first
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(repo, revision="f" * 40)


def test_writes_need_the_owner_token(repo, local_hub, monkeypatch):
    add = [CommitOperationAdd("x.txt", b"x")]
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(token="hf_unknown").create_commit(repo, operations=add, commit_message="x")
    monkeypatch.setitem(local_hub.tokens, "hf_other", "someone_else")
    with pytest.raises(HfHubHTTPError, match="403"):
        HfApi(token="hf_other").create_commit(repo, operations=add, commit_message="x")
    assert len(local_hub.commit_shas(repo)) == 3


def test_bodies_are_bounded_and_checked(repo, local_hub, monkeypatch):
    monkeypatch.setattr(hub_server, "MAX_BODY_BYTES", 100)
    response = httpx2.post(f"{local_hub.endpoint}/api/validate-yaml", json={"content": "x" * 200})
    assert response.status_code == 413
    response = httpx2.post(f"{local_hub.endpoint}/api/models/{repo}/commit/main", content=b"{not json",
                           headers={"Authorization": "Bearer hf_local_test_token"})  # fmt: skip
    assert response.status_code == 400 and "not JSON lines" in response.json()["error"]
