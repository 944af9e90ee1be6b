"""Fetch and verify the corpora the recipes train on (THUCNews headlines, Tatoeba en-zh, MNIST t10k).

    python recipes/prepare_data.py                     # verify ../shared/data against the pinned checksums
    python recipes/prepare_data.py --download          # fetch what is missing (or damaged), then verify
    python recipes/prepare_data.py --download --data_dir data --corpora mnist --mirror file:///srv/copies/

Every file, its source, size, SHA-256 and licence are pinned in ``settings/corpora.json``; a download goes to a
temporary file that replaces the target only once its size and checksum match, so an interrupted or altered
download never passes for the corpus. ``--mirror PREFIX`` fetches ``PREFIX + <file path>`` instead of the pinned
URL (a local copy, an internal mirror). Exits with status 1 and one line per bad or missing file otherwise.
"""

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

RECIPES = Path(__file__).resolve().parent
MANIFEST = json.loads((RECIPES / "settings" / "corpora.json").read_text())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problem(path: Path, expected: dict) -> str | None:
    """What is wrong with one corpus file (None when its size and checksum match)."""
    if not path.is_file():
        return f"{path} is missing"
    if path.stat().st_size != expected["bytes"]:
        return f"{path} has {path.stat().st_size:,} bytes, expected {expected['bytes']:,}"
    found = sha256(path)
    return None if found == expected["sha256"] else f"{path} has sha256 {found}, expected {expected['sha256']}"


def fetch(url: str, path: Path, expected: dict) -> str | None:
    """Downloads ``url`` to ``path`` through a temporary file; returns a problem, or None once it checks out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except OSError as error:
        partial.unlink(missing_ok=True)
        return f"{path}: download from {url} failed: {error}"
    found = problem(partial, expected)
    if found:
        partial.unlink()
        return f"{found.replace(str(partial), str(path))} (downloaded from {url}; not installed)"
    partial.replace(path)
    return None


def prepare(data_dir: Path, corpora: list[str], download: bool = False, mirror: str | None = None) -> list[str]:
    """Verifies (and with ``download`` fetches) every file of ``corpora`` under ``data_dir``; returns the problems."""
    problems = []
    for corpus in corpora:
        for relative, expected in MANIFEST["corpora"][corpus]["files"].items():
            path = data_dir / relative
            found = problem(path, expected)
            if found and download:
                found = fetch(mirror + relative if mirror else expected["url"], path, expected)
            if found:
                problems.append(found)
            else:
                print(f"ok {path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=str(RECIPES.parent / MANIFEST["data_dir"]), help="default: ../shared/data")
    parser.add_argument("--corpora", nargs="+", default=list(MANIFEST["corpora"]), choices=list(MANIFEST["corpora"]))
    parser.add_argument("--download", action="store_true", help="fetch missing or damaged files")
    parser.add_argument("--mirror", help="URL prefix to fetch <prefix><file path> from instead of the pinned URLs")
    args = parser.parse_args(argv)
    problems = prepare(Path(args.data_dir), args.corpora, args.download, args.mirror)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
