"""Fixtures of the security checks: the chart rendered with each of its example values files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chart.helpers import CHART, RELEASE, RELEASE_NAMESPACE, find_tool, load_all, run, values_files


@pytest.fixture(scope="session")
def chart_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """``helm template`` of the chart: defaults, then each ci/*-values.yaml (label → objects)."""
    helm = find_tool("helm")
    home = tmp_path_factory.mktemp("helm-home")
    env = {**os.environ, "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache")}
    env |= {"HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    rendered = {}
    for values in [None, *values_files()]:
        cmd: list[str | Path] = [helm, "template", RELEASE, CHART, "--namespace", RELEASE_NAMESPACE]
        if values is not None:
            cmd += ["--values", values]
        rendered["defaults" if values is None else values.name] = load_all(run(cmd, env=env))
    return rendered
