"""Smoke-gated rollouts against the emulator: the real operator, the emulated Deployment,
ReplicaSet and pod controllers, and the tests playing each pod's agent.

A pod's agent is played the way the real one behaves (tests/vllm/test_smoke.py runs the real
one against a real vLLM): it writes its report into ``<name>-agent-status`` with
``smolserve.agent.report`` and, once its battery passed, its container turns ready (the
emulated kubelet's readiness is the test's to set: the vLLM container is ready when vLLM is
healthy, the agent container only when the battery passed). The Deployment controller then
does what it does on a cluster: with ``maxSurge: 1, maxUnavailable: 0`` it replaces no old pod
before a new one is available.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from smolserve import labels
from smolserve.agent.report import (
    FAILED,
    PASSED,
    RUNNING,
    PodReport,
    SmokeReport,
    agent_status_name,
    format_time,
    read_reports,
    report_patch,
)
from smolserve.operator.overlay import resource_version
from support.running import OperatorThread, wait_for
from support.world import MERGE, NS, World

HASH = labels.POD_TEMPLATE_HASH


def stamp(seconds_ago: float = 0) -> str:
    return format_time(
        datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    )


def pod_hash(obj: dict[str, Any]) -> str:
    """The pod-template hash of a pod, or of a Deployment's pod template."""
    meta = (
        obj["spec"]["template"]["metadata"] if obj.get("kind") == "Deployment" else obj["metadata"]
    )
    return meta["annotations"][HASH]


class Agents:
    """The tests' hands as every pod's agent."""

    def __init__(self, world: World) -> None:
        self.world = world

    def pods(self, template_hash: str | None = None) -> list[dict[str, Any]]:
        pods = [
            p
            for p in self.world.kubelet.pods(NS, "Deployment", "smol")
            if not p["metadata"].get("deletionTimestamp")
        ]
        return [p for p in pods if template_hash is None or pod_hash(p) == template_hash]

    def running(self, template_hash: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait for ``count`` running pods of this pod template; returns them (oldest first)."""

        def found() -> list[dict[str, Any]] | None:
            pods = [
                p
                for p in self.pods(template_hash)
                if (p.get("status") or {}).get("phase") == "Running"
            ]
            return pods if len(pods) >= count else None

        return wait_for(found, what=f"{count} running pods of {template_hash}")

    def report(
        self,
        pod: dict[str, Any],
        state: str,
        *,
        check: str | None = None,
        observed: str | None = None,
        healthy_for: float = 1.0,
        written_ago: float = 0,
    ) -> int:
        """Write the pod's report; returns the status ConfigMap's new resourceVersion."""
        meta = pod["metadata"]
        report = PodReport(
            pod=meta["name"],
            uid=meta["uid"],
            pod_template_hash=meta["annotations"][HASH],
            ready=state == PASSED,
            healthy_since=stamp(healthy_for),
            smoke=SmokeReport(state, check=check, observed=observed, at=stamp(written_ago)),
            at=stamp(written_ago),
        )
        patched = self.world.core.patch_namespaced_config_map(
            agent_status_name("smol"), NS, report_patch(report), _content_type=MERGE
        )
        return int(patched.metadata.resource_version)

    def healthy(self, pod: dict[str, Any]) -> None:
        """vLLM answers /health: its container is ready, the agent's not yet."""
        self.world.kubelet.set_ready(NS, pod["metadata"]["name"], container="vllm")

    def passed(self, pod: dict[str, Any]) -> int:
        version = self.report(pod, PASSED)
        self.world.kubelet.set_ready(NS, pod["metadata"]["name"])
        return version

    def pass_every_pod(self, template_hash: str) -> None:
        """Play each new pod's agent as the rollout makes them, until it completes."""

        def step() -> bool:
            deployment = self.world.deployment()
            status = deployment.get("status") or {}
            if (
                status.get("updatedReplicas")
                == status.get("availableReplicas")
                == status.get("replicas")
                == deployment["spec"]["replicas"]
                and status.get("observedGeneration") == deployment["metadata"]["generation"]
                and pod_hash(deployment) == template_hash
            ):
                return True
            for pod in self.pods(template_hash):
                status = pod.get("status") or {}
                ready = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions") or []
                )
                if status.get("phase") == "Running" and not ready:
                    self.passed(pod)
            return False

        wait_for(step, timeout=30, what=f"the rollout of {template_hash} to complete")

    def reports(self) -> dict[str, PodReport]:
        data = self.world.core.read_namespaced_config_map(agent_status_name("smol"), NS).data
        return read_reports(data)[0]


@pytest.fixture()
def agents(world: World) -> Agents:
    return Agents(world)


def serving(world: World, agents: Agents, spec: dict[str, Any] | None = None) -> str:
    """A SmolServe whose first rollout passed; returns its pod-template hash."""
    world.create({"replicas": 2, **(spec or {})})
    world.run_template()
    first = pod_hash(world.deployment())
    agents.pass_every_pod(first)
    wait_for(lambda: world.condition("SmokeTested").get("status") == "True", what="SmokeTested")
    wait_for(lambda: (world.serve().get("status") or {}).get("phase") == "Ready", what="Ready")
    return first


def new_template(world: World, value: str = "1") -> str:
    """Change the pod template (an engine env var: no template Job); returns its hash."""
    before = pod_hash(world.deployment())
    world.patch_spec({"engine": {"env": [{"name": "SMOKE_TEST_CHANGE", "value": value}]}})
    return wait_for(
        lambda: (h := pod_hash(world.deployment())) != before and h, what="a new pod template"
    )


def names(pods: list[dict[str, Any]]) -> set[str]:
    return {p["metadata"]["name"] for p in pods}


def test_the_rollout_waits_at_the_first_new_pod_until_its_battery_passes(
    world: World, agents: Agents
) -> None:
    first = serving(world, agents)
    old = names(agents.pods(first))
    second = new_template(world)
    (pod,) = agents.running(second)
    agents.healthy(pod)
    world.processed(agents.report(pod, RUNNING))
    world.kubelet.settle()
    # The Deployment controller may not replace an old pod: the new one is not available.
    assert names(agents.pods(first)) == old and len(agents.pods(second)) == 1
    assert all(p["status"]["phase"] == "Running" for p in agents.pods(first))
    smoke = world.condition("SmokeTested")
    assert (smoke["status"], smoke["reason"]) == ("False", "SmokeTestRunning")
    assert f"{second}: 0 of 2 passed" in smoke["message"]
    assert world.serve()["status"]["phase"] == "Progressing"
    world.assert_steady()  # waiting writes nothing

    agents.passed(pod)  # the battery passed on it: the rollout goes on, one pod at a time
    agents.pass_every_pod(second)
    assert not agents.pods(first)
    smoke = wait_for(lambda: (c := world.condition("SmokeTested"))["status"] == "True" and c)
    assert second in smoke["message"]
    rollout = world.serve()["status"]["rollout"]
    assert rollout == {"podTemplateHash": second, "passedPodTemplateHash": second}
    # The pod template that passed before is remembered on the Deployment (for a rollback).
    passed = json.loads(world.deployment()["metadata"]["annotations"][labels.PASSED_POD_TEMPLATE])
    assert passed["metadata"]["annotations"][HASH] == first
    world.assert_steady()


def test_a_failed_battery_rolls_back_and_is_not_retried_until_asked(
    world: World, agents: Agents, operator: OperatorThread
) -> None:
    first = serving(world, agents)
    old = agents.pods(first)
    second = new_template(world)
    (pod,) = agents.running(second)
    agents.healthy(pod)
    agents.report(pod, FAILED, check="no-think-answer", observed="content=None reasoning='hi'")

    wait_for(lambda: pod_hash(world.deployment()) == first, what="the rollback")
    degraded = wait_for(lambda: (c := world.condition("Degraded"))["status"] == "True" and c)
    assert degraded["reason"] == "SmokeTestFailed"
    assert (
        "no-think-answer" in degraded["message"]
        and "content=None reasoning='hi'" in degraded["message"]
    )
    assert pod["metadata"]["name"] in degraded["message"]
    assert world.condition("SmokeTested")["reason"] == "SmokeTestFailed"
    wait_for(
        lambda: any(e["type"] == "Warning" for e in world.events("SmokeTestFailed")),
        what="the SmokeTestFailed Warning (kopf posts Events in the background)",
    )
    # The old pods never stopped; the failed one goes.
    agents.world.kubelet.settle()
    wait_for(lambda: not agents.pods(second), what="the failed pod removed")
    assert [(p["metadata"]["uid"], p["status"]["phase"]) for p in agents.pods(first)] == [
        (p["metadata"]["uid"], "Running") for p in old
    ]
    status = world.serve()["status"]
    assert status["phase"] == "Degraded" and status["readyReplicas"] == 2
    assert status["rollout"] == {
        "podTemplateHash": first,
        "passedPodTemplateHash": first,
        "failedPodTemplateHash": second,
    }
    marker = json.loads(world.deployment()["metadata"]["annotations"][labels.SMOKE_FAILED])
    assert (marker["podTemplateHash"], marker["check"]) == (second, "no-think-answer")

    # No retry loop: nothing more happens, not even after a restart.
    world.assert_steady()
    operator.stop()
    operator.start()
    world.processed(resource_version(world.serve()))
    world.assert_steady()
    assert pod_hash(world.deployment()) == first and not agents.pods(second)

    # Deleting the marker (the documented way) tries the same pod template again.
    world.apps.patch_namespaced_deployment(
        "smol", NS, {"metadata": {"annotations": {labels.SMOKE_FAILED: None}}}, _content_type=MERGE
    )
    wait_for(lambda: pod_hash(world.deployment()) == second, what="the retry")
    (retry,) = agents.running(second)
    assert retry["metadata"]["uid"] != pod["metadata"]["uid"]
    agents.report(retry, FAILED, check="no-think-tool-call", observed="tool_calls=[]")
    wait_for(lambda: pod_hash(world.deployment()) == first, what="the second rollback")
    # A spec change is a new pod template: tried at once, and the marker goes.
    third = new_template(world, "2")
    assert labels.SMOKE_FAILED not in world.deployment()["metadata"]["annotations"]
    agents.pass_every_pod(third)
    wait_for(lambda: world.condition("Degraded")["status"] == "False", what="healthy again")


def test_a_battery_that_never_finishes_is_rolled_back_at_its_timeout(
    world: World, agents: Agents
) -> None:
    first = serving(world, agents, {"rollout": {"smokeTimeout": "1s"}})
    second = new_template(world)
    (pod,) = agents.running(second)
    agents.healthy(pod)
    agents.report(pod, RUNNING, healthy_for=0)  # then silence: the agent hangs
    wait_for(lambda: pod_hash(world.deployment()) == first, timeout=20, what="the rollback")
    # The status is written right after the Deployment's patch (apply, then report).
    degraded = wait_for(lambda: (c := world.condition("Degraded"))["status"] == "True" and c)
    assert degraded["reason"] == "SmokeTestFailed" and "smoke check timeout" in degraded["message"]
    assert "rollout.smokeTimeout 1 s" in degraded["message"]
    # Decided by the operator's own timer (no event came in), Events included (kopf posts
    # them in the background).
    wait_for(
        lambda: any(e["type"] == "Warning" for e in world.events("SmokeTestFailed")),
        what="the SmokeTestFailed Warning",
    )


def test_the_first_rollout_failing_has_nothing_to_roll_back_to(
    world: World, agents: Agents
) -> None:
    world.create()
    world.run_template()
    first = pod_hash(world.deployment())
    (pod,) = agents.running(first)
    agents.healthy(pod)
    world.processed(agents.report(pod, FAILED, check="history-tool-calls", observed="no blocks"))
    degraded = wait_for(lambda: (c := world.condition("Degraded"))["status"] == "True" and c)
    assert (
        "none to go back to" in degraded["message"] and "history-tool-calls" in degraded["message"]
    )
    assert pod_hash(world.deployment()) == first
    assert labels.SMOKE_FAILED not in (world.deployment()["metadata"].get("annotations") or {})
    assert world.serve()["status"]["readyReplicas"] == 0  # the pod takes no traffic
    world.assert_steady()


def test_a_restart_mid_rollout_resumes_it(
    world: World, agents: Agents, operator: OperatorThread
) -> None:
    first = serving(world, agents)
    second = new_template(world)
    (pod,) = agents.running(second)
    agents.healthy(pod)
    agents.report(pod, RUNNING)
    operator.stop()
    agents.report(pod, FAILED, check="no-think-answer", observed="content=None")  # while down
    operator.start()
    wait_for(lambda: pod_hash(world.deployment()) == first, what="the rollback after a restart")
    # The status is written right after the Deployment's patch, in the same reconcile.
    wait_for(
        lambda: world.condition("Degraded")["reason"] == "SmokeTestFailed",
        what="Degraded=SmokeTestFailed after the rollback",
    )

    third = new_template(world, "2")
    (pod,) = agents.running(third)
    agents.healthy(pod)
    agents.report(pod, RUNNING)
    operator.stop()
    operator.start()
    agents.pass_every_pod(third)  # the restarted operator lets it complete, and records it
    wait_for(
        lambda: world.serve()["status"]["rollout"].get("passedPodTemplateHash") == third,
        what="the passed pod template",
    )
    assert world.condition("SmokeTested")["status"] == "True"


def test_reports_of_pods_that_are_gone_are_removed(world: World, agents: Agents) -> None:
    first = serving(world, agents)
    assert set(agents.reports()) == names(agents.pods(first))
    second = new_template(world)
    (pod,) = agents.running(second)
    agents.healthy(pod)
    # Written a minute ago (older than the grace a new pod's first report gets).
    agents.report(pod, FAILED, check="adapters", observed="'sql' missing", written_ago=60)
    wait_for(lambda: not agents.pods(second), what="the failed pod removed")
    wait_for(lambda: pod["metadata"]["name"] not in agents.reports(), what="its report removed")
    assert set(agents.reports()) == names(agents.pods(first))


def test_smoke_off_runs_no_agent(world: World, agents: Agents) -> None:
    world.create({"rollout": {"smoke": False}})
    world.run_template()
    deployment = world.deployment()
    containers = [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert containers == ["vllm"]
    assert "serviceAccountName" not in deployment["spec"]["template"]["spec"]
    world.ready()
    assert "SmokeTested" not in {c["type"] for c in world.serve()["status"]["conditions"]}
    assert not [c for c in world.children("configmaps") if "agent" in c["metadata"]["name"]]
