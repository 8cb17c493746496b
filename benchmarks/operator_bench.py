"""Operator benchmark: API requests, CPU, memory and latency per SmolServe, and a kopf baseline.

Runs against the cluster in ``KUBECONFIG``, or, with ``--emulator`` (the default when
``KUBECONFIG`` is unset), against the test suite's Kubernetes API emulator started in its own
process, with its controllers (Deployments, ReplicaSets and Jobs get status as on a cluster,
pods become ready by themselves) and watches refused without a resourceVersion, as some API
servers do. The operator always runs in its own process (``smolserve operator``), so the CPU
time and RSS measured are the operator's alone.

Against a real cluster: an existing SmolServe CRD is used as it is (never re-created); the
benchmark's own watches list first and watch from the list's resourceVersion, and survive
ERROR events by listing again; each phase ends only when its SmolServes' children (Services,
Deployments, ReplicaSets, pods, Jobs, ...) are gone, so a small service CIDR is never full.

Phases:
1. ``job-path`` (M SmolServes): each SmolServe's template Job appears; the benchmark plays the
   Job (creates the template ConfigMap labelled with the Job's inputs hash) and times
   ConfigMap → Deployment, then counts the operator's requests from the ready template to the
   steady state, per SmolServe.
2. ``ours`` (N SmolServes whose template ConfigMaps already exist, i.e. kept templates, all
   there before the operator starts, which then handles each for the first time): wall time
   from the operator's start until every Deployment exists and every status names its
   template, then requests (and writes) per SmolServe and operator CPU per SmolServe (from its
   start) until the Deployment controller has reported on every Deployment and the operator is
   quiet, RSS, then requests during a quiet window.
3. ``minimal``: the same N with ``benchmarks/minimal_operator.py`` (creates the same children,
   one status patch): the wall-time and CPU ratios ours / minimal. With ``--repeat K`` phases 2
   and 3 run K times, interleaved, and the results are the medians, with each run's CPU.

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
from kubernetes.watch.watch import iter_resp_lines

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
# What a phase leaves behind until the garbage collector has removed it: (API, kind).
CHILDREN = (
    ("core", "service"),
    ("apps", "deployment"),
    ("apps", "replica_set"),
    ("core", "pod"),
    ("batch", "job"),
    ("core", "config_map"),
    ("core", "service_account"),
    ("rbac", "role"),
    ("rbac", "role_binding"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def emulator(workdir: Path) -> Iterator[str]:
    """The test suite's emulator in its own process; yields its URL."""
    kubeconfig = workdir / "kubeconfig"
    command = [sys.executable, "-m", "support.serve", "--kubeconfig", str(kubeconfig)]
    proc = subprocess.Popen(
        [*command, "--readiness", "auto", "--refuse-unversioned-watches"],
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
        try:  # with a million stored events behind it, it can take a while
            rest = proc.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[0]
        if rest.strip():  # the controllers' unexpected errors: the numbers are suspect
            print(f"operator_bench: the emulator said:\n{rest}", file=sys.stderr)


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

    def __init__(self, emulator_url: str | None, *, smoke: bool = True) -> None:
        self.smoke = smoke  # rollout.smoke of the SmolServes it creates
        client = kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"])
        client.user_agent = "smolserve-bench"
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.ext = kubernetes.client.ApiextensionsV1Api(client)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        self.emulator_url = emulator_url

    def requests(self, since: int = 0) -> list[dict[str, Any]] | None:
        """The emulator's request log from its ``since``-th record on (None: no emulator)."""
        if self.emulator_url is None:
            return None
        url = f"{self.emulator_url}/_emulator/requests?since={since}"
        with urllib.request.urlopen(url, timeout=60) as rsp:
            return json.loads(rsp.read())

    def ensure_crd(
        self, path: Path = REPO / "crds" / "smolserve.yaml", timeout: float = 60
    ) -> None:
        """Create the CRD unless it exists (an existing one is used as it is: a server may
        refuse a create, 422, before it would say 409), then wait until it is established."""
        import yaml

        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            self.ext.read_custom_resource_definition(name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self.ext.create_custom_resource_definition(crd)
            except kubernetes.client.ApiException as refused:
                if refused.status != 409:
                    raise SystemExit(
                        f"operator_bench: error: the API server refused {path.name}: "
                        f"HTTP {refused.status}: {refused.body or refused.reason}"
                    ) from refused
        deadline = time.monotonic() + timeout
        while True:
            conditions = self.ext.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"operator_bench: error: CRD {name} not established")
            time.sleep(0.5)

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
        body["spec"]["rollout"] = {"smoke": self.smoke}
        return self.custom.create_namespaced_custom_object(
            labels.GROUP, labels.VERSION, namespace, labels.PLURAL, body
        )

    def _children(self, namespace: str) -> dict[str, int]:
        """How many objects labelled with a SmolServe are left in the namespace, by kind."""
        apis = {"core": self.core, "apps": self.apps, "batch": self.batch, "rbac": self.rbac}
        left = {}
        for api, kind in CHILDREN:
            lister = getattr(apis[api], f"list_namespaced_{kind}")
            listing = lister(namespace, label_selector=labels.SERVE, _preload_content=False)
            items = json.loads(listing.data)["items"]
            if items:
                left[kind] = len(items)
        return left

    def cleanup(self, namespace: str, timeout: float = 600) -> None:
        """Delete the phase's SmolServes and template ConfigMaps, then wait until the garbage
        collector has removed every child (Services hold cluster IPs: the next phase needs
        them back)."""
        for serve in self.serves(namespace):
            self.custom.delete_namespaced_custom_object(
                labels.GROUP, labels.VERSION, namespace, labels.PLURAL, serve["metadata"]["name"]
            )
        self.core.delete_collection_namespaced_config_map(namespace, label_selector=labels.SERVE)
        deadline = time.monotonic() + timeout
        while left := self._children(namespace):
            if time.monotonic() > deadline:
                raise SystemExit(f"operator_bench: error: children left in {namespace}: {left}")
            time.sleep(0.5)


class Arrivals:
    """Watches a namespace's Deployments (or Jobs) and records when each name first appears.

    Lists first, then watches from the list's resourceVersion (a watch without one is refused
    by some API servers); an ERROR event (410 Expired, or any other) or a broken stream means
    list again. Raw JSON throughout: the client's ``Watch`` fails on ERROR events when it does
    not deserialize.
    """

    def __init__(self, cluster: Cluster, namespace: str, kind: str, watch_seconds: int = 5) -> None:
        self.watch_seconds = watch_seconds
        self.seen: dict[str, float] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []  # ERROR events and broken streams, survived
        self._stop = threading.Event()
        lister = {
            "Deployment": cluster.apps.list_namespaced_deployment,
            "Job": cluster.batch.list_namespaced_job,
        }[kind]
        self._thread = threading.Thread(target=self._watch, args=(lister, namespace), daemon=True)
        self._thread.start()

    def _saw(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.seen.setdefault(name, time.monotonic())
        self.bodies.setdefault(name, obj)

    def _watch(self, lister: Any, namespace: str) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing = json.loads(lister(namespace, _preload_content=False).data)
                    for obj in listing["items"]:
                        self._saw(obj)
                    version = listing["metadata"]["resourceVersion"]
                version = self._follow(lister, namespace, version)
            except (kubernetes.client.ApiException, OSError, ValueError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                version = None
                time.sleep(0.5)

    def _follow(self, lister: Any, namespace: str, version: str) -> str | None:
        """One watch from ``version``; returns where to go on from (None: list again)."""
        response = lister(
            namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _preload_content=False,
        )
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event.get("object") or {}
                    self.errors.append(f"ERROR {status.get('code')}: {status.get('message')}")
                    return None
                obj = event["object"]
                version = obj["metadata"].get("resourceVersion") or version
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._saw(obj)
                if self._stop.is_set():
                    break
        finally:
            response.close()
            response.release_conn()
        return version

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"operator_bench: error: only {len(self.seen)}/{count} appeared")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


def per_smolserve(counts: Counter[str], count: int) -> dict[str, Any]:
    """Requests per SmolServe by method and resource, and all writes (non-GET) together."""
    writes = sum(v for k, v in counts.items() if not k.startswith("GET "))
    return {
        "requests_per_smolserve": {k: round(v / count, 2) for k, v in sorted(counts.items())},
        "writes_per_smolserve": round(writes / count, 2),
    }


def operator_requests(records: list[dict[str, Any]], ua_prefixes: tuple[str, ...]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for rec in records:
        if rec["user_agent"].startswith(ua_prefixes):
            parts = [p for p in rec["path"].split("/") if p]
            if parts[-1] == "status":
                resource = "status"
            elif "namespaces" in parts[:-2]:  # …/namespaces/NS/PLURAL[/NAME]
                resource = parts[parts.index("namespaces") + 2]
            else:
                resource = parts[-2] if rec["method"] in ("PATCH", "DELETE") else parts[-1]
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


def wait_statuses(
    cluster: Cluster, namespace: str, count: int, timeout: float, poll: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = [
            s for s in cluster.serves(namespace) if (s.get("status") or {}).get("templateConfigMap")
        ]
        if len(done) >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"operator_bench: error: only {len(done)}/{count} statuses written")
        time.sleep(poll)


def wait_rollouts(
    cluster: Cluster, namespace: str, count: int, timeout: float, poll: float = 0.25
) -> None:
    """Wait until the Deployment controller has reported on every Deployment (observed its
    generation, said whether it is Available): the operator's answers to those status changes
    belong to the per-SmolServe counts. On a real cluster the controller-manager, rate-limited,
    can lag the operator by many seconds."""
    deadline = time.monotonic() + timeout
    while True:
        listing = cluster.apps.list_namespaced_deployment(namespace, _preload_content=False)
        reported = 0
        for deployment in json.loads(listing.data)["items"]:
            status = deployment.get("status") or {}
            observed = status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            available = any(c["type"] == "Available" for c in status.get("conditions") or [])
            reported += observed and available
        if reported >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"operator_bench: error: only {reported}/{count} rollouts reported")
        time.sleep(poll)


def phases(cluster: Cluster, namespace: str) -> dict[str, int]:
    """SmolServes by ``status.phase`` at steady state: with no pods to wait for, every one of
    ours must say Ready (one that does not missed a status change of its Deployment)."""
    counts = Counter(str((s.get("status") or {}).get("phase")) for s in cluster.serves(namespace))
    return dict(sorted(counts.items()))


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
        wait_rollouts(cluster, namespace, count, 600)
        settle(cluster, op, OURS_UA, quiet)
        cpu = op.cpu_seconds() - cpu
        records = cluster.requests()
        latencies = [deployments.seen[name] - t for name, t in published.items()]
        result: dict[str, Any] = {
            "smolserves": count,
            "ready_template_to_deployment_median_s": round(statistics.median(latencies), 3),
            "ready_template_to_deployment_max_s": round(max(latencies), 3),
            "operator_cpu_ms_per_smolserve_ready_to_steady": round(1000 * cpu / count, 1),
            "phases_at_steady_state": phases(cluster, namespace),
        }
        if records is not None:
            counts = per_smolserve(operator_requests(records[start:], OURS_UA), count)
            result["requests_per_smolserve_ready_to_steady"] = counts["requests_per_smolserve"]
            result["writes_per_smolserve_ready_to_steady"] = counts["writes_per_smolserve"]
        return result
    finally:
        jobs.stop()
        deployments.stop()
        try:
            cluster.cleanup(namespace)
        finally:
            op.stop()


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
    """N SmolServes whose templates are ready (kept ConfigMaps): wall time, requests, CPU, RSS.

    The SmolServes and their template ConfigMaps (owned by them, as the template Job makes
    them: the operator takes only its own children) exist before the operator starts; it
    then handles each one for the first time, exactly as it handles a SmolServe created with
    a template already there. Everything is counted from the operator's start; its start-up
    lists are the same for both operators; CPU counts from its liveness probe's first answer.
    """
    cluster.ensure_namespace(namespace)
    config = OperatorConfig(job_image=JOB_IMAGE)
    for i in range(count):
        serve = cluster.create_serve(namespace, f"smol-{i:03d}")
        cluster.core.create_namespaced_config_map(namespace, template_configmap(serve, config))
    command = minimal_command(cluster, namespace) if minimal else ours_command(cluster, namespace)
    env = {"SMOLSERVE_TEMPLATE_JOB_IMAGE": JOB_IMAGE, "BENCH_TEMPLATE_TEXT": TEMPLATE_TEXT}
    ua = ("kopf/", USER_AGENT)
    deployments = Arrivals(cluster, namespace, "Deployment")
    start = len(cluster.requests() or [])
    began = time.monotonic()
    op = Operator(command, env)
    started = op.cpu_seconds()  # its start-up until the liveness probe answers: not per SmolServe
    try:
        deployments.wait(count, 600)
        wait_statuses(cluster, namespace, count, 600)
        wall = time.monotonic() - began
        wait_rollouts(cluster, namespace, count, 600)
        settle(cluster, op, ua, quiet)
        cpu = op.cpu_seconds() - started
        rss, peak = op.memory_mib()
        records = cluster.requests()
        result: dict[str, Any] = {
            "smolserves": count,
            "wall_s": round(wall, 2),
            "operator_cpu_ms_per_smolserve": round(1000 * cpu / count, 1),
            "rss_mib": round(rss, 1),
            "rss_mib_peak": round(peak, 1),
        }
        if not minimal:  # the baseline writes no phase
            result["phases_at_steady_state"] = phases(cluster, namespace)
        if records is not None:
            result.update(per_smolserve(operator_requests(records[start:], ua), count))
            mark = len(records)
            time.sleep(quiet * 2)
            result[f"requests_in_{quiet * 2:.0f}s_at_steady_state"] = sum(
                operator_requests((cluster.requests() or [])[mark:], ua).values()
            )
        return result
    finally:
        deployments.stop()
        try:
            cluster.cleanup(namespace)
        finally:
            op.stop()


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's result, or several runs' as one: the median of each number (nested ones too),
    everything else as the first run had it."""
    first = runs[0]
    merged: dict[str, Any] = {}
    for key, value in first.items():
        values = [run.get(key) for run in runs]
        if isinstance(value, bool) or not all(isinstance(v, (int, float, dict)) for v in values):
            merged[key] = value
        elif isinstance(value, dict):
            merged[key] = medians([v for v in values if isinstance(v, dict)])
        else:
            merged[key] = round(statistics.median(values), 3)
    return merged


def compare(ours: list[dict[str, Any]], minimal: list[dict[str, Any]]) -> dict[str, Any]:
    """Both operators' results (medians over the runs), the ratios ours / minimal, and, with
    several runs, each run's CPU per SmolServe: it varies between runs of the same code by more
    than most changes save (docs/operator.md, Performance), so read the medians and the ratio
    of each pair of runs."""
    cpu = "operator_cpu_ms_per_smolserve"
    result: dict[str, Any] = {"ours": medians(ours), "minimal": medians(minimal)}
    result["wall_ratio_ours_to_minimal"] = round(
        result["ours"]["wall_s"] / result["minimal"]["wall_s"], 2
    )
    result["cpu_ratio_ours_to_minimal"] = round(result["ours"][cpu] / result["minimal"][cpu], 2)
    if len(ours) > 1:
        result["runs"] = {
            f"{cpu}_ours": [run[cpu] for run in ours],
            f"{cpu}_minimal": [run[cpu] for run in minimal],
            "cpu_ratio_ours_to_minimal": [
                round(o[cpu] / m[cpu], 2) for o, m in zip(ours, minimal, strict=True)
            ],
        }
    return result


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
    parser.add_argument(
        "--smoke",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rollout.smoke of the SmolServes (default on, as in the CRD; off: no agent, "
        "5 children fewer)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="bulk runs of each operator, interleaved (the results are the medians)",
    )
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    use_emulator = args.emulator if args.emulator is not None else not os.environ.get("KUBECONFIG")
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator(Path(tmp)) if use_emulator else _no_emulator() as url,
    ):
        cluster = Cluster(url, smoke=args.smoke)
        cluster.ensure_crd()
        results: dict[str, Any] = {"api": "emulator" if url else "KUBECONFIG cluster"}
        results["smoke"] = args.smoke
        results["job_path"] = job_path(cluster, args.job_path_count, "smolbench-jobs", args.quiet)
        print(json.dumps(results["job_path"]), flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "minimal": []}
        for run in range(args.repeat):  # interleaved: both operators see the same conditions
            for name in runs:
                namespace = f"smolbench-{name}" + (f"-{run}" if run else "")
                runs[name].append(
                    bulk(cluster, args.count, namespace, name == "minimal", args.quiet)
                )
                print(json.dumps(runs[name][-1]), flush=True)
        results.update(compare(runs["ours"], runs["minimal"]))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


@contextmanager
def _no_emulator() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
