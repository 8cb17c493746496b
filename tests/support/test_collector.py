"""The garbage collector: delayed collection, and the three propagation policies, over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import EmulatedCluster
from support.clock import Clock
from support.rawapi import MERGE, Api
from support.running import wait_for

CONFIGMAPS = "/api/v1/namespaces/ns/configmaps"


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    """Nothing is collected until the test calls ``collect_garbage()``."""
    with EmulatedCluster(tmp_path / "kubeconfig", controllers=False, gc_delay=None) as cluster:
        yield cluster


@pytest.fixture()
def api(cluster: EmulatedCluster) -> Api:
    return Api(cluster.url)


def ref(owner: dict[str, Any], block: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }


def make(api: Api, name: str, *owners: dict[str, Any], **meta: Any) -> dict[str, Any]:
    refs = [ref(o) for o in owners]
    body = {"metadata": {"name": name, **({"ownerReferences": refs} if refs else {}), **meta}}
    code, obj = api("POST", CONFIGMAPS, body)
    assert code == 201, obj
    return obj


def names(api: Api) -> set[str]:
    return {i["metadata"]["name"] for i in api.get(CONFIGMAPS)["items"]}


def test_dependents_outlive_their_owner_until_the_collector_runs(
    cluster: EmulatedCluster, api: Api
) -> None:
    owner = make(api, "smol")
    child = make(api, "smol-child", owner)
    api("DELETE", f"{CONFIGMAPS}/smol")
    time.sleep(0.2)
    assert names(api) == {"smol-child"}  # owner gone, its dependent still there
    successor = make(api, "smol")  # the same name, another uid: not the child's owner
    assert successor["metadata"]["uid"] != owner["metadata"]["uid"]
    own_child = make(api, "smol-own-child", successor)
    stale = api.get(f"{CONFIGMAPS}/smol-child")["metadata"]["ownerReferences"][0]
    assert (
        stale["uid"] == owner["metadata"]["uid"] == child["metadata"]["ownerReferences"][0]["uid"]
    )
    cluster.collect_garbage()
    assert names(api) == {"smol", "smol-own-child"}
    assert (
        own_child["metadata"]["uid"] == api.get(f"{CONFIGMAPS}/smol-own-child")["metadata"]["uid"]
    )


def test_collection_after_a_delay(tmp_path: Path) -> None:
    with EmulatedCluster(tmp_path / "kc", controllers=False, gc_delay=0.5) as cluster:
        api = Api(cluster.url)
        owner = make(api, "owner")
        make(api, "child", owner)
        api("DELETE", f"{CONFIGMAPS}/owner")
        assert names(api) == {"child"}
        wait_for(lambda: names(api) == set(), timeout=5, what="the delayed collection")


def test_a_surviving_owner_keeps_its_dependent(cluster: EmulatedCluster, api: Api) -> None:
    first, second = make(api, "first"), make(api, "second")
    make(api, "shared", first, second)
    api("DELETE", f"{CONFIGMAPS}/first")
    cluster.collect_garbage()
    refs = api.get(f"{CONFIGMAPS}/shared")["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == [second["metadata"]["uid"]]  # only the gone one removed


def test_foreground_deletion_waits_for_blocking_dependents(
    cluster: EmulatedCluster, api: Api
) -> None:
    owner = make(api, "owner")
    child = make(api, "child", owner)
    make(api, "grandchild", child)
    held = make(api, "held", owner, finalizers=["example.dev/hold"])
    since = held["metadata"]["resourceVersion"]
    code, deleting = api("DELETE", f"{CONFIGMAPS}/owner", {"propagationPolicy": "Foreground"})
    assert code == 200 and deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["finalizers"] == ["foregroundDeletion"]
    cluster.collect_garbage()
    assert names(api) == {"owner", "held"}  # "held" is being deleted, its finalizer holds it
    assert api.get(f"{CONFIGMAPS}/held")["metadata"]["deletionTimestamp"]
    api("PATCH", f"{CONFIGMAPS}/held", {"metadata": {"finalizers": None}}, MERGE)
    cluster.collect_garbage()
    assert names(api) == set()
    events = api.lines(f"{CONFIGMAPS}?watch=true&resourceVersion={since}&timeoutSeconds=1")
    gone = [e["object"]["metadata"]["name"] for e in events if e["type"] == "DELETED"]
    assert gone.index("grandchild") < gone.index("child") < gone.index("owner")
    assert gone[-1] == "owner"


def test_orphan_deletion_keeps_the_dependents(cluster: EmulatedCluster, api: Api) -> None:
    owner = make(api, "owner")
    make(api, "child", owner)
    code, deleting = api("DELETE", f"{CONFIGMAPS}/owner", {"propagationPolicy": "Orphan"})
    assert code == 200 and deleting["metadata"]["finalizers"] == ["orphan"]
    assert names(api) == {"owner", "child"}
    cluster.collect_garbage()
    assert names(api) == {"child"}
    assert "ownerReferences" not in api.get(f"{CONFIGMAPS}/child")["metadata"]
    assert api("DELETE", f"{CONFIGMAPS}/child", {"propagationPolicy": "Sideways"})[0] == 422


def test_the_clock_fires_timers_in_order_when_advanced() -> None:
    async def run() -> list[str]:
        clock, fired = Clock(), []
        clock.call_later(600, lambda: fired.append("ten minutes"))
        clock.call_later(60, lambda: fired.append("a minute"))
        dropped = clock.call_later(120, lambda: fired.append("cancelled"))
        dropped.cancel()
        clock.call_later(0, lambda: fired.append("now"))
        await asyncio.sleep(0.01)
        clock.advance(300)
        fired.append(f"+{round(clock.now() - time.time())}")
        clock.advance(300)
        return fired

    assert asyncio.run(run()) == ["now", "a minute", "+300", "ten minutes"]
