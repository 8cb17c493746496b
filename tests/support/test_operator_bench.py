"""``benchmarks/operator_bench.py`` and its baseline, against the emulator: what a real API server
did to them (an existing CRD refused on create, watches refused without a resourceVersion,
Services not yet collected, children left by an earlier run) does not stop them."""

from __future__ import annotations

import copy
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from smolserve import labels
from support import EmulatedCluster, load_crds
from support.running import wait_for

REPO = Path(__file__).resolve().parents[2]
NS = "bench"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "operator_bench", REPO / "benchmarks" / "operator_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture()
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(
        tmp_path / "kubeconfig", gc_delay=0.5, refuse_unversioned_watches=True
    ) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        yield cluster


def crd_posts(cluster: EmulatedCluster) -> int:
    log = cluster.call(lambda emulator: list(emulator.log))
    return sum(r.method == "POST" and r.path.endswith("/customresourcedefinitions") for r in log)


def test_ensure_crd_leaves_an_existing_crd_alone(cluster: EmulatedCluster, tmp_path: Path) -> None:
    target = bench.Cluster(cluster.url)
    target.ensure_crd()  # not there yet: created, then established
    assert crd_posts(cluster) == 1
    target.ensure_crd()  # there: never created again (a server may refuse it with a 422)
    assert crd_posts(cluster) == 1
    bad = copy.deepcopy(load_crds()[0])
    bad["metadata"]["name"] = "broken.smolserve.dev"
    for version in bad["spec"]["versions"]:
        version["served"] = False  # the emulator refuses a CRD that serves nothing (422)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(SystemExit, match=r"refused bad\.yaml: HTTP 422"):
        target.ensure_crd(tmp_path / "bad.yaml")


def test_arrivals_list_first_and_survive_error_events(cluster: EmulatedCluster) -> None:
    target = bench.Cluster(cluster.url)
    target.apps.create_namespaced_deployment(NS, deployment("before"))
    arrivals = bench.Arrivals(target, NS, "Deployment", watch_seconds=1)
    try:
        arrivals.wait(1, 10)  # from the list: a watch without a resourceVersion is refused here
        target.apps.create_namespaced_deployment(NS, deployment("watched"))
        arrivals.wait(2, 10)
        for i in range(3):  # move on, then forget the Deployments' history up to here: 410
            target.core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm{i}"}})

        def forget(emulator: Any) -> None:
            emulator.stores["apps", "deployments"].forgotten_up_to = emulator._revision

        cluster.call(forget)
        wait_for(lambda: any("ERROR 410" in e for e in arrivals.errors), what="a 410")
        target.apps.create_namespaced_deployment(NS, deployment("after"))
        arrivals.wait(3, 10)
    finally:
        arrivals.stop()
    assert set(arrivals.seen) == {"before", "watched", "after"}
    assert not any("ERROR 500" in e for e in arrivals.errors)  # never watched unversioned


def deployment(name: str) -> dict[str, Any]:
    match = {"app": name}
    template = {
        "metadata": {"labels": match},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    return {
        "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": match}, "template": template},
    }


def test_cleanup_waits_until_the_collector_removed_the_children(cluster: EmulatedCluster) -> None:
    target = bench.Cluster(cluster.url)
    target.ensure_crd()
    serve = target.create_serve(NS, "gone")
    owner = [{"apiVersion": labels.API_VERSION, "kind": labels.KIND, "name": "gone"}]
    owner[0]["uid"] = serve["metadata"]["uid"]
    meta = {"name": "gone", "labels": {labels.SERVE: "gone"}, "ownerReferences": owner}
    target.core.create_namespaced_service(NS, {"metadata": meta, "spec": {"ports": [{"port": 80}]}})
    began = time.monotonic()
    target.cleanup(NS)
    assert time.monotonic() - began >= 0.4  # the collector's delay: it waited
    assert target.core.list_namespaced_service(NS).items == []


def test_the_minimal_operator_runs_twice_over_existing_children(cluster: EmulatedCluster) -> None:
    target = bench.Cluster(cluster.url)
    target.ensure_crd()
    target.create_serve(NS, "smol")
    env = {"BENCH_TEMPLATE_TEXT": bench.TEMPLATE_TEXT}
    command = bench.minimal_command(target, NS)

    def done() -> dict[str, Any] | None:
        (serve,) = target.serves(NS)
        return serve if (serve.get("status") or {}).get("templateConfigMap") else None

    for _ in range(2):
        op = bench.Operator(command, env)
        try:
            handled = wait_for(done, 30, what="the minimal operator's status")
        finally:
            op.stop()
        children = {d.metadata.name for d in target.apps.list_namespaced_deployment(NS).items}
        assert children == {"smol"}
        # Forget that it was handled: the next run takes it for new, its children exist.
        kopf_keys = [k for k in handled["metadata"].get("annotations") or {} if "kopf" in k]
        body = {"metadata": {"annotations": dict.fromkeys(kopf_keys)}}
        target.custom.patch_namespaced_custom_object(
            labels.GROUP, labels.VERSION, NS, labels.PLURAL, "smol", body
        )
        target.custom.patch_namespaced_custom_object_status(
            labels.GROUP, labels.VERSION, NS, labels.PLURAL, "smol", {"status": None}
        )


def test_repeated_runs_report_medians_ratios_and_each_runs_cpu() -> None:
    def run(cpu: float, wall: float, writes: float) -> dict[str, Any]:
        return {
            "smolserves": 200,
            "wall_s": wall,
            "operator_cpu_ms_per_smolserve": cpu,
            "phases_at_steady_state": {"Ready": 200},
            "requests_per_smolserve": {"POST services": writes},
        }

    ours = [run(30.0, 9.0, 1.0), run(36.0, 12.0, 1.0), run(25.0, 8.0, 2.0)]
    minimal = [run(15.0, 6.0, 1.0), run(12.0, 6.0, 1.0), run(18.0, 7.0, 1.0)]
    result = bench.compare(ours, minimal)
    assert result["ours"]["operator_cpu_ms_per_smolserve"] == 30.0
    assert result["ours"]["requests_per_smolserve"] == {"POST services": 1.0}
    assert result["ours"]["phases_at_steady_state"] == {"Ready": 200}
    assert result["cpu_ratio_ours_to_minimal"] == 2.0
    assert result["wall_ratio_ours_to_minimal"] == 1.5
    assert result["runs"]["cpu_ratio_ours_to_minimal"] == [2.0, 3.0, 1.39]
    assert "runs" not in bench.compare(ours[:1], minimal[:1])
