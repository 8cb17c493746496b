"""Scale and churn benchmark: the operator with many SmolServes at steady state, and with
SmolServes created and deleted in waves.

Builds on ``operator_bench.py``: the operator runs in its own process (``smolserve
operator``), so the CPU time and RSS measured are its own, against the test emulator in
another process (default when ``KUBECONFIG`` is unset) or the cluster in ``KUBECONFIG``. Every
SmolServe comes with its template ConfigMap already published (a kept template: no Job to
play), ``replicas: 0`` (no pods), so each one gets its Service, RBAC, parser-plugin ConfigMap,
agent ConfigMaps and Deployment. The emulator costs about 7 ms of its own CPU per object
created and deleted at 1,000 SmolServes on a loaded 2-core machine: the wall time is not only
the operator's.

Phases:

- ``steady`` (``--count`` SmolServes, created before the operator starts): operator CPU per
  SmolServe from its start until every status names its template and it is quiet, its RSS;
  then the requests it makes in a ``--window`` with nothing changing (its watches'
  reconnects counted apart: they are not work); then ``--edits`` spec edits, one SmolServe
  at a time with the others idle, each timed from the edit's answer until the benchmark's
  own watch sees the Deployment's new generation (p50/p99).
- ``churn`` (``--waves`` waves of ``--count``, new names each wave, the operator running):
  create, wait for steady, delete, wait until the garbage collector removed every child, the
  operator is quiet and keeps nothing for any SmolServe (at most ``--forget-timeout``
  seconds); after each wave the RSS, the threads and how many SmolServes the operator still
  keeps anything for (``tracked``, from its liveness endpoint: 0 is no leak) and how long
  that took to settle.
  ``--childless N`` adds N SmolServes per wave with an invalid spec: they get a status and no
  children, so no child's deletion ever reminds the operator of them.

``--operator-path DIR`` runs the operator from another checkout's ``operator/`` directory (an
older commit, for before/after numbers with the same benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from operator_bench import (
    JOB_IMAGE,
    OURS_UA,
    TEMPLATE_TEXT,
    Arrivals,
    Cluster,
    Operator,
    _no_emulator,
    emulator,
    ours_command,
    template_configmap,
    wait_rollouts,
    wait_statuses,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from smolserve import labels  # noqa: E402
from smolserve.manifests import OperatorConfig  # noqa: E402

CONFIG = OperatorConfig(job_image=JOB_IMAGE)
# Seconds between two lists of every SmolServe (or Deployment) while waiting: each one costs
# the emulator a serialization of them all, CPU it would otherwise spend on the operator.
POLL = 1.0


class Generations(Arrivals):
    """When the benchmark's watch first saw each Deployment at each generation."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.at: dict[tuple[str, int], float] = {}
        super().__init__(cluster, namespace, "Deployment")

    def _saw(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.at.setdefault((meta["name"], meta.get("generation", 0)), time.monotonic())
        super()._saw(obj)


class Requests:
    """The operator's requests in the emulator's log since the last ``take`` (none: no log)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.mark = len(cluster.requests() or [])

    def take(self) -> list[dict[str, Any]]:
        fresh = self.cluster.requests(since=self.mark) or []
        self.mark += len(fresh)
        return [r for r in fresh if r["user_agent"].startswith(OURS_UA)]

    def settle(self, quiet: float, timeout: float = 3600) -> list[dict[str, Any]]:
        """Wait until the operator made no request but watches for ``quiet`` seconds; every
        request it made meanwhile."""
        if self.cluster.emulator_url is None:
            time.sleep(quiet)
            return []
        made: list[dict[str, Any]] = []
        since, deadline = time.monotonic(), time.monotonic() + timeout
        while time.monotonic() - since < quiet:
            fresh = self.take()
            made += fresh
            if any(not is_watch(r) for r in fresh):
                since = time.monotonic()
            if time.monotonic() > deadline:
                raise SystemExit("scale_bench: error: the operator never went quiet")
            time.sleep(1.0)
        return made


def is_watch(record: dict[str, Any]) -> bool:
    query = record.get("query", "")
    return "watch=true" in query or "watch=1" in query


def probe(op: Operator) -> dict[str, Any]:
    """What the operator's liveness endpoint reports (its probes: ``tracked``, ``threads``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=30) as rsp:
        data = json.loads(rsp.read() or b"{}")
    return data if isinstance(data, dict) else {}


def settle_tracked(op: Operator, timeout: float) -> tuple[int | None, float]:
    """Wait until the operator keeps nothing for any SmolServe, at most ``timeout`` seconds:
    the count then, and how long it took. It forgets a deleted SmolServe when it handles the
    deletion's event, which takes no request (a quiet request log does not say that it is done)
    and can wait behind a backlog of the children's events: a count that is still there after
    ``timeout`` is a leak."""
    began = time.monotonic()
    while True:
        tracked = probe(op).get("tracked")
        waited = time.monotonic() - began
        if tracked == 0 or waited >= timeout:
            return tracked, round(waited, 1)
        time.sleep(0.5)


def threads(op: Operator) -> int:
    return len(os.listdir(f"/proc/{op.proc.pid}/task"))


def create(cluster: Cluster, namespace: str, names: list[str]) -> None:
    """SmolServes, each with its template already published (owned by it, as the Job's)."""
    for name in names:
        serve = cluster.create_serve(namespace, name)
        cluster.core.create_namespaced_config_map(namespace, template_configmap(serve, CONFIG))


def create_childless(cluster: Cluster, namespace: str, names: list[str]) -> None:
    """SmolServes the operator makes no child for: their spec is invalid (no configMapRef)."""
    for name in names:
        body = {
            "apiVersion": labels.API_VERSION,
            "kind": labels.KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "model": {"pvc": {"claimName": "m", "path": "p"}},
                "template": {"source": "configMap"},
            },
        }
        cluster.custom.create_namespaced_custom_object(
            labels.GROUP, labels.VERSION, namespace, labels.PLURAL, body
        )


def start_operator(cluster: Cluster, namespace: str, operator_path: Path | None) -> Operator:
    env = {"SMOLSERVE_TEMPLATE_JOB_IMAGE": JOB_IMAGE, "BENCH_TEMPLATE_TEXT": TEMPLATE_TEXT}
    if operator_path is not None:
        env["PYTHONPATH"] = str(operator_path)
    return Operator(ours_command(cluster, namespace), env)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def steady(
    cluster: Cluster,
    count: int,
    namespace: str,
    window: float,
    edits: int,
    quiet: float,
    operator_path: Path | None,
) -> dict[str, Any]:
    cluster.ensure_namespace(namespace)
    names = [f"s-{i:04d}" for i in range(count)]
    create(cluster, namespace, names)
    generations = Generations(cluster, namespace)
    requests = Requests(cluster)
    op = start_operator(cluster, namespace, operator_path)
    cpu, began = op.cpu_seconds(), time.monotonic()
    try:
        wait_statuses(cluster, namespace, count, 7200, POLL)
        wait_rollouts(cluster, namespace, count, 7200, POLL)
        requests.settle(quiet)
        cpu = op.cpu_seconds() - cpu
        rss, peak = op.memory_mib()
        result: dict[str, Any] = {
            "smolserves": count,
            "wall_s_emulator_bound": round(time.monotonic() - began, 1),
            "operator_cpu_ms_per_smolserve": round(1000 * cpu / count, 1),
            "rss_mib": round(rss, 1),
            "rss_mib_peak": round(peak, 1),
            "threads": threads(op),
        }
        print(json.dumps(result), flush=True)
        idle_cpu = op.cpu_seconds()
        time.sleep(window)
        quiet_records = requests.take()
        result[f"requests_in_{window:.0f}s_idle"] = sum(not is_watch(r) for r in quiet_records)
        result[f"watch_requests_in_{window:.0f}s_idle"] = sum(map(is_watch, quiet_records))
        result[f"operator_cpu_s_in_{window:.0f}s_idle"] = round(op.cpu_seconds() - idle_cpu, 2)
        latencies = []
        rng = random.Random(0)
        for number in range(edits):
            name = rng.choice(names)
            current = cluster.apps.read_namespaced_deployment(name, namespace).metadata.generation
            value = round(0.5 + (number % 40) / 100, 2)
            cluster.custom.patch_namespaced_custom_object(
                labels.GROUP,
                labels.VERSION,
                namespace,
                labels.PLURAL,
                name,
                {"spec": {"engine": {"gpuMemoryUtilization": value}}},
            )
            edited = time.monotonic()
            while (name, current + 1) not in generations.at:
                if time.monotonic() > edited + 120:
                    raise SystemExit(f"scale_bench: error: edit {number} of {name} not applied")
                time.sleep(0.002)
            latencies.append(generations.at[name, current + 1] - edited)
        if latencies:
            result["edits"] = edits
            result["edit_to_deployment_patch_p50_ms"] = round(
                1000 * statistics.median(latencies), 1
            )
            result["edit_to_deployment_patch_p99_ms"] = round(1000 * percentile(latencies, 0.99), 1)
        result["rss_mib_after_edits"] = round(op.memory_mib()[0], 1)
        result["tracked"] = probe(op).get("tracked")
        return result
    finally:
        generations.stop()
        try:
            cluster.cleanup(namespace)
        finally:
            op.stop()


def churn(
    cluster: Cluster,
    count: int,
    waves: int,
    namespace: str,
    quiet: float,
    operator_path: Path | None,
    childless: int = 0,
    forget_timeout: float = 120,
) -> dict[str, Any]:
    cluster.ensure_namespace(namespace)
    requests = Requests(cluster)
    op = start_operator(cluster, namespace, operator_path)
    rows = []
    try:
        requests.settle(quiet)
        started = {"rss_mib": round(op.memory_mib()[0], 1), "threads": threads(op)}
        for wave in range(waves):
            create(cluster, namespace, [f"w{wave}-{i:04d}" for i in range(count)])
            create_childless(cluster, namespace, [f"w{wave}-bad-{i:04d}" for i in range(childless)])
            wait_statuses(cluster, namespace, count, 7200, POLL)
            wait_rollouts(cluster, namespace, count, 7200, POLL)
            requests.settle(quiet)
            loaded = op.memory_mib()[0]
            cluster.cleanup(namespace, timeout=7200)
            requests.settle(quiet)
            tracked, waited = settle_tracked(op, forget_timeout)
            row = {
                "wave": wave + 1,
                "rss_mib_loaded": round(loaded, 1),
                "rss_mib_after": round(op.memory_mib()[0], 1),
                "threads": threads(op),
                "tracked": tracked,
                "tracked_settled_after_s": waited,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        first = rows[0]["rss_mib_after"]
        return {
            "smolserves_per_wave": count,
            "childless_per_wave": childless,
            "before_first_wave": started,
            "waves": rows,
            "max_rss_after_vs_first_wave": round(max(r["rss_mib_after"] for r in rows) / first, 3),
            "rss_mib_peak": round(op.memory_mib()[1], 1),
        }
    finally:
        try:
            cluster.cleanup(namespace)
        finally:
            op.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="SmolServes (per wave)")
    parser.add_argument("--waves", type=int, default=5, help="churn waves")
    parser.add_argument(
        "--childless", type=int, default=0, help="invalid SmolServes per churn wave"
    )
    parser.add_argument("--edits", type=int, default=100, help="timed spec edits at steady state")
    parser.add_argument("--window", type=float, default=60, help="seconds of idle steady state")
    parser.add_argument(
        "--quiet", type=float, default=5.0, help="seconds without requests = steady"
    )
    parser.add_argument(
        "--forget-timeout",
        type=float,
        default=120,
        help="churn: seconds to wait for the operator to forget a wave's SmolServes",
    )
    parser.add_argument("--phase", choices=["steady", "churn", "both"], default="both")
    parser.add_argument(
        "--operator-path", type=Path, help="run the operator from this operator/ directory"
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
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator(Path(tmp)) if use_emulator else _no_emulator() as url,
    ):
        cluster = Cluster(url)
        cluster.ensure_crd()
        results["api"] = "emulator" if url else "KUBECONFIG cluster"
        results["operator"] = str(args.operator_path or REPO / "operator")
        if args.phase in ("steady", "both"):
            results["steady"] = steady(
                cluster,
                args.count,
                "smolscale-steady",
                args.window,
                args.edits,
                args.quiet,
                args.operator_path,
            )
        if args.phase in ("churn", "both"):
            results["churn"] = churn(
                cluster,
                args.count,
                args.waves,
                "smolscale-churn",
                args.quiet,
                args.operator_path,
                args.childless,
                args.forget_timeout,
            )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
