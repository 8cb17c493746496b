"""Fixtures for the operator's integration tests: the emulator, the real operator, a kubelet."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `support` package

from smolserve.manifests import OperatorConfig
from support import EmulatedCluster, install_crds
from support.faults import FaultProxyThread
from support.kubelet import Kubelet
from support.running import OperatorThread
from support.thirdparty import serve_optional_apis
from support.world import World

NAMESPACE = "default"


@pytest.fixture()
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatedCluster]:
    """The emulator with the CRDs; options by indirect parametrization, e.g.
    ``@pytest.mark.parametrize("cluster", [{"gc_delay": None}], indirect=True)``."""
    options = getattr(request, "param", {})
    with EmulatedCluster(tmp_path / "kubeconfig", **options) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        install_crds(cluster)
        yield cluster


@pytest.fixture()
def api_client(cluster: EmulatedCluster) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(str(cluster.kubeconfig))


@pytest.fixture()
def operator(cluster: EmulatedCluster, operator_config: OperatorConfig) -> Iterator[OperatorThread]:
    thread = OperatorThread(operator_config)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture()
def optional_apis(api_client: kubernetes.client.ApiClient) -> None:
    """The emulator serves KEDA's ScaledObject and the InferencePool (stand-in CRDs)."""
    serve_optional_apis(api_client)


@pytest.fixture()
def fleet_operator(
    optional_apis: None, operator_config: OperatorConfig
) -> Iterator[OperatorThread]:
    """The operator, started once the optional APIs are served (kopf watches what it finds)."""
    thread = OperatorThread(operator_config)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def tokenizer_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory standing for the `models` PVC, holding the test-kit tokenizer."""
    from smolserve.testkit import build_tokenizer

    root = tmp_path_factory.mktemp("models")
    build_tokenizer(root / "SmolLM3-3B")
    return root


@pytest.fixture()
def kubelet(cluster: EmulatedCluster, tokenizer_root: Path, tmp_path: Path) -> Kubelet:
    mounts = {"/models": tokenizer_root, "/etc/smolserve/source": tmp_path / "source"}
    return Kubelet(cluster, mounts, tmp_path)


@pytest.fixture()
def world(
    cluster: EmulatedCluster,
    api_client: kubernetes.client.ApiClient,
    kubelet: Kubelet,
    operator: OperatorThread,
) -> World:
    return World(cluster, api_client, kubelet, operator)


@pytest.fixture()
def proxied_world(
    request: pytest.FixtureRequest,
    cluster: EmulatedCluster,
    api_client: kubernetes.client.ApiClient,
    kubelet: Kubelet,
    operator_config: OperatorConfig,
    monkeypatch: pytest.MonkeyPatch,
    proxy: FaultProxyThread,
) -> Iterator[World]:
    """A World whose operator reaches the API through the test module's ``proxy`` fixture (a
    ``support.faults.FaultProxyThread``), started with the module's ``OPERATOR_OPTIONS``."""
    monkeypatch.setenv("KUBECONFIG", str(proxy.kubeconfig))
    options = getattr(request.module, "OPERATOR_OPTIONS", {})
    operator = OperatorThread(operator_config, **options).start()
    try:
        yield World(cluster, api_client, kubelet, operator)
    finally:
        operator.stop()
