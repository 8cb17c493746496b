"""Fixtures of the security checks: the chart rendered with each of its example values files,
the real operator against the emulator, and a hub that refuses every request."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from chart.helpers import CHART, RELEASE, RELEASE_NAMESPACE, find_tool, load_all, run, values_files
from smolserve.manifests import OperatorConfig
from support import EmulatedCluster, install_crds
from support.hub import RefusingHub, point_hub_at
from support.kubelet import Kubelet
from support.running import OperatorThread
from support.world import World


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


@pytest.fixture()
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedCluster]:
    """The emulator with the CRDs (as tests/operator's)."""
    with EmulatedCluster(tmp_path / "kubeconfig") as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        install_crds(cluster)
        yield cluster


@pytest.fixture()
def world(
    cluster: EmulatedCluster, operator_config: OperatorConfig, tmp_path: Path
) -> Iterator[World]:
    """The real operator against the emulator, and a kubelet that runs the template Job with
    the test-kit tokenizer standing for the ``models`` claim."""
    from smolserve.testkit import build_tokenizer

    models = tmp_path / "models"
    build_tokenizer(models / "SmolLM3-3B")
    kubelet = Kubelet(cluster, {"/models": models}, tmp_path)
    api_client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    thread = OperatorThread(operator_config).start()
    yield World(cluster, api_client, kubelet, thread)
    thread.stop()


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefusingHub]:
    """A hub on loopback that refuses everything and echoes the credentials it was sent."""
    stand_in = RefusingHub()
    point_hub_at(stand_in.url, monkeypatch)
    yield stand_in
    stand_in.close()
