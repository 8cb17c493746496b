"""The operator's own /metrics, scraped over HTTP from the real operator while it works."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smolserve.manifests import OperatorConfig
from smolserve.operator.metrics import OperatorMetrics
from support import EmulatedCluster
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for
from support.world import NS, World

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def metered(
    cluster: EmulatedCluster,
    api_client: kubernetes.client.ApiClient,
    kubelet: Kubelet,
    operator_config: OperatorConfig,
) -> Iterator[tuple[World, int]]:
    port = free_port()
    thread = OperatorThread(operator_config, metrics_port=port)
    thread.start()
    yield World(cluster, api_client, kubelet, thread), port
    thread.stop()


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_counters_move_with_what_the_operator_does(metered: tuple[World, int]) -> None:
    world, port = metered
    before = scrape(port)
    assert value(before, "smolserve_reconciles_total", result="changed") == 0
    assert value(before, "process_resident_memory_bytes") > 0

    world.create()
    world.run_template()  # a template Job that ran (and succeeded) while the operator watched
    world.ready()  # the Deployment's first rollout completes
    after = wait_for(
        lambda: (
            (s := scrape(port))
            and value(s, "smolserve_serves", namespace=NS, phase="Ready") == 1
            and s
        ),
        what="the phase gauge",
    )
    assert value(after, "smolserve_reconciles_total", result="changed") >= 3
    reconciles = sum(
        value(after, "smolserve_reconciles_total", result=r) for r in ("changed", "unchanged")
    )
    assert value(after, "smolserve_reconcile_duration_seconds_count") == reconciles
    assert value(after, "smolserve_template_jobs_total", outcome="succeeded") == 1
    assert value(after, "smolserve_template_jobs_total", outcome="failed") == 0
    assert value(after, "smolserve_template_job_duration_seconds_count", outcome="succeeded") == 1
    assert value(after, "smolserve_rollouts_started_total") == 1
    assert value(after, "smolserve_rollouts_finished_total", outcome="complete") == 1
    assert value(after, "smolserve_rollout_duration_seconds_count", outcome="complete") == 1

    # A template change is a second rollout; a failed Job counts as failed.
    world.patch_spec({"template": {"source": "inline", "inline": "{{ no verify }}"}})
    job = world.wait_job(not_in=world.job_names())
    code, _ = world.kubelet.run_job(job)
    assert code != 0
    wait_for(
        lambda: value(scrape(port), "smolserve_template_jobs_total", outcome="failed") == 1,
        what="the failed Job counted",
    )
    wait_for(
        lambda: value(scrape(port), "smolserve_serves", namespace=NS, phase="Degraded") == 1,
        what="the Degraded SmolServe",
    )
    assert value(scrape(port), "smolserve_serves", namespace=NS, phase="Ready") == 0

    world.delete()
    wait_for(
        lambda: not [k for k in scrape(port) if k[0] == "smolserve_serves"],
        what="the deleted SmolServe's gauge to go",
    )


def test_every_metric_is_documented_and_its_labels_are_bounded() -> None:
    """Label values come from small fixed sets (namespace aside): no per-object label."""
    metrics = OperatorMetrics()
    allowed = {"result", "outcome", "namespace", "phase", "le"}
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert set(sample.labels) <= allowed, (family.name, sample.labels)
