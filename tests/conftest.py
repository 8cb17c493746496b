"""Fixtures shared across test folders: the offline test-kit tokenizers (built once a session),
and the operator configuration. ``tests/support`` is importable from every test folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `support` package

from smolserve.manifests import OperatorConfig
from support.factories import operator_config as _operator_config


@pytest.fixture(scope="session")
def operator_config() -> OperatorConfig:
    """The one OperatorConfig of the tests (see ``support.factories.operator_config``)."""
    return _operator_config()


@pytest.fixture(scope="session")
def testkit_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test-kit tokenizer with the think/tool tags *not* flagged special."""
    from smolserve.testkit import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("testkit-plain"))


@pytest.fixture(scope="session")
def testkit_tokenizer_dir_special(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test-kit tokenizer with the think/tool tags flagged special."""
    from smolserve.testkit import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("testkit-special"), tags_special=True)


@pytest.fixture(scope="session")
def testkit_tokenizer(testkit_tokenizer_dir: Path) -> Any:
    from smolserve.template import load_tokenizer

    return load_tokenizer(str(testkit_tokenizer_dir))


@pytest.fixture(scope="session")
def testkit_tokenizer_special(testkit_tokenizer_dir_special: Path) -> Any:
    from smolserve.template import load_tokenizer

    return load_tokenizer(str(testkit_tokenizer_dir_special))


@pytest.fixture(scope="session", params=["plain", "special"])
def any_testkit_tokenizer(request: pytest.FixtureRequest) -> Any:
    """Both test-kit tokenizers in turn: tags special and not."""
    return request.getfixturevalue(
        "testkit_tokenizer" if request.param == "plain" else "testkit_tokenizer_special"
    )
