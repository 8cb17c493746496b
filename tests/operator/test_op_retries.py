"""A reconcile of a SmolServe's own event (its creation, a spec change) that the API fails is
retried by the operator's work queue, not by kopf: kopf keeps no retry record, so none is left
behind when the spec changes back before a retry (kopf would see no change, so neither retry
nor clear it). Faults come from the proxy (``support/faults.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smolserve.operator.kube import USER_AGENT
from support import EmulatedCluster
from support.faults import ERROR_503, FaultProxyThread, Rule
from support.running import wait_for
from support.world import World


@pytest.fixture()
def proxy(cluster: EmulatedCluster, tmp_path: Path) -> Iterator[FaultProxyThread]:
    """Every create the operator's own client sends is answered 503 (until disabled)."""
    rule = Rule(ERROR_503, 1.0, verbs=frozenset({"create"}), user_agents=(USER_AGENT,))
    with FaultProxyThread(cluster.url, tmp_path / "proxy-kubeconfig", [rule]) as proxy:
        yield proxy


def test_a_failed_handler_reconcile_is_retried_without_a_kopf_retry_record(
    proxied_world: World, proxy: FaultProxyThread
) -> None:
    world = proxied_world
    world.create()

    def failed_creates() -> int:
        return sum(e.fault == ERROR_503 for e in proxy.call(lambda p: list(p.exchanges)))

    # The first reconcile failed (3 tries of the client), then the queue's first retry (3
    # more): kopf keeps no record of anything (no change handlers), so none of a retry.
    wait_for(lambda: failed_creates() >= 6, timeout=30, what="the queue retrying the reconcile")
    assert "kopf" not in (world.serve().get("status") or {}), world.serve()["status"]
    proxy.call(lambda p: setattr(p, "enabled", False))
    world.run_template()  # the queue's next retry creates the template Job, and on it goes
    world.ready()
    assert "kopf" not in (world.serve().get("status") or {})
