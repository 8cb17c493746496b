"""The live smoke battery (smolserve.agent.smoke) on real CPU vLLM servers started with the
operator's own args and nothing that changes what users get (no `enable_in_reasoning`):
it passes for the default stack and fails, naming the right checks, for broken ones. Then the
real agent process (`smolserve agent run`) against the emulator and such a server: it gates
its `/ready` on the battery and reports through exactly what its Role allows.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from vpool import ADAPTER_NAME, ServerKey, ServerPool, serve_object
from vstack import free_port

from smolserve.agent.report import FAILED, PASSED, agent_status_name, read_reports
from smolserve.agent.smoke import FORCED, run_battery
from smolserve.agent.vllm import VllmClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `support` package
from support import EmulatedCluster
from support.rbac import allows, request_attributes
from support.running import wait_for

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ServerKey("fixed", "smollm3", tags_special=True, lora=True, production=True)
DEEPSEEK = ServerKey("fixed", "deepseek_r1", production=True)
EVERY_CHECK = {
    "server",
    "history-tool-calls",
    "history-tool-results",
    "prompt-mode",
    *(f.check for f in FORCED),
    "adapters",
}
# Each broken stack, and exactly the checks it must fail (the first one first).
BROKEN = [
    pytest.param(
        ServerKey("stock", "smollm3", production=True),
        ["history-tool-calls", "history-tool-results"],
        id="stock-template",
    ),
    pytest.param(DEEPSEEK, ["no-think-tool-call", "no-think-answer"], id="deepseek_r1-parser"),
    pytest.param(
        ServerKey("fixed", "smollm3", production=True, broken="drop-tool-calls"),
        ["history-tool-calls"],
        id="template-drops-tool-calls",
    ),
]


def test_the_default_stack_passes_every_check(servers: ServerPool) -> None:
    server = servers.get(DEFAULT)
    assert not any("enable_in_reasoning" in arg for arg in server.command)
    result = run_battery(VllmClient(server.base_url), adapters=[ADAPTER_NAME])
    assert result.failures == (), result.summary()
    assert set(result.checks) == EVERY_CHECK


def test_a_missing_adapter_fails_the_adapters_check(servers: ServerPool) -> None:
    result = run_battery(VllmClient(servers.get(DEFAULT).base_url), adapters=["absent"])
    assert [f.check for f in result.failures] == ["adapters"]
    assert "'absent' is not in /v1/models" in result.failures[0].observed


@pytest.mark.parametrize(("key", "failing"), BROKEN)
def test_a_broken_stack_fails_the_right_checks(
    servers: ServerPool, key: ServerKey, failing: list[str]
) -> None:
    result = run_battery(VllmClient(servers.get(key).base_url))
    assert [f.check for f in result.failures] == failing, result.summary()
    assert result.failures[0].observed


# --- the real agent process ----------------------------------------------------------------------


def _ready(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, "not listening"


class AgentRun:
    """The emulator holding the agent's ConfigMaps for the SmolServe a server stands for, and
    `smolserve agent run` against both, as the Deployment's sidecar runs it."""

    POD = "smol-5d9f-abcde"

    def __init__(
        self, cluster: EmulatedCluster, pool: ServerPool, key: ServerKey, tmp_path: Path
    ) -> None:
        from smolserve.manifests.agent import build_agent_configmaps, build_agent_rbac
        from smolserve.spec import load_spec

        self.cluster = cluster
        server = pool.get(key)
        spec = load_spec(
            {**serve_object(key), "metadata": {"name": "smol", "namespace": "default"}}
        )
        self.core = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        )
        for configmap in build_agent_configmaps(spec):
            self.core.create_namespaced_config_map("default", configmap)
        self.rules = build_agent_rbac(spec)[1]["rules"]
        self.port = free_port()
        self.log = tmp_path / "agent.log"
        self.command = [
            sys.executable, "-m", "smolserve.cli", "agent", "run", "--serve", "smol",
            "--pod", self.POD, "--vllm-url", server.base_url, "--port", str(self.port),
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "operator"),
            "KUBECONFIG": str(cluster.kubeconfig),
            "SMOLSERVE_NAMESPACE": "default",
            "SMOLSERVE_POD_UID": "uid-1",
            "SMOLSERVE_POD_TEMPLATE_HASH": "0123456789",
        }

    def report(self) -> Any:
        data = self.core.read_namespaced_config_map(agent_status_name("smol"), "default").data
        return read_reports(data)[0].get(self.POD)

    def requests(self) -> list[Any]:
        log = self.cluster.call(lambda emulator: list(emulator.log))
        return [r for r in log if r.user_agent.startswith("smolserve-agent")]

    def refused(self) -> list[tuple[str, str, str]]:
        """The agent's requests its Role would not allow."""
        return [
            (r.method, r.path, r.query)
            for r in self.requests()
            if not allows(self.rules, request_attributes(r.method, r.path, r.query))
        ]

    @contextlib.contextmanager
    def running(self) -> Iterator[subprocess.Popen[bytes]]:
        with self.log.open("wb") as out:
            process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
        try:
            yield process
        finally:
            process.terminate()
            process.wait(30)

    def wait_verdict(self, process: subprocess.Popen[bytes], state: str) -> Any:
        def verdict() -> Any:
            assert process.poll() is None, self.log.read_text()[-3000:]
            report = self.report()
            return report if report is not None and report.smoke.state == state else None

        return wait_for(verdict, timeout=120, what=f"the agent's report {state}")


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path / "kubeconfig", controllers=False) as cluster:
        yield cluster


def test_the_agent_gates_its_pod_and_reports_within_its_role(
    servers: ServerPool, emulator: EmulatedCluster, tmp_path: Path
) -> None:
    agent = AgentRun(emulator, servers, DEFAULT, tmp_path)
    with agent.running() as process:
        first = wait_for(lambda: _ready(agent.port)[0], what="/ready to answer")
        report = agent.wait_verdict(process, PASSED)
        assert report.ready and report.uid == "uid-1" and report.healthy_since
        assert report.pod_template_hash == "0123456789"
        assert wait_for(lambda: _ready(agent.port)[0] == 200, what="/ready 200")
        # A steady pod writes nothing more.
        patches = [r for r in agent.requests() if r.method == "PATCH"]
        time.sleep(3)
        assert [r for r in agent.requests() if r.method == "PATCH"] == patches
    assert first == 503  # before its battery passed, the pod was not ready
    assert {r.method for r in agent.requests()} == {"GET", "PATCH"}  # read, watch, report
    assert agent.refused() == []


def test_the_agent_keeps_a_failing_pod_unready_and_names_the_check(
    servers: ServerPool, emulator: EmulatedCluster, tmp_path: Path
) -> None:
    agent = AgentRun(emulator, servers, DEEPSEEK, tmp_path)
    with agent.running() as process:
        report = agent.wait_verdict(process, FAILED)
        assert report.smoke.check == "no-think-tool-call" and not report.ready
        assert report.smoke.failed == ("no-think-tool-call", "no-think-answer")
        status, why = _ready(agent.port)
        assert status == 503 and "no-think-tool-call" in why
    assert agent.refused() == []
