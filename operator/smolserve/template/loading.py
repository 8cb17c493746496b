"""Load a tokenizer from a local directory or a hub id, without importing torch.

``AutoTokenizer`` imports transformers' configuration classes, which import torch when it is
installed (it is, beside vLLM). SmolLM3 ships a ``tokenizer.json``, so the tokenizers-backed
class loads it directly and the engine stays light.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smolserve.errors import UsageError


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "…") if len(text) > 300 else (text or type(exc).__name__)


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or os.path.exists(source)


@contextmanager
def _quiet_hub_retries() -> Iterator[None]:
    """huggingface_hub logs a warning per retry of an unreachable hub; the error that follows
    says it in one line, so the retries stay silent."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _fetch_from_hub(source: str, revision: str | None) -> None:
    """Fetch the hub files first, so a hub problem is reported as such (not as a parse error)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{source}@{revision}" if revision else source
    try:
        with _quiet_hub_retries():
            hf_hub_download(source, "tokenizer.json", revision=revision)
    except HFValidationError:
        raise UsageError(
            f"cannot load tokenizer from {source}: neither a directory nor a hub model id"
        ) from None
    except LocalEntryNotFoundError:
        raise UsageError(
            f"cannot load tokenizer from {where}: the hub is unreachable (or HF_HUB_OFFLINE is "
            "set) and it is not in the local cache"
        ) from None
    except RevisionNotFoundError:
        raise UsageError(f"cannot load tokenizer from {where}: no such revision") from None
    except RemoteEntryNotFoundError:
        raise UsageError(f"cannot load tokenizer from {where}: it has no tokenizer.json") from None
    except RepositoryNotFoundError:
        raise UsageError(
            f"cannot load tokenizer from {source}: no such model on the hub "
            "(or it is private or gated: set HF_TOKEN)"
        ) from None


def load_tokenizer(source: str, revision: str | None = None) -> Any:
    """A transformers tokenizer from ``source`` (directory or hub id) at ``revision``."""
    from transformers import PreTrainedTokenizerFast

    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "tokenizer.json")):
            raise UsageError(f"cannot load tokenizer from {source}: no tokenizer.json in it")
        if revision:
            # A directory has no revisions: accepting one would record a pin that pins nothing.
            raise UsageError(
                f"cannot load tokenizer from {source} at revision {revision}: "
                "a revision applies to hub ids only"
            )
    elif _looks_like_path(source):
        problem = "not a directory" if os.path.exists(source) else "no such directory"
        raise UsageError(f"cannot load tokenizer from {source}: {problem}")
    else:
        _fetch_from_hub(source, revision)
    try:
        return PreTrainedTokenizerFast.from_pretrained(source, revision=revision)
    except Exception as exc:  # transformers raises many types; all mean "unreadable"
        raise UsageError(f"cannot load tokenizer from {source}: {_one_line(exc)}") from None
