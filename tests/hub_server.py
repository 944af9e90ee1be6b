"""A small Hugging Face Hub on loopback, for tests of ``push_to_hub`` / ``from_pretrained`` over real HTTP.

The Hub is unreachable from these machines and no installable server accepts uploads, so this one implements the
endpoints ``huggingface_hub`` 2.x calls to publish and to download a model repository:

    POST /api/repos/create                           create a repo (409 when it exists)
    POST /api/validate-yaml                          check a README's metadata before a commit
    POST /api/models/{repo}/preupload/{rev}          answer "regular" for every file: contents then travel
                                                     base64-encoded inside the commit, so no LFS/Xet storage is needed
    POST /api/models/{repo}/commit/{rev}             apply an ndjson commit (files, deletions) on a branch
    GET  /api/models/{repo}[/revision/{rev}]         repo info: commit ``sha`` and ``siblings``
    GET  /api/models/{repo}/tree/{rev}[/{path}]      tree listing (``recursive`` or one level)
    HEAD/GET /{repo}/resolve/{rev}/{path}            a file, with ``ETag`` (git blob sha1), ``X-Repo-Commit`` and
                                                     ``Content-Length``, which ``hf_hub_download`` requires

Errors carry the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) from which
``huggingface_hub`` builds its typed exceptions; transformers relies on them (a missing optional file must be an
``EntryNotFound``, not a broken repo). Only model repos, branches and commit shas are served (no tags, pull requests,
LFS or Xet). Writes need ``Authorization: Bearer <token>`` with a token the hub knows; each token belongs to a user,
whose namespace it may write to. Reads are public.

Storage is git-like: every file a commit receives is written once to ``root/blobs/<git blob sha1>``; a commit is a
mapping path -> blob kept in memory, so every commit stays readable and a pinned ``revision`` means something.
Requests are bounded (body size, socket timeout) and the server runs in a daemon thread until :meth:`LocalHub.stop`.

Use :func:`local_hub_session` (the ``local_hub`` fixture in conftest.py) to start a hub and point this process and its
subprocesses at it.
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import huggingface_hub
import pytest
import transformers.utils.hub
import yaml
from huggingface_hub import constants

DEFAULT_BRANCH = "main"
MAX_BODY_BYTES = 64 * 1024 * 1024
SOCKET_TIMEOUT_SECONDS = 30

REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [  # (method, pattern, handler name); methods "GET" also serve HEAD
    ("POST", re.compile(r"/api/repos/create"), "create_repo"),
    ("POST", re.compile(r"/api/validate-yaml"), "validate_yaml"),
    ("POST", re.compile(rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"), "preupload"),
    ("POST", re.compile(rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"), "commit"),
    ("GET", re.compile(rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?"), "repo_info"),
    ("GET", re.compile(rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?"), "tree"),
    ("GET", re.compile(rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), "resolve"),
]


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub's ETag) gives a file's contents."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def folder_oid(commit: "Commit", folder: str) -> str:
    """A folder's id: a hash of the paths and blobs it holds (git hashes a tree object; any stable id does here)."""
    inside = sorted(f"{name}:{blob}" for name, blob in commit.files.items() if name.startswith(folder + "/"))
    return hashlib.sha1("\n".join(inside).encode()).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubError(Exception):
    """An HTTP error answer: status, message, and the ``X-Error-Code`` huggingface_hub maps to an exception."""

    def __init__(self, status: int, message: str, error_code: str | None = None, commit: str | None = None, **body):
        super().__init__(message)
        self.status, self.message, self.error_code, self.commit, self.body = status, message, error_code, commit, body


@dataclass
class Commit:
    sha: str
    parent: str | None
    summary: str
    files: dict[str, str]  # path -> blob sha1
    date: str = field(default_factory=now)


@dataclass
class Repository:
    repo_id: str
    private: bool
    created_at: str = field(default_factory=now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha

    def resolve(self, revision: str) -> Commit:
        """A branch name or a full commit sha."""
        sha = self.branches.get(revision) or (revision if revision in self.commits else None)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[sha]


class LocalHub:
    """The hub's state and its HTTP server. ``tokens`` maps each accepted token to its user name."""

    def __init__(self, root: str | os.PathLike, tokens: dict[str, str]):
        self.blobs = Path(root) / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens)
        self.repos: dict[str, Repository] = {}
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=1000)  # (method, path, status), for tests
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalHub":
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # What tests inspect, without going through HTTP.
    def commit_shas(self, repo_id: str) -> list[str]:
        """The commits of ``repo_id``'s main branch, oldest first."""
        with self._lock:
            repo = self._repo(repo_id)
            shas, sha = [], repo.branches[DEFAULT_BRANCH]
            while sha is not None:
                shas.append(sha)
                sha = repo.commits[sha].parent
            return shas[::-1]

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        with self._lock:
            commit = self._repo(repo_id).resolve(revision)
        return {path: (self.blobs / blob).read_bytes() for path, blob in commit.files.items()}

    # Endpoint implementations: (request) -> (status, JSON body or file path, extra headers).
    def create_repo(self, request: "_Request"):
        user = request.user()
        payload = request.json()
        namespace, name = payload.get("organization") or user, payload.get("name")
        if not name or "/" in name:
            raise HubError(400, f"invalid repo name {name!r}")
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a model under the namespace {namespace!r}")
        repo_id = f"{namespace}/{name}"
        if payload.get("type", "model") != "model":
            raise HubError(400, "this test hub only hosts model repos")
        url = f"{self.endpoint}/{repo_id}"
        with self._lock:
            if repo_id in self.repos:
                raise HubError(409, "You already created this model repo", url=url)  # create_repo reads the url
            repo = Repository(repo_id, private=payload.get("visibility") == "private")
            self._add_commit(repo, parent=None, summary="initial commit", files={})
            self.repos[repo_id] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}, {}

    def validate_yaml(self, request: "_Request"):
        content = request.json().get("content", "")
        match = re.match(r"---\n(.*?)\n---", content, flags=re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as error:
            return 400, {"errors": [{"message": f"invalid YAML: {error}"}]}, {}
        if metadata is not None and not isinstance(metadata, dict):
            return 400, {"errors": [{"message": "the metadata must be a YAML mapping"}]}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def preupload(self, request: "_Request", repo: str, rev: str):
        request.check_write_access(repo)
        with self._lock:
            commit = self._repo(repo).resolve(unquote(rev))
        # "oid" lets the client leave out files that did not change.
        paths = [file["path"] for file in request.json()["files"]]
        files = [{"path": p, "uploadMode": "regular", "shouldIgnore": False, "oid": commit.files.get(p)} for p in paths]
        return 200, {"files": files}, {}

    def commit(self, request: "_Request", repo: str, rev: str):
        request.check_write_access(repo)
        if request.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by this test hub")
        try:
            lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise HubError(400, f"the commit body is not JSON lines: {error}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with a header line")
        header, operations = lines[0]["value"], lines[1:]
        branch = unquote(rev)
        with self._lock:
            repository = self._repo(repo)
            if branch not in repository.branches:
                raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
            parent = repository.commits[repository.branches[branch]]
            if header.get("parentCommit") not in (None, parent.sha):
                raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {branch}")
            files = dict(parent.files)
            for operation in operations:
                self._apply(files, operation["key"], operation["value"])
            commit = self._add_commit(repository, parent.sha, header.get("summary", ""), files, branch)
        url = f"{self.endpoint}/{repo}/commit/{commit.sha}"
        return 200, {"success": True, "commitOid": commit.sha, "commitUrl": url, "pullRequestUrl": None}, {}

    def repo_info(self, request: "_Request", repo: str, rev: str | None):
        with self._lock:
            repository = self._repo(repo)
            commit = repository.resolve(unquote(rev) if rev else DEFAULT_BRANCH)
        siblings = [
            {"rfilename": path, "size": self._size(blob), "blobId": blob} for path, blob in sorted(commit.files.items())
        ]
        info = {
            "id": repo,
            "modelId": repo,
            "author": repo.split("/")[0],
            "sha": commit.sha,
            "private": repository.private,
            "disabled": False,
            "gated": False,
            "createdAt": repository.created_at,
            "lastModified": commit.date,
            "tags": [],
            "siblings": siblings,
        }
        return 200, info, {}

    def tree(self, request: "_Request", repo: str, rev: str, path: str | None):
        """The files and folders in ``path`` (default: the root); with ``recursive``, everything below it."""
        with self._lock:
            commit = self._repo(repo).resolve(unquote(rev))
        folder = unquote(path or "").strip("/")
        depth = len(PurePosixPath(folder).parts)
        recursive = request.query.get("recursive", "false").lower() in ("1", "true")
        inside = {name: blob for name, blob in commit.files.items() if not folder or name.startswith(folder + "/")}
        if folder and not inside:
            raise HubError(404, f"{folder} does not exist at {commit.sha}", "EntryNotFound", commit.sha)
        entries: dict[str, dict] = {}
        for name, blob in sorted(inside.items()):
            parts = PurePosixPath(name).parts
            # The folders between `folder` and the file: all of them when recursive, else the first only.
            for end in range(depth + 1, len(parts) if recursive else min(depth + 2, len(parts))):
                subfolder = "/".join(parts[:end])
                oid = folder_oid(commit, subfolder)
                entries.setdefault(subfolder, {"type": "directory", "path": subfolder, "oid": oid})
            if recursive or len(parts) == depth + 1:
                entries[name] = {"type": "file", "path": name, "size": self._size(blob), "oid": blob}
        return 200, list(entries.values()), {}

    def resolve(self, request: "_Request", repo: str, rev: str, path: str):
        with self._lock:
            commit = self._repo(repo).resolve(unquote(rev))
        path = unquote(path)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"{path} does not exist at {commit.sha}", "EntryNotFound", commit.sha)
        headers = {"ETag": f'"{blob}"', "X-Repo-Commit": commit.sha, "Content-Type": "application/octet-stream"}
        return 200, self.blobs / blob, headers

    # Helpers; callers hold the lock.
    def _repo(self, repo_id: str) -> Repository:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def _apply(self, files: dict[str, str], key: str, value: dict) -> None:
        path = value.get("path", "")
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts:
            raise HubError(400, f"invalid path in repo: {path!r}")
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, f"{path}: only base64 file contents are accepted")
            data = base64.b64decode(value["content"], validate=True)
            blob = git_blob_sha1(data)
            (self.blobs / blob).write_bytes(data)
            files[path] = blob
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            for file_path in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
                del files[file_path]
        else:  # lfsFile: never requested, since preupload answers "regular"
            raise HubError(400, f"{path}: operation {key!r} is not supported by this test hub")

    def _add_commit(self, repo: Repository, parent: str | None, summary: str, files: dict, branch=DEFAULT_BRANCH):
        # Like git, the sha covers the parent, so even an empty commit gets a new one.
        content = json.dumps({"parent": parent, "summary": summary, "files": files}, sort_keys=True)
        commit = Commit(hashlib.sha1(content.encode()).hexdigest(), parent, summary, files)
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit

    def _size(self, blob: str) -> int:
        return (self.blobs / blob).stat().st_size


class _Request:
    """What a handler needs of one HTTP request; parses the body and the token lazily."""

    def __init__(self, handler: "_Handler", hub: LocalHub):
        self.handler, self.hub = handler, hub
        url = urlsplit(handler.path)
        self.path = url.path
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self._body: bytes | None = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            length = self.handler.headers.get("Content-Length", "0")
            if "chunked" in self.handler.headers.get("Transfer-Encoding", "") or not length.isdigit():
                self.handler.close_connection = True  # the body's end is unknown: the connection cannot be reused
                raise HubError(411, "send a Content-Length (chunked bodies are not accepted)")
            if int(length) > MAX_BODY_BYTES:
                self.handler.close_connection = True  # the body stays unread
                raise HubError(413, f"request body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit")
            length = int(length)
            self._body = self.handler.rfile.read(length)
        return self._body

    def json(self):
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, f"invalid JSON body: {error}") from None

    def user(self) -> str:
        """The user owning the request's token; 401 without a known one (as the Hub answers a bad token)."""
        authorization = self.handler.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else None
        if token is None:
            raise HubError(401, "You must be authenticated to write to the Hub (no token sent)")
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def check_write_access(self, repo_id: str) -> None:
        """A token writes to its own user's repos only."""
        user = self.user()
        if repo_id.split("/")[0] != user:
            raise HubError(403, f"{user} has no write access to {repo_id}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's connection pool expects
    timeout = SOCKET_TIMEOUT_SECONDS
    server_version = "LocalHub/1"

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("GET", send_body=False)

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str, send_body: bool = True) -> None:
        hub: LocalHub = self.server.hub
        request = _Request(self, hub)
        try:
            for route_method, pattern, name in ROUTES:
                match = pattern.fullmatch(request.path)
                if route_method == method and match:
                    status, body, headers = getattr(hub, name)(request, **match.groupdict())
                    break
            else:
                raise HubError(404, f"{self.command} {request.path} is not served by this test hub")
            if method == "POST" and request._body is None:
                request.body  # noqa: B018  (read the unused body, so the next request on the connection starts right)
        except Exception as error:  # a bug or a malformed request: the client gets a 500, not a dropped connection
            if not isinstance(error, HubError):
                error = HubError(500, f"{type(error).__name__}: {error}")
            status, body = error.status, {"error": error.message, **error.body}
            headers = {"X-Error-Message": error.message}
            if error.error_code:
                headers["X-Error-Code"] = error.error_code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            if method == "POST" and request._body is None:
                try:  # drain the unread body: closing on a client still sending resets the connection
                    request.body  # noqa: B018
                except HubError:
                    self.close_connection = True  # too large or of unknown length: left unread
        hub.requests.append((self.command, request.path, status))
        data = body.read_bytes() if isinstance(body, Path) else json.dumps(body).encode()
        self.send_response(status)
        if not isinstance(body, Path):
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, format, *args):  # requests are recorded in LocalHub.requests, not printed
        pass


@contextlib.contextmanager
def local_hub_session(root: str | os.PathLike, token: str = "hf_local_test_token", user: str = "tester"):
    """Starts a :class:`LocalHub` (``token`` belongs to ``user``) and points huggingface_hub at it, in this process
    and in subprocesses; everything is restored on exit.

    Subprocesses read ``HF_ENDPOINT`` / ``HF_TOKEN`` from the environment. This process imported huggingface_hub
    (and transformers) long ago, and both fixed the endpoint at import time, in ``constants.ENDPOINT``, the URL
    template of ``hf_hub_url``, the module-level ``HfApi`` behind ``huggingface_hub.upload_folder`` & co. and
    transformers' shared ``HfApi``: those are patched. Offline mode is switched off and the download cache moved
    to ``root`` so that no test reads or fills the user's cache.
    """
    hub = LocalHub(Path(root) / "hub", tokens={token: user}).start()
    cache = Path(root) / "cache"
    environment = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": token, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    patches = [
        (constants, "ENDPOINT", hub.endpoint),
        (constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"),
        (constants, "HF_HUB_OFFLINE", False),
        (constants, "HF_HUB_CACHE", str(cache)),
        (huggingface_hub.hf_api.api, "endpoint", hub.endpoint),
        (transformers.utils.hub, "_hf_api", None),  # rebuilt on first use, with the patched endpoint
    ]
    with pytest.MonkeyPatch.context() as monkeypatch:  # undone on exit, _hf_api included
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        for target, name, value in patches:
            monkeypatch.setattr(target, name, value)
        try:
            yield hub
        finally:
            hub.stop()
