"""Fixtures of the reliability tests: the test-kit tokenizer where the model PVC would be."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory standing for the ``models`` PVC, holding the test-kit tokenizer."""
    from smolserve.testkit import build_tokenizer

    root = tmp_path_factory.mktemp("models")
    build_tokenizer(root / "SmolLM3-3B")
    return root
