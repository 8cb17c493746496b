"""Autoscaling and routing against the emulator: the real operator, KEDA's and the Inference
Extension's APIs served by stand-in CRDs (or not at all), the tests playing the autoscaler.

The central promise: while an autoscaler is on, the Deployment's ``spec.replicas`` belong to
it. The operator neither writes them (not in the object, not in its last-applied record) nor
resets them when autoscaling is switched on, and gives them back to ``spec.replicas`` when it
is switched off. Each negative check waits for the operator to have processed the change.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from chart.helpers import find_tool
from smolserve.kinds import BY_KIND
from smolserve.operator.apply import LAST_APPLIED
from smolserve.operator.discovery import ServedApis
from smolserve.operator.kube import USER_AGENT, Kube
from support import EmulatedCluster
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for
from support.thirdparty import serve_optional_apis
from support.world import MERGE, NS, World

PROMETHEUS = {"serverAddress": "http://prometheus-operated.monitoring.svc:9090"}
KEDA = {"engine": "keda", "minReplicas": 0, "maxReplicas": 4, "prometheus": PROMETHEUS}
HPA = {"engine": "hpa", "minReplicas": 1, "maxReplicas": 4}
POOL = {"endpointPickerRef": {"name": "smol-epp"}}
SCALED = ("scaledobjects", "keda.sh")
HPAS = ("horizontalpodautoscalers", "autoscaling")
POOLS = ("inferencepools", "inference.networking.k8s.io")


@pytest.fixture()
def fleet_world(
    cluster: EmulatedCluster,
    api_client: kubernetes.client.ApiClient,
    kubelet: Kubelet,
    fleet_operator: OperatorThread,
) -> World:
    return World(cluster, api_client, kubelet, fleet_operator)


def only(world: World, kind: tuple[str, str]) -> dict[str, Any] | None:
    found = world.children(*kind)
    assert len(found) <= 1, found
    return found[0] if found else None


def record(deployment: dict[str, Any]) -> dict[str, Any]:
    """What the operator last applied to the Deployment."""
    return json.loads(deployment["metadata"]["annotations"][LAST_APPLIED])


def autoscale(world: World, replicas: int) -> int:
    """Play the autoscaler: set the Deployment's replicas; returns the write's resourceVersion."""
    changed = world.apps.patch_namespaced_deployment(
        "smol", NS, {"spec": {"replicas": replicas}}, _content_type=MERGE
    )
    return int(changed.metadata.resource_version)


def deployment_writes(world: World, since: int) -> list[tuple[str, str, str]]:
    return [w for w in world.writes(since) if "/deployments" in w[1]]


def assert_left_alone(world: World, replicas: int) -> None:
    """The autoscaler sets ``replicas``; once the operator has processed that, it has not
    written the Deployment and the replicas are still the autoscaler's."""
    start = world.log_length()
    version = autoscale(world, replicas)
    world.processed(version)
    assert deployment_writes(world, start) == []
    assert world.deployment()["spec"]["replicas"] == replicas


def commit_status(world: World, kind: tuple[str, str], status: dict[str, Any]) -> None:
    """Write an object's status as its own controller (KEDA, a gateway) would."""
    plural, group = kind

    def write(emulator: Any) -> None:
        live = copy.deepcopy(emulator.get(plural, NS, "smol", group))
        emulator.commit(plural, {**live, "status": status}, group)

    world.cluster.call(write)


def test_keda_owns_the_replicas_down_to_zero(fleet_world: World) -> None:
    world = fleet_world
    world.create({"autoscaling": KEDA, "inferencePool": POOL})
    scaled = wait_for(lambda: only(world, SCALED), what="the ScaledObject")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "smol",
    }
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="default",pod=~"smol-[a-z0-9]+-[a-z0-9]+"})'
    )
    pool = wait_for(lambda: only(world, POOLS), what="the InferencePool")
    assert pool["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "smol"

    world.run_template()
    deployment = world.deployment()
    assert "replicas" not in deployment["spec"] and "replicas" not in record(deployment)["spec"]
    world.ready()  # the API server's default: one pod

    assert_left_alone(world, 3)
    world.kubelet.deployment_ready(NS, "smol")
    wait_for(lambda: world.serve()["status"]["readyReplicas"] == 3, what="3 ready pods")
    status = world.serve()["status"]
    assert (status["replicas"], status["phase"]) == (3, "Ready")
    assert world.condition("Available")["message"] == "3/3 replicas ready (the autoscaler's count)"

    assert_left_alone(world, 0)  # KEDA scaled to zero (minReplicaCount 0)
    world.kubelet.settle()
    wait_for(lambda: world.serve()["status"]["replicas"] == 0, what="no pods")
    wait_for(lambda: world.serve()["status"]["phase"] == "Ready", what="Ready at zero")
    assert world.condition("Available")["status"] == "True"
    world.assert_steady()


def test_switching_an_autoscaler_on_keeps_the_replicas_and_off_gives_them_back(
    world: World,
) -> None:
    world.create({"replicas": 2})
    world.run_template()
    world.ready()
    assert world.deployment()["spec"]["replicas"] == 2

    world.patch_spec({"autoscaling": HPA})
    hpa = wait_for(lambda: only(world, HPAS), what="the HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"] == {
        "metric": {"name": "vllm:num_requests_waiting"},
        "target": {"type": "AverageValue", "averageValue": "2"},
    }
    # The record drops the replicas; the object keeps them (not reset to the default 1).
    wait_for(lambda: "replicas" not in record(world.deployment())["spec"], what="the record")
    assert world.deployment()["spec"]["replicas"] == 2

    assert_left_alone(world, 4)
    world.kubelet.deployment_ready(NS, "smol")
    wait_for(lambda: world.serve()["status"]["readyReplicas"] == 4, what="4 ready pods")

    world.patch_spec({"autoscaling": {**HPA, "enabled": False}})
    wait_for(lambda: only(world, HPAS) is None, what="the HPA deleted")
    wait_for(lambda: world.deployment()["spec"]["replicas"] == 2, what="spec.replicas back")
    assert record(world.deployment())["spec"]["replicas"] == 2
    assert world.condition("AutoscalerReady") == {}  # the condition goes with the feature


def test_without_the_apis_nothing_is_written_and_the_status_says_so(world: World) -> None:
    world.create({"autoscaling": KEDA, "inferencePool": POOL})
    wait_for(lambda: world.condition("InferencePoolReady").get("reason") == "APINotServed")
    autoscaler = world.condition("AutoscalerReady")
    assert (autoscaler["status"], autoscaler["reason"]) == ("False", "APINotServed")
    assert "keda.sh/v1alpha1 ScaledObject" in autoscaler["message"]
    assert "install KEDA" in autoscaler["message"]
    degraded = world.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "APINotServed")
    assert "InferencePool" in degraded["message"] and "ScaledObject" in degraded["message"]
    assert world.events("APINotServed")

    world.run_template()  # the rest is served as usual; the replicas stay unwritten
    assert "replicas" not in world.deployment()["spec"]
    world.kubelet.deployment_ready(NS, "smol")
    wait_for(lambda: world.serve()["status"]["readyReplicas"] == 1, what="a ready pod")
    assert world.serve()["status"]["phase"] == "Degraded"
    world.assert_steady()
    log = world.cluster.call(lambda emulator: list(emulator.log))
    assert not [r for r in log if "/scaledobjects" in r.path or "/inferencepools" in r.path]
    discovery = [
        r for r in log if r.path.startswith("/apis/keda.sh") and USER_AGENT in r.user_agent
    ]
    assert len(discovery) == 1  # discovery once, not per reconcile

    world.patch_spec({"autoscaling": None, "inferencePool": None})
    wait_for(lambda: world.condition("Degraded").get("status") == "False", what="not degraded")
    assert "AutoscalerReady" not in {c["type"] for c in world.serve()["status"]["conditions"]}


def test_the_autoscalers_and_the_gateways_reports_reach_the_status(fleet_world: World) -> None:
    world = fleet_world
    world.create({"autoscaling": KEDA, "inferencePool": POOL})
    wait_for(lambda: world.condition("AutoscalerReady").get("reason") == "WaitingForAutoscaler")
    failing = {
        "type": "Ready",
        "status": "False",
        "reason": "ScaledObjectCheckFailed",
        "message": "error inspecting prometheus metrics: connection refused",
    }
    commit_status(world, SCALED, {"conditions": [failing]})
    wait_for(lambda: world.condition("AutoscalerReady").get("reason") == "AutoscalerFailing")
    assert "connection refused" in world.condition("AutoscalerReady")["message"]
    wait_for(lambda: [e for e in world.events("AutoscalerFailing") if e["type"] == "Warning"])

    ready = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady", "message": ""}
    active = {"type": "Active", "status": "False", "reason": "ScalerNotActive", "message": ""}
    commit_status(world, SCALED, {"conditions": [ready, active]})
    wait_for(lambda: world.condition("AutoscalerReady").get("status") == "True")
    assert world.condition("AutoscalerReady")["message"].startswith(
        "KEDA (idle) scales Deployment smol between 0 and 4 pods on vllm:num_requests_waiting"
    )

    wait_for(lambda: world.condition("InferencePoolReady").get("status") == "True")
    assert "no gateway reports on it yet" in world.condition("InferencePoolReady")["message"]
    parent = {
        "parentRef": {"kind": "Gateway", "name": "inference-gateway"},
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""},
            {
                "type": "ResolvedRefs",
                "status": "False",
                "reason": "InvalidExtensionRef",
                "message": 'Service "smol-epp" not found',
            },
        ],
    }
    commit_status(world, POOLS, {"parents": [parent]})
    wait_for(lambda: world.condition("InferencePoolReady").get("status") == "False")
    message = world.condition("InferencePoolReady")["message"]
    assert message.startswith("Gateway inference-gateway: ResolvedRefs=False: InvalidExtensionRef")
    parent["conditions"][1].update(status="True", reason="ResolvedRefs", message="")
    commit_status(world, POOLS, {"parents": [parent]})
    wait_for(lambda: world.condition("InferencePoolReady").get("status") == "True")
    assert (
        "accepted by Gateway inference-gateway" in world.condition("InferencePoolReady")["message"]
    )


def test_kubectl_scale_works_without_an_autoscaler_and_changes_nothing_under_one(
    world: World, tmp_path: Path
) -> None:
    kubectl = find_tool("kubectl")

    def scale(replicas: int) -> None:
        env = {**os.environ, "HOME": str(tmp_path)}
        command = [kubectl, "scale", "smolserve", "smol", f"--replicas={replicas}"]
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)

    world.create()
    world.run_template()
    world.ready()
    scale(3)  # through the SmolServe's scale subresource
    wait_for(lambda: world.deployment()["spec"]["replicas"] == 3, what="3 replicas")
    world.kubelet.deployment_ready(NS, "smol")
    wait_for(lambda: world.serve()["status"]["replicas"] == 3, what="status.replicas 3")

    world.patch_spec({"autoscaling": HPA})
    wait_for(lambda: only(world, HPAS), what="the HPA")
    start = world.log_length()
    scale(1)  # spec.replicas is ignored while the autoscaler is on
    world.processed(int(world.serve()["metadata"]["resourceVersion"]))
    assert world.serve()["spec"]["replicas"] == 1
    assert deployment_writes(world, start) == []
    assert world.deployment()["spec"]["replicas"] == 3


def test_discovery_is_asked_once_and_again_only_when_due(
    cluster: EmulatedCluster, api_client: kubernetes.client.ApiClient
) -> None:
    now = [0.0]
    apis = ServedApis(Kube.from_environment(), refresh_seconds=300, clock=lambda: now[0])
    assert apis.unserved() == {"ScaledObject", "InferencePool"}
    serve_optional_apis(api_client, kinds=("ScaledObject",))
    now[0] = 299
    assert apis.unserved() == {"ScaledObject", "InferencePool"}  # not due: remembered
    now[0] = 300
    assert apis.unserved() == {"InferencePool"}
    serve_optional_apis(api_client, kinds=("InferencePool",))
    apis.recheck(BY_KIND["InferencePool"])
    assert apis.unserved() == frozenset()
    kubernetes.client.ApiextensionsV1Api(api_client).delete_custom_resource_definition(
        "scaledobjects.keda.sh"
    )
    apis.recheck(BY_KIND["ScaledObject"])  # a 404 on a write: uninstalled meanwhile
    assert apis.unserved() == {"ScaledObject"}
