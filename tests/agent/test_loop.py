"""The agent's loop against the emulator's API: config read and watched, the battery run each
time vLLM becomes healthy, ``/ready`` following it, and reports written on changes only.

vLLM's side is a stand-in for ``/health`` and the battery a recorded function here: the real
battery against a real vLLM, and the real agent process, run in the vLLM tier
(tests/vllm/test_smoke.py)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from smolserve.agent.kube import AgentKube
from smolserve.agent.loop import Agent, PodIdentity, SmokeGate
from smolserve.agent.report import (
    FAILED,
    PASSED,
    PENDING,
    agent_config_name,
    agent_status_name,
    read_reports,
)
from smolserve.agent.server import ReadinessServer
from smolserve.agent.smoke import BatteryResult, CheckFailure
from smolserve.agent.vllm import VllmClient
from smolserve.manifests.agent import build_agent_configmaps
from smolserve.spec import load_spec
from support import EmulatedCluster
from support.running import wait_for

NS = "default"
POD = "smol-abc-1"


class Battery:
    """Records each call; fails while ``failing`` names a check."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failing: str | None = None

    def __call__(self, vllm: VllmClient, *, adapters: Any, timeout: float) -> BatteryResult:
        self.calls.append({"adapters": tuple(adapters), "timeout": timeout})
        if self.failing:
            return BatteryResult((self.failing,), (CheckFailure(self.failing, "got nothing"),), 0.1)
        return BatteryResult(("server",), (), 0.1)


class Running:
    def __init__(self, cluster: EmulatedCluster, health: Any, battery: Battery) -> None:
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.cluster = cluster
        spec = load_spec(
            {
                "metadata": {"name": "smol", "namespace": NS},
                # Static mode: the adapters are the pod template's, so the battery checks them
                # (dynamic ones are each checked by the agent's loading: docs/lora.md).
                "spec": {
                    "lora": {
                        "adapters": [{"name": "sql", "source": "pvc://a/sql"}],
                        "mode": "static",
                    }
                },
            }
        )
        for cm in build_agent_configmaps(spec):
            self.core.create_namespaced_config_map(NS, cm)
        identity = PodIdentity("smol", NS, POD, uid="u1", pod_template_hash="0123456789")
        self.agent = Agent(
            identity,
            VllmClient(health.url),
            AgentKube(NS),
            [SmokeGate(battery=battery)],
            poll_seconds=0.05,
        )
        self.server = ReadinessServer(self.agent.verdict, self.agent.alive, port=0).start()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)

    def report(self) -> Any:
        data = self.core.read_namespaced_config_map(agent_status_name("smol"), NS).data
        return read_reports(data)[0].get(POD)

    def patches(self) -> int:
        log = self.cluster.call(lambda emulator: list(emulator.log))
        return sum(
            1 for r in log if r.method == "PATCH" and r.user_agent.startswith("smolserve-agent")
        )

    def ready(self) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.server.port}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode().strip()


@pytest.fixture()
def battery() -> Battery:
    return Battery()


@pytest.fixture()
def running(cluster: EmulatedCluster, health: Any, battery: Battery) -> Iterator[Running]:
    run = Running(cluster, health, battery)
    run.thread.start()
    yield run
    run.stop.set()
    run.thread.join(10)
    run.server.stop()


def state(run: Running, wanted: str) -> Any:
    return wait_for(
        lambda: (
            (r := run.report()) is not None
            and r.smoke is not None
            and r.smoke.state == wanted
            and r
        ),
        what=f"the report {wanted}",
    )


def test_not_ready_until_vllm_is_healthy_and_the_battery_passed(
    running: Running, health: Any, battery: Battery
) -> None:
    first = state(running, PENDING)
    assert not first.ready and first.healthy_since is None
    assert (first.uid, first.pod_template_hash) == ("u1", "0123456789")
    assert running.ready() == (503, "vLLM is not healthy yet")
    health.healthy = True
    passed = state(running, PASSED)
    assert passed.ready and passed.healthy_since
    assert battery.calls == [{"adapters": ("sql",), "timeout": 180}]  # from the config
    assert running.ready()[0] == 200
    # Steady: the loop keeps polling, the report is not written again.
    writes = running.patches()
    polls = len(battery.calls)
    threading.Event().wait(0.5)
    assert running.patches() == writes and len(battery.calls) == polls


def test_a_failure_keeps_the_pod_unready_and_a_vllm_restart_runs_it_again(
    running: Running, health: Any, battery: Battery
) -> None:
    battery.failing = "no-think-answer"
    health.healthy = True
    failed = state(running, FAILED)
    assert (failed.smoke.check, failed.smoke.observed) == ("no-think-answer", "got nothing")
    assert failed.smoke.failed == ("no-think-answer",) and not failed.ready
    code, why = running.ready()
    assert code == 503 and "no-think-answer" in why
    assert len(battery.calls) == 1  # no retry loop while vLLM stays up
    health.healthy = False
    state(running, PENDING)
    battery.failing = None
    health.healthy = True  # the server came back (a new process): a new battery
    state(running, PASSED)
    assert len(battery.calls) == 2


def test_a_config_change_reaches_the_gate(running: Running, health: Any, battery: Battery) -> None:
    state(running, PENDING)
    wait_for(lambda: running.agent.configured.is_set(), what="the config read")
    config = '{"adapters": [], "smoke": {"timeoutSeconds": 42}}'
    running.core.patch_namespaced_config_map(
        agent_config_name("smol"),
        NS,
        {"data": {"agent.json": config}},
        _content_type="application/merge-patch+json",
    )
    gate = running.agent.gates[0]
    wait_for(lambda: gate._timeout == 42, what="the new timeout")
    health.healthy = True
    state(running, PASSED)
    assert battery.calls[-1] == {"adapters": (), "timeout": 42}


def test_a_report_that_cannot_be_written_is_retried(
    cluster: EmulatedCluster, health: Any, battery: Battery
) -> None:
    run = Running(cluster, health, battery)
    run.core.delete_namespaced_config_map(agent_status_name("smol"), NS)
    run.thread.start()
    try:
        health.healthy = True
        wait_for(lambda: run.ready()[0] == 200, what="ready (readiness does not need the API)")
        assert run.patches() >= 1  # tried, refused with 404
        run.core.create_namespaced_config_map(NS, {"metadata": {"name": agent_status_name("smol")}})
        assert state(run, PASSED).ready
    finally:
        run.stop.set()
        run.thread.join(10)
        run.server.stop()
