"""``job fetch-adapters``: download ``hf://repo@rev`` LoRA adapters for the vLLM pod.

Each adapter is downloaded into a hub cache under ``DEST/.hub`` and linked as ``DEST/<name>``,
which is the path the Deployment's ``--lora-modules`` point at. The hub token comes from
``HF_TOKEN`` (read by huggingface_hub itself) and is never printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from smolserve.errors import SmolserveError, UsageError
from smolserve.spec import ADAPTER_NAME_RE, LoraAdapter, SpecError

CACHE_SUBDIR = ".hub"


def parse_adapter(item: str) -> LoraAdapter:
    """``name=hf://org/repo@rev`` → adapter (only hub sources are fetched)."""
    name, sep, source = item.partition("=")
    if not sep or not name or not source.startswith("hf://"):
        raise UsageError(f"adapter {item!r} must be NAME=hf://org/repo@revision")
    if not ADAPTER_NAME_RE.fullmatch(name):
        raise UsageError(f"adapter name {name!r} must be a DNS label (it names a directory)")
    adapter = LoraAdapter(name, source)
    try:
        _ = adapter.hf_repo
    except SpecError as exc:
        raise UsageError(str(exc)) from exc
    return adapter


def download_snapshot(adapter: LoraAdapter, cache_dir: Path) -> Path:
    """Download an ``hf://repo@rev`` adapter into a hub cache; returns its snapshot directory
    (one per commit, so a new revision is a new path). One-line ``SmolserveError`` on failure."""
    from huggingface_hub import snapshot_download

    repo, revision = adapter.hf_repo
    try:
        return Path(snapshot_download(repo_id=repo, revision=revision, cache_dir=cache_dir))
    except Exception as exc:  # the hub raises many types; one line, never the token
        first = (str(exc).splitlines() or [""])[0]
        raise SmolserveError(
            f"adapter {adapter.name}: cannot download {repo}@{revision}: "
            f"{type(exc).__name__}: {first}"
        ) from exc


def fetch_adapter(adapter: LoraAdapter, dest: Path) -> Path:
    """Download one adapter and link ``dest/<name>`` to it; returns the link."""
    repo, revision = adapter.hf_repo
    snapshot = download_snapshot(adapter, dest / CACHE_SUBDIR)
    link = dest / adapter.name
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(snapshot, dest))
    print(f"adapter {adapter.name}: {repo}@{revision} → {link}", file=sys.stderr, flush=True)
    return link


def fetch_adapters(items: list[str], dest: Path) -> list[Path]:
    adapters = [parse_adapter(item) for item in items]
    dest.mkdir(parents=True, exist_ok=True)
    return [fetch_adapter(adapter, dest) for adapter in adapters]
