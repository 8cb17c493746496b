"""Fixtures of the packaging and image tests: the test-kit tokenizer as a "models" volume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .scenario import MODEL_DIR, ROOT, python_env


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory standing for the "models" PVC: the test-kit tokenizer in MODEL_DIR, built by
    `smolserve testkit tokenizer`, readable by the images' non-root users."""
    root = tmp_path_factory.mktemp("models")
    subprocess.run(
        [sys.executable, "-m", "smolserve.cli", "testkit", "tokenizer", "--out", root / MODEL_DIR],
        cwd=ROOT,
        env=python_env(),
        check=True,
        capture_output=True,
    )
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root
