"""Time from a failing pod to the Deployment being back on the last good pod template.

The real operator (in a thread) against the test emulator with its Deployment, ReplicaSet and
pod controllers, the benchmark playing the kubelet and each pod's agent: a SmolServe with two
replicas serves a pod template that passed; then, ``--runs`` times, a spec change rolls a new
pod, whose agent reports a failed smoke battery. Measured: from the report's write (the merge
patch of ``<name>-agent-status`` answered) to the emulator storing the Deployment back on the
pod template that passed (a listener on the store, no polling). Also counted: the operator's
writes per rollback.

Target: under 2 s. The emulator is not a throughput bench (see docs/operator.md): the number
includes its own latency, so read it as an upper bound.

Usage: .venv/bin/python benchmarks/rollback_bench.py [--runs 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import kubernetes

from smolserve import labels
from smolserve.agent.report import (
    FAILED,
    PASSED,
    PodReport,
    SmokeReport,
    agent_status_name,
    format_time,
    report_patch,
)
from smolserve.operator.kube import USER_AGENT
from support import EmulatedCluster, load_crds
from support.factories import operator_config
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for
from support.world import MERGE, NS, World

TARGET_SECONDS = 2.0
HASH = labels.POD_TEMPLATE_HASH


def pod_hash(obj: dict[str, Any]) -> str | None:
    meta = (
        obj["spec"]["template"]["metadata"] if obj.get("kind") == "Deployment" else obj["metadata"]
    )
    return (meta.get("annotations") or {}).get(HASH)


def what(path: str) -> str:
    """``deployments``, ``smolserves/status``, ``configmaps`` … of an API path."""
    parts = path.split("/")
    at = parts.index("namespaces") + 2
    return "/".join([parts[at], *parts[at + 2 :]])


class Bench:
    def __init__(self, world: World) -> None:
        self.world = world
        self.back_at: float | None = None
        self.good: str | None = None
        self._lock = threading.Lock()

    def listen(self, group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
        """On the emulator's loop: the moment the Deployment is back on the good template."""
        if (group, plural) == ("apps", "deployments") and pod_hash(obj) == self.good:
            with self._lock:
                if self.back_at is None:
                    self.back_at = time.monotonic()

    def pods(self, template_hash: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.world.kubelet.pods(NS, "Deployment", "smol")
            if pod_hash(p) == template_hash and not p["metadata"].get("deletionTimestamp")
        ]

    def report(self, pod: dict[str, Any], state: str) -> None:
        now = format_time(datetime.datetime.now(tz=datetime.UTC))
        meta = pod["metadata"]
        report = PodReport(
            pod=meta["name"],
            uid=meta["uid"],
            pod_template_hash=pod_hash(pod),
            ready=state == PASSED,
            healthy_since=now,
            smoke=SmokeReport(state, check="no-think-answer", observed="content=None", at=now)
            if state == FAILED
            else SmokeReport(state, at=now),
            at=now,
        )
        self.world.core.patch_namespaced_config_map(
            agent_status_name("smol"), NS, report_patch(report), _content_type=MERGE
        )

    def pass_all(self, template_hash: str, replicas: int) -> None:
        def step() -> bool:
            deployment = self.world.deployment()
            status = deployment.get("status") or {}
            if status.get("availableReplicas") == replicas == status.get("updatedReplicas"):
                return status.get("replicas") == replicas
            for pod in self.pods(template_hash):
                phase = (pod.get("status") or {}).get("phase")
                conditions = (pod.get("status") or {}).get("conditions") or []
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
                if phase == "Running" and not ready:
                    self.report(pod, PASSED)
                    self.world.kubelet.set_ready(NS, pod["metadata"]["name"])
            return False

        wait_for(step, timeout=60, what="the first rollout")

    def one_rollback(self, run: int) -> tuple[float, tuple[str, ...]]:
        """Roll a new pod template, fail its first pod; (seconds to back, operator writes)."""
        self.world.patch_spec({"engine": {"env": [{"name": "BENCH_RUN", "value": str(run)}]}})
        new = wait_for(
            lambda: (h := pod_hash(self.world.deployment())) != self.good and h,
            what="the new pod template",
        )

        def running() -> dict[str, Any] | None:
            pods = [p for p in self.pods(new) if (p.get("status") or {}).get("phase") == "Running"]
            return pods[0] if pods else None

        pod = wait_for(running, what="the new pod running")
        self.world.kubelet.set_ready(NS, pod["metadata"]["name"], container="vllm")
        reconciler = self.world.operator.reconciler
        assert reconciler is not None
        wait_for(reconciler.idle, what="the operator idle")
        start_log = self.world.log_length()
        with self._lock:
            self.back_at = None
        began = time.monotonic()
        self.report(pod, FAILED)
        wait_for(lambda: self.back_at is not None, timeout=30, what="the rollback")
        seconds = self.back_at - began
        wait_for(lambda: not self.pods(new), timeout=30, what="the failed pod gone")
        wait_for(reconciler.idle, what="the operator idle")
        writes = [
            w for w in self.world.writes(start_log) if w[2].startswith(USER_AGENT) and w[0] != "GET"
        ]
        return seconds, tuple(sorted(f"{method} {what(path)}" for method, path, _ in writes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollback-bench-") as tmp:
        root = Path(tmp)
        from smolserve.testkit import build_tokenizer

        models = root / "models"
        build_tokenizer(models / "SmolLM3-3B")
        with EmulatedCluster(root / "kubeconfig") as cluster:
            os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
            api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
            for crd in load_crds():
                kubernetes.client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
            kubelet = Kubelet(cluster, {"/models": models}, root)
            operator = OperatorThread(operator_config()).start()
            try:
                world = World(cluster, api, kubelet, operator)
                bench = Bench(world)
                cluster.call(lambda emulator: emulator.listeners.append(bench.listen))
                world.create({"replicas": 2})
                world.run_template()
                bench.good = pod_hash(world.deployment())
                bench.pass_all(bench.good, 2)
                results = [bench.one_rollback(run) for run in range(args.runs)]
            finally:
                operator.stop()
    seconds = sorted(s for s, _ in results)
    numbers = {
        "runs": len(seconds),
        "median_s": round(statistics.median(seconds), 3),
        "p95_s": round(seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))], 3),
        "max_s": round(seconds[-1], 3),
        "operator_writes_per_rollback": sorted({w for _, w in results}, key=len)[-1],
        "target_s": TARGET_SECONDS,
    }
    print(
        f"failing pod → Deployment back on the good pod template, {numbers['runs']} runs: "
        f"median {numbers['median_s']} s, p95 {numbers['p95_s']} s, max {numbers['max_s']} s "
        f"(target < {TARGET_SECONDS:g} s); operator writes per rollback (the rollback, then "
        f"the status as the rollout settles): {numbers['operator_writes_per_rollback']}"
    )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
