"""Operator benchmark: API requests, CPU, memory and latency per SmolServe, and a kopf baseline.

Runs against the cluster in ``KUBECONFIG``, or, with ``--emulator`` (the default when
``KUBECONFIG`` is unset), against the test suite's Kubernetes API emulator started in its own
process. The operator always runs in its own process (``smolserve operator``), so the CPU time
and RSS measured are the operator's alone.

Phases:
1. ``job-path`` (M SmolServes): each SmolServe's template Job appears; the benchmark plays the
   Job (creates the template ConfigMap labelled with the Job's inputs hash) and times
   ConfigMap → Deployment, then counts the operator's requests from the ready template to the
   steady state, per SmolServe.
2. ``ours`` (N SmolServes whose template ConfigMaps already exist, i.e. kept templates): wall
   time until every Deployment exists and every status names its template, requests per
   SmolServe, operator CPU per SmolServe, RSS, then requests during a quiet window.
3. ``minimal``: the same N with ``benchmarks/minimal_operator.py`` (creates the same children,
   one status patch): the wall-time ratio ours / minimal.

Request counts need the emulator's request log; against a real cluster they are reported as
unavailable (use the API server's audit log). The emulator's own wall time is not the
operator's: compare wall times only between operators of the same run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from smolserve import labels  # noqa: E402
from smolserve.manifests import (  # noqa: E402
    OperatorConfig,
    build_template_configmap,
    template_inputs_hash,
)
from smolserve.operator.kube import USER_AGENT  # noqa: E402
from smolserve.spec import load_spec  # noqa: E402

JOB_IMAGE = "ghcr.io/smolserve/template-job:bench"
TEMPLATE_TEXT = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
MERGE = "application/merge-patch+json"
SERVE = {
    "apiVersion": labels.API_VERSION,
    "kind": labels.KIND,
    "metadata": {"name": ""},
    # No pods: on a real cluster the benchmark measures the operator, not GPU scheduling.
    "spec": {"model": {"pvc": {"claimName": "models", "path": "SmolLM3-3B"}}, "replicas": 0},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def emulator(workdir: Path) -> Iterator[str]:
    """The test suite's emulator in its own process; yields its URL."""
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.serve", "--kubeconfig", str(kubeconfig)],
        cwd=REPO / "tests",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("serving "):
            raise SystemExit(f"operator_bench: error: the emulator did not start: {line!r}")
        os.environ["KUBECONFIG"] = str(kubeconfig)
        yield line.split()[1].rstrip("/")
    finally:
        proc.terminate()
        proc.wait(10)


class Operator:
    """An operator process: started, probed for liveness, measured through /proc, stopped."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="operator-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*command, "--liveness-port", str(self.port)],
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    tail = self.log.read()[-2000:]
                    raise SystemExit(
                        f"operator_bench: error: operator did not start: {tail}"
                    ) from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self) -> tuple[float, float]:
        """(RSS, peak RSS) in MiB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Cluster:
    """The benchmark's own client (typed, official) plus the emulator's request log if any."""

    def __init__(self, emulator_url: str | None) -> None:
        client = kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"])
        client.user_agent = "smolserve-bench"
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.ext = kubernetes.client.ApiextensionsV1Api(client)
        self.emulator_url = emulator_url

    def requests(self) -> list[dict[str, Any]] | None:
        if self.emulator_url is None:
            return None
        with urllib.request.urlopen(f"{self.emulator_url}/_emulator/requests", timeout=60) as rsp:
            return json.loads(rsp.read())

    def ensure_crd(self) -> None:
        import yaml

        crd = yaml.safe_load((REPO / "crds" / "smolserve.yaml").read_text())
        try:
            self.ext.create_custom_resource_definition(crd)
            time.sleep(2)  # a real API server needs a moment to serve a new CRD
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise

    def ensure_namespace(self, name: str) -> None:
        try:
            self.core.create_namespace({"metadata": {"name": name}})
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise

    def serves(self, namespace: str) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(
            labels.GROUP, labels.VERSION, namespace, labels.PLURAL
        )["items"]

    def create_serve(self, namespace: str, name: str) -> dict[str, Any]:
        body = copy.deepcopy(SERVE)
        body["metadata"] = {"name": name, "namespace": namespace}
        return self.custom.create_namespaced_custom_object(
            labels.GROUP, labels.VERSION, namespace, labels.PLURAL, body
        )

    def cleanup(self, namespace: str) -> None:
        for serve in self.serves(namespace):
            self.custom.delete_namespaced_custom_object(
                labels.GROUP, labels.VERSION, namespace, labels.PLURAL, serve["metadata"]["name"]
            )
        self.core.delete_collection_namespaced_config_map(namespace, label_selector=labels.SERVE)


class Arrivals:
    """Watches a namespace's Deployments (or Jobs) and records when each name first appears."""

    def __init__(self, cluster: Cluster, namespace: str, kind: str) -> None:
        self.seen: dict[str, float] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        lister = {
            "Deployment": cluster.apps.list_namespaced_deployment,
            "Job": cluster.batch.list_namespaced_job,
        }[kind]
        self._thread = threading.Thread(target=self._watch, args=(lister, namespace), daemon=True)
        self._thread.start()

    def _watch(self, lister: Any, namespace: str) -> None:
        watch = kubernetes.watch.Watch()
        while not self._stop.is_set():
            for event in watch.stream(lister, namespace, timeout_seconds=5, deserialize=False):
                obj = event["object"] if isinstance(event, dict) else json.loads(event)["object"]
                name = obj["metadata"]["name"]
                self.seen.setdefault(name, time.monotonic())
                self.bodies.setdefault(name, obj)
                if self._stop.is_set():
                    break

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"operator_bench: error: only {len(self.seen)}/{count} appeared")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


def operator_requests(records: list[dict[str, Any]], ua_prefixes: tuple[str, ...]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for rec in records:
        if rec["user_agent"].startswith(ua_prefixes):
            parts = [p for p in rec["path"].split("/") if p]
            resource = (
                parts[-2]
                if rec["method"] in ("PATCH", "DELETE") or parts[-1] == "status"
                else parts[-1]
            )
            if parts[-1] == "status":
                resource = "status"
            counts[f"{rec['method']} {resource}"] += 1
    return counts


def settle(cluster: Cluster, op: Operator, ua: tuple[str, ...], quiet: float) -> None:
    """Wait until the operator has made no request for ``quiet`` seconds (or just wait)."""
    if cluster.emulator_url is None:
        time.sleep(quiet)
        return
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet:
        count = sum(operator_requests(cluster.requests() or [], ua).values())
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(0.25)


def wait_statuses(cluster: Cluster, namespace: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = [
            s for s in cluster.serves(namespace) if (s.get("status") or {}).get("templateConfigMap")
        ]
        if len(done) >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"operator_bench: error: only {len(done)}/{count} statuses written")
        time.sleep(0.25)


def template_configmap(
    serve: dict[str, Any], config: OperatorConfig, inputs: str | None = None
) -> dict[str, Any]:
    spec = load_spec(serve)
    return build_template_configmap(
        serve=spec.name,
        namespace=spec.namespace,
        owner_uid=spec.uid,
        text=TEMPLATE_TEXT,
        inputs_hash=inputs or template_inputs_hash(spec, config),
    )


OURS_UA = (USER_AGENT, "kopf/")


def job_path(cluster: Cluster, count: int, namespace: str, quiet: float) -> dict[str, Any]:
    """Ready template → Deployment, through the operator's own template Jobs."""
    cluster.ensure_namespace(namespace)
    op = Operator(ours_command(cluster, namespace), {"SMOLSERVE_TEMPLATE_JOB_IMAGE": JOB_IMAGE})
    jobs = Arrivals(cluster, namespace, "Job")
    deployments = Arrivals(cluster, namespace, "Deployment")
    try:
        serves = [cluster.create_serve(namespace, f"job-{i:03d}") for i in range(count)]
        jobs.wait(count, 120)
        settle(cluster, op, OURS_UA, quiet)
        start = len(cluster.requests() or [])
        cpu = op.cpu_seconds()
        published: dict[str, float] = {}
        for serve in serves:
            name = serve["metadata"]["name"]
            job = next(
                b for b in jobs.bodies.values() if b["metadata"]["labels"][labels.SERVE] == name
            )
            inputs = job["metadata"]["annotations"][labels.INPUTS_HASH]
            cluster.core.create_namespaced_config_map(
                namespace, template_configmap(serve, OperatorConfig(job_image=JOB_IMAGE), inputs)
            )
            published[name] = time.monotonic()
        deployments.wait(count, 120)
        wait_statuses(cluster, namespace, count, 120)
        settle(cluster, op, OURS_UA, quiet)
        cpu = op.cpu_seconds() - cpu
        records = cluster.requests()
        latencies = [deployments.seen[name] - t for name, t in published.items()]
        result: dict[str, Any] = {
            "smolserves": count,
            "ready_template_to_deployment_median_s": round(statistics.median(latencies), 3),
            "ready_template_to_deployment_max_s": round(max(latencies), 3),
            "operator_cpu_ms_per_smolserve_ready_to_steady": round(1000 * cpu / count, 1),
        }
        if records is not None:
            counts = operator_requests(records[start:], OURS_UA)
            result["requests_per_smolserve_ready_to_steady"] = {
                k: round(v / count, 2) for k, v in sorted(counts.items())
            }
        return result
    finally:
        jobs.stop()
        deployments.stop()
        op.stop()
        cluster.cleanup(namespace)


def ours_command(cluster: Cluster, namespace: str) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "smolserve.cli",
        "operator",
        "--namespace",
        namespace,
        "--standalone",
    ]
    return command + (["--no-scanning"] if cluster.emulator_url else [])


def minimal_command(cluster: Cluster, namespace: str) -> list[str]:
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "minimal_operator.py"),
        "--namespace",
        namespace,
    ]
    return command + (["--no-scanning"] if cluster.emulator_url else [])


def bulk(
    cluster: Cluster, count: int, namespace: str, minimal: bool, quiet: float
) -> dict[str, Any]:
    """N SmolServes whose templates are ready (kept ConfigMaps): wall time, requests, CPU, RSS."""
    cluster.ensure_namespace(namespace)
    config = OperatorConfig(job_image=JOB_IMAGE)
    names = [f"smol-{i:03d}" for i in range(count)]
    for name in names:
        serve = {**SERVE, "metadata": {"name": name, "namespace": namespace}}
        cluster.core.create_namespaced_config_map(namespace, template_configmap(serve, config))
    command = minimal_command(cluster, namespace) if minimal else ours_command(cluster, namespace)
    env = {"SMOLSERVE_TEMPLATE_JOB_IMAGE": JOB_IMAGE, "BENCH_TEMPLATE_TEXT": TEMPLATE_TEXT}
    op = Operator(command, env)
    ua = ("kopf/", USER_AGENT)
    deployments = Arrivals(cluster, namespace, "Deployment")
    try:
        settle(
            cluster, op, ua, 1.0
        )  # the operator's start-up lists and watches are not per SmolServe
        start = len(cluster.requests() or [])
        idle_rss, _ = op.memory_mib()
        cpu, began = op.cpu_seconds(), time.monotonic()
        for name in names:
            cluster.create_serve(namespace, name)
        deployments.wait(count, 600)
        wait_statuses(cluster, namespace, count, 600)
        wall = time.monotonic() - began
        settle(cluster, op, ua, quiet)
        cpu = op.cpu_seconds() - cpu
        rss, peak = op.memory_mib()
        records = cluster.requests()
        result: dict[str, Any] = {
            "smolserves": count,
            "wall_s": round(wall, 2),
            "operator_cpu_ms_per_smolserve": round(1000 * cpu / count, 1),
            "rss_mib_idle_before": round(idle_rss, 1),
            "rss_mib": round(rss, 1),
            "rss_mib_peak": round(peak, 1),
        }
        if records is not None:
            counts = operator_requests(records[start:], ua)
            result["requests_per_smolserve"] = {
                k: round(v / count, 2) for k, v in sorted(counts.items())
            }
            mark = len(records)
            time.sleep(quiet * 2)
            result[f"requests_in_{quiet * 2:.0f}s_at_steady_state"] = sum(
                operator_requests((cluster.requests() or [])[mark:], ua).values()
            )
        return result
    finally:
        deployments.stop()
        op.stop()
        cluster.cleanup(namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="SmolServes in the bulk phases")
    parser.add_argument(
        "--job-path-count", type=int, default=20, help="SmolServes in the Job phase"
    )
    parser.add_argument(
        "--quiet", type=float, default=3.0, help="seconds without requests = steady"
    )
    parser.add_argument(
        "--emulator",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run against the test emulator (default: when KUBECONFIG is unset)",
    )
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    use_emulator = args.emulator if args.emulator is not None else not os.environ.get("KUBECONFIG")
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator(Path(tmp)) if use_emulator else _no_emulator() as url,
    ):
        cluster = Cluster(url)
        cluster.ensure_crd()
        results: dict[str, Any] = {"api": "emulator" if url else "KUBECONFIG cluster"}
        results["job_path"] = job_path(cluster, args.job_path_count, "smolbench-jobs", args.quiet)
        print(json.dumps(results["job_path"]), flush=True)
        results["ours"] = bulk(cluster, args.count, "smolbench-ours", False, args.quiet)
        print(json.dumps(results["ours"]), flush=True)
        results["minimal"] = bulk(cluster, args.count, "smolbench-minimal", True, args.quiet)
        print(json.dumps(results["minimal"]), flush=True)
        results["wall_ratio_ours_to_minimal"] = round(
            results["ours"]["wall_s"] / results["minimal"]["wall_s"], 2
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


@contextmanager
def _no_emulator() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
