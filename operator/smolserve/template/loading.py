"""Load a tokenizer from a local directory or a hub id, without importing torch.

``AutoTokenizer`` imports transformers' configuration classes, which import torch when it is
installed (it is, beside vLLM). SmolLM3 ships a ``tokenizer.json``, so the tokenizers-backed
class loads it directly and the engine stays light.
"""

from __future__ import annotations

import os
from typing import Any

from smolserve.errors import UsageError


def load_tokenizer(source: str, revision: str | None = None) -> Any:
    """A transformers tokenizer from ``source`` (directory or hub id) at ``revision``."""
    from transformers import PreTrainedTokenizerFast

    if os.path.isdir(source) and not os.path.isfile(os.path.join(source, "tokenizer.json")):
        raise UsageError(f"cannot load tokenizer from {source}: no tokenizer.json in the directory")
    try:
        return PreTrainedTokenizerFast.from_pretrained(source, revision=revision)
    except Exception as exc:  # transformers and the hub raise many types; all mean "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load tokenizer from {source}: {first}") from None
