"""The operator's own child watches (``children.py``): a child deleted while no watch of its
kind ran is missing from the next list, and the operator recreates it as after a deletion's
event; and kopf's peering rule as the work queue applies it (``peering.py``)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from smolserve.operator.peering import verdict
from smolserve.operator.settings import Timeouts
from support import EmulatedCluster
from support.faults import TIMEOUT, WATCH_GONE, FaultProxyThread, Rule
from support.running import wait_for
from support.world import NS, World

SHORT = Timeouts(request=5, connect=2, watch_server=2, watch_client=3)
OPERATOR_OPTIONS = {"timeouts": SHORT}  # for ``proxied_world`` (conftest.py)
DEPLOYMENT_WATCHES = {"verbs": frozenset({"watch"}), "resources": frozenset({"deployments"})}


@pytest.fixture()
def proxy(cluster: EmulatedCluster, tmp_path: Path) -> Iterator[FaultProxyThread]:
    proxy = FaultProxyThread(cluster.url, tmp_path / "proxy-kubeconfig", [], hang=60.0)
    proxy.proxy.enabled = False
    with proxy:
        yield proxy


def test_a_child_deleted_while_its_watch_was_down_is_recreated_after_the_relist(
    proxied_world: World, proxy: FaultProxyThread
) -> None:
    world = proxied_world
    world.create()
    world.run_template()
    world.ready()
    before = world.deployment()
    assert before is not None

    def injected(fault: str) -> bool:
        return any(i.fault == fault for i in proxy.call(lambda p: list(p.injected)))

    def set_rules(*rules: Rule) -> None:
        proxy.call(lambda p: (setattr(p, "rules", list(rules)), setattr(p, "enabled", True)))

    # The Deployments' watch hangs; meanwhile the Deployment goes; the watch's resumption is
    # then answered "410 Gone", so the deletion is never an event: only the next list shows it.
    set_rules(Rule(TIMEOUT, 1.0, **DEPLOYMENT_WATCHES))
    wait_for(lambda: injected(TIMEOUT), timeout=10, what="a stalled Deployment watch")
    world.apps.delete_namespaced_deployment("smol", NS)
    set_rules(Rule(WATCH_GONE, 1.0, **DEPLOYMENT_WATCHES))
    wait_for(lambda: injected(WATCH_GONE), timeout=SHORT.watch_client + 10, what="a 410")
    proxy.call(lambda p: setattr(p, "enabled", False))

    def recreated() -> bool:
        now = world.deployment()
        return now is not None and now["metadata"]["uid"] != before["metadata"]["uid"]

    wait_for(recreated, timeout=20, what="the Deployment recreated after the list")


NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def _peer(priority: int, seen_ago: float, lifetime: int = 60) -> dict[str, object]:
    seen = NOW - datetime.timedelta(seconds=seen_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(
    ("peers", "paused", "blockers", "recheck_in"),
    [
        ({}, False, (), None),
        ({"me": _peer(5, 0)}, False, (), None),  # itself
        ({"me": _peer(5, 0), "low": _peer(4, 0)}, False, (), None),
        ({"me": _peer(5, 0), "high": _peer(6, 10)}, True, ("high",), 50.0),
        ({"me": _peer(5, 0), "same": _peer(5, 50)}, True, ("same",), 10.0),  # kopf: both pause
        ({"me": _peer(5, 0), "dead": _peer(9, 61)}, False, (), None),  # expired
        ({"me": _peer(5, 0), "gone": _peer(9, 0, lifetime=0)}, False, (), None),  # said goodbye
        ({"new": {"priority": 9}}, True, ("new",), 60.0),  # no lastseen: seen now (kopf's rule)
    ],
)
def test_the_peering_rule_is_kopfs(
    peers: dict[str, object], paused: bool, blockers: tuple[str, ...], recheck_in: float | None
) -> None:
    found = verdict(peers, "me", 5, NOW)
    assert (found.paused, found.blockers, found.recheck_in) == (paused, blockers, recheck_in)
