"""Dynamic LoRA through the real operator and the emulator: the tests play the pods' agents.

Each pod's agent would write its report into ``<name>-agent-status``; here the test writes
exactly what ``smolserve.agent.report`` gives (``report_patch``), as the agent does, and checks
what the operator makes of it: the per-adapter status across pods, retries, a pod that starts
later, adapters added and removed without a pod-template change, and switching modes.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from smolserve import labels
from smolserve.agent.report import (
    AdapterReport,
    PodReport,
    agent_config_name,
    agent_status_name,
    read_config,
    report_patch,
)
from support.running import wait_for
from support.world import MERGE, NS, World

SQL = {"name": "sql", "source": "hf://org/sql-lora@v1"}
CHAT = {"name": "chat", "source": "pvc://adapters/chat"}
SUPPORT = {"name": "support", "source": "hf://org/support-lora@v3"}
LOCAL = {"name": "local", "source": "pvc://adapters/local/v2"}  # on chat's claim
NOT_SMOKED = {"smoke": False}  # these tests are about adapters, not the battery


def lora(*adapters: dict[str, str], **more: Any) -> dict[str, Any]:
    return {"lora": {"adapters": list(adapters), "maxLoras": 4, **more}, "rollout": NOT_SMOKED}


def running_pods(world: World, count: int) -> list[str]:
    def pods() -> list[str] | None:
        found = [
            p["metadata"]["name"]
            for p in world.kubelet.wait_running(NS, "Deployment", "smol")
            if not p["metadata"].get("deletionTimestamp")
        ]
        return sorted(found) if len(found) == count else None

    return wait_for(pods, what=f"{count} running pods")


def report(world: World, pod: str, ready: bool = True, **adapters: tuple[str, ...]) -> None:
    """Write ``pod``'s report as its agent would (a merge patch of its own key)."""
    uid = next(
        p["metadata"]["uid"]
        for p in world.kubelet.pods(NS, "Deployment", "smol")
        if p["metadata"]["name"] == pod
    )
    body = PodReport(
        pod=pod,
        uid=uid,
        ready=ready,
        adapters={name: AdapterReport(*state) for name, state in adapters.items()},
        at="2026-01-01T00:00:00Z",
    )
    world.core.patch_namespaced_config_map(
        agent_status_name("smol"), NS, report_patch(body), _content_type=MERGE
    )


def adapters_status(world: World) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in (world.serve().get("status") or {}).get("adapters") or []}


def wait_adapters(world: World, **expected: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """Wait until each named adapter shows (state, pods)."""

    def matches() -> dict[str, dict[str, Any]] | None:
        found = adapters_status(world)
        ok = all(
            name in found and (found[name]["state"], found[name]["pods"]) == want
            for name, want in expected.items()
        )
        return found if ok else None

    return wait_for(matches, what=f"adapters {expected}")


def agent_config(world: World):
    cm = world.core.read_namespaced_config_map(agent_config_name("smol"), NS)
    return read_config(cm.data)


def test_status_across_pods_a_failure_and_its_retry(world: World) -> None:
    world.create({**lora(SQL, CHAT), "replicas": 2})
    world.run_template()
    world.kubelet.deployment_ready(NS, "smol")
    config = agent_config(world)
    assert [a.name for a in config.lora.adapters] == ["sql", "chat"]
    first, second = running_pods(world, 2)

    error = "Call to add_lora method failed: LoRA rank 16 is greater than max_lora_rank 8."
    report(world, first, sql=(SQL["source"], "Ready"), chat=(CHAT["source"], "Loading"))
    report(world, second, sql=(SQL["source"], "Failed", error), chat=(CHAT["source"], "Ready"))
    found = wait_adapters(world, sql=("Failed", "1/2"), chat=("Loading", "1/2"))
    assert found["sql"]["error"] == error and found["sql"]["source"] == SQL["source"]
    condition = world.condition("AdaptersReady")
    assert (condition["status"], condition["reason"]) == ("False", "AdapterFailed")
    assert condition["message"] == f"sql: {error}"
    (event,) = world.events("AdapterFailed")
    assert event["type"] == "Warning" and error in event["message"]
    assert world.serve()["status"]["phase"] == "Ready"  # the base model still serves

    # The agent retried: loaded on both pods now.
    report(world, second, sql=(SQL["source"], "Ready"), chat=(CHAT["source"], "Ready"))
    report(world, first, sql=(SQL["source"], "Ready"), chat=(CHAT["source"], "Ready"))
    wait_adapters(world, sql=("Ready", "2/2"), chat=("Ready", "2/2"))
    wait_for(lambda: world.condition("AdaptersReady").get("status") == "True")
    assert world.condition("AdaptersReady")["message"] == "2 adapters loaded on every ready pod (2)"
    assert {e["message"].split(" ")[1] for e in world.events("AdapterReady")} == {"sql", "chat"}
    world.assert_steady()


def test_a_pod_started_later_converges(world: World) -> None:
    world.create({**lora(SQL), "replicas": 1})
    world.run_template()
    world.kubelet.deployment_ready(NS, "smol")
    (first,) = running_pods(world, 1)
    report(world, first, sql=(SQL["source"], "Ready"))
    wait_adapters(world, sql=("Ready", "1/1"))

    world.patch_spec({"replicas": 2})
    later = next(p for p in running_pods(world, 2) if p != first)
    # Not ready yet (its agent is loading the current set): it does not count.
    report(world, later, ready=False, sql=(SQL["source"], "Loading"))
    version = world.core.read_namespaced_config_map(agent_status_name("smol"), NS)
    world.processed(int(version.metadata.resource_version))
    assert adapters_status(world)["sql"]["pods"] == "1/1"
    report(world, later, sql=(SQL["source"], "Ready"))
    wait_adapters(world, sql=("Ready", "2/2"))

    # The pod goes away: its report goes with it, the count with the report.
    world.patch_spec({"replicas": 1})
    wait_for(lambda: len(world.kubelet.pods(NS, "Deployment", "smol")) == 1, what="scale-down")
    gone = set(world.core.read_namespaced_config_map(agent_status_name("smol"), NS).data or {})
    kept = {p["metadata"]["name"] for p in world.kubelet.pods(NS, "Deployment", "smol")}
    assert kept <= {first, later}
    wait_for(
        lambda: (
            set(world.core.read_namespaced_config_map(agent_status_name("smol"), NS).data or {})
            <= kept
        ),
        timeout=45,  # reports of vanished pods are removed after a grace period
        what=f"the gone pod's report removed (had {sorted(gone)})",
    )
    wait_adapters(world, sql=("Ready", "1/1"))


def test_adding_changing_and_removing_adapters_keeps_the_pods(world: World) -> None:
    world.create(lora(SQL, CHAT, LOCAL))
    world.run_template()
    world.kubelet.deployment_ready(NS, "smol")
    (pod,) = running_pods(world, 1)
    template = world.deployment()["spec"]["template"]

    def config_names() -> list[tuple[str, str]]:
        return [(a.name, a.source) for a in agent_config(world).lora.adapters]

    world.patch_spec(lora(SQL, CHAT, LOCAL, SUPPORT))
    wait_for(lambda: ("support", SUPPORT["source"]) in config_names(), what="the new set")
    newer = {**SQL, "source": "hf://org/sql-lora@v2"}
    world.patch_spec(lora(newer, CHAT, LOCAL, SUPPORT))
    wait_for(lambda: ("sql", newer["source"]) in config_names(), what="the new revision")
    states = {"sql": newer, "chat": CHAT, "local": LOCAL, "support": SUPPORT}
    report(world, pod, **{name: (a["source"], "Ready") for name, a in states.items()})
    wait_adapters(world, sql=("Ready", "1/1"), support=("Ready", "1/1"))
    world.patch_spec(lora(newer, LOCAL, SUPPORT))  # chat's claim stays: local is on it
    wait_for(lambda: [n for n, _ in config_names()] == ["sql", "local", "support"], what="removed")
    wait_for(lambda: world.events("AdapterRemoved"), what="the AdapterRemoved event")
    assert "chat" not in adapters_status(world)
    assert world.deployment()["spec"]["template"] == template  # no restart, all along
    assert [p["metadata"]["name"] for p in world.kubelet.pods(NS, "Deployment", "smol")] == [pod]


def test_switching_between_static_and_dynamic(world: World) -> None:
    world.create(lora(SQL, CHAT))
    world.run_template()
    world.kubelet.deployment_ready(NS, "smol")
    (pod,) = running_pods(world, 1)
    report(world, pod, sql=(SQL["source"], "Ready"), chat=(CHAT["source"], "Ready"))
    wait_adapters(world, sql=("Ready", "1/1"), chat=("Ready", "1/1"))

    def args() -> list[str]:
        containers = world.deployment()["spec"]["template"]["spec"]["containers"]
        return next(c for c in containers if c["name"] == "vllm")["args"]

    def guards() -> list[str]:
        return [
            cm["metadata"]["name"]
            for cm in world.children("configmaps")
            if cm["metadata"]["labels"].get(labels.COMPONENT) == "adapter-guard"
        ]

    assert "--middleware" in args() and "--lora-modules" not in args() and guards()

    world.patch_spec(lora(SQL, CHAT, mode="static"))
    wait_for(lambda: "--lora-modules" in args(), what="the static flags")
    init = world.deployment()["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["fetch-adapters"]
    wait_for(lambda: "adapters" not in (world.serve().get("status") or {}), what="no status")
    assert world.condition("AdaptersReady") == {}
    containers = world.deployment()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["vllm"]  # no smoke, no dynamic LoRA: no agent
    world.kubelet.deployment_ready(NS, "smol")
    wait_for(lambda: not guards(), what="the guard ConfigMap pruned")
    wait_for(
        lambda: (
            not [
                cm
                for cm in world.children("configmaps")
                if cm["metadata"]["labels"].get(labels.COMPONENT) == "agent"
            ]
        ),
        what="the agent's ConfigMaps pruned",
    )

    world.patch_spec(lora(SQL, CHAT, mode="dynamic"))
    wait_for(lambda: "--middleware" in args(), what="the dynamic flags")
    assert "initContainers" not in world.deployment()["spec"]["template"]["spec"]
    wait_for(guards, what="the guard ConfigMap")
    assert [a.name for a in wait_for(lambda: _lora_of(world), what="the agent config")] == [
        "sql",
        "chat",
    ]
    wait_adapters(world, sql=("Loading", "0/0"), chat=("Loading", "0/0"))  # new pods, no reports


def _lora_of(world: World):
    try:
        config = agent_config(world)
    except ApiException:  # not created yet
        return None
    return config.lora.adapters if config.lora is not None else None
