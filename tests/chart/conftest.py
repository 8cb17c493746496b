"""Fixtures for the chart, image and example gates (see helpers.py for the tool policy)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from .helpers import CHART, RELEASE, RELEASE_NAMESPACE, find_tool, load_all, run


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A writable HOME and helm directories of the test's own."""
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="session")
def helm_template(helm_env: dict[str, str]) -> Callable[..., list[dict[str, Any]]]:
    """helm template of the chart → the list of objects (cached per arguments)."""
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def template(
        values: Path | None = None,
        *,
        helm: str = "helm",
        api_versions: Sequence[str] = (),
        sets: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        key = (values, helm, tuple(api_versions), tuple(sets))
        if key not in cache:
            cmd: list[str | Path] = [
                find_tool(helm),
                "template",
                RELEASE,
                CHART,
                "--namespace",
                RELEASE_NAMESPACE,
                "--include-crds",
            ]
            if values is not None:
                cmd += ["--values", values]
            for api in api_versions:
                cmd += ["--api-versions", api]
            for s in sets:
                cmd += ["--set", s]
            cache[key] = load_all(run(cmd, env=helm_env))
        return cache[key]

    return template
