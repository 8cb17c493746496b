"""The fault-injecting proxy: what a client sees of each fault, over real HTTP, in front of the
emulator; decisions that replay with the seed whatever the order of requests."""

from __future__ import annotations

import asyncio
import collections
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support import EmulatedCluster
from support.faults import (
    CONFLICT_409,
    ERROR_500,
    ERROR_503,
    FAULTS,
    THROTTLE_429,
    TIMEOUT,
    WATCH_CUT,
    WATCH_GONE,
    FaultProxy,
    FaultProxyThread,
    Rule,
    classify,
    every_fault,
)
from support.rawapi import Api
from support.running import wait_for

CONFIGMAPS = "/api/v1/namespaces/ns/configmaps"


def configmap(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path / "kubeconfig", controllers=False) as cluster:
        yield cluster


def proxied(cluster: EmulatedCluster, tmp_path: Path, *rules: Rule, **kw: Any) -> FaultProxyThread:
    return FaultProxyThread(cluster.url, tmp_path / "proxy-kubeconfig", rules, **kw)


def stored(cluster: EmulatedCluster) -> list[str]:
    return sorted(cm["metadata"]["name"] for cm in cluster.snapshot("configmaps"))


@pytest.mark.parametrize(
    ("method", "path", "query", "verb", "resource", "name"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", {}, "list", "pods", None),
        ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, "watch", "pods", None),
        ("GET", "/api/v1/watch/namespaces/ns/pods", {}, "watch", "pods", None),
        ("GET", "/api/v1/namespaces/ns/pods/p", {}, "get", "pods", "p"),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/d/status",
            {},
            "patch",
            "deployments/status",
            "d",
        ),
        ("POST", "/apis/batch/v1/namespaces/ns/jobs", {}, "create", "jobs", None),
        ("DELETE", "/api/v1/namespaces/ns/configmaps", {}, "deletecollection", "configmaps", None),
        (
            "GET",
            "/apis/smolserve.dev/v1alpha1/smolserves",
            {"watch": "1"},
            "watch",
            "smolserves",
            None,
        ),
        ("GET", "/api/v1/namespaces/ns", {}, "get", "namespaces", "ns"),
        ("GET", "/apis/apps/v1", {}, None, None, None),
        ("GET", "/version", {}, None, None, None),
    ],
)
def test_requests_are_classified_as_rbac_names_them(
    method: str, path: str, query: dict[str, str], verb: str, resource: str, name: str
) -> None:
    call = classify(method, path, query.items(), "ua")
    assert (call.verb, call.resource, call.name) == (verb, resource, name)


def _calls(count: int) -> list[Any]:
    paths = [f"/api/v1/namespaces/ns/configmaps/cm-{i % 7}" for i in range(count)]
    methods = ["GET", "PATCH", "DELETE"]
    return [classify(methods[i % 3], p, (), "ua") for i, p in enumerate(paths)]


def test_decisions_replay_with_the_seed_whatever_the_order() -> None:
    calls = _calls(600)
    first = FaultProxy("http://unused", every_fault(0.1), seed=7)
    decided = [first.decide(call)[0] for call in calls]
    shuffled = list(enumerate(calls))
    random.Random(1).shuffle(shuffled)
    again = FaultProxy("http://unused", every_fault(0.1), seed=7)
    by_identity: dict[tuple[str, int], str | None] = {}
    seen: collections.Counter[str] = collections.Counter()
    for _, call in shuffled:
        by_identity[call.identity, seen[call.identity]] = again.decide(call)[0]
        seen[call.identity] += 1
    # The n-th request of each identity gets the same fault, in any order.
    seen.clear()
    for call, fault in zip(calls, decided, strict=True):
        assert by_identity[call.identity, seen[call.identity]] == fault
        seen[call.identity] += 1
    other = FaultProxy("http://unused", every_fault(0.1), seed=8)
    assert [other.decide(call)[0] for call in calls] != decided


def test_each_fault_hits_its_rate_of_the_requests_it_applies_to() -> None:
    proxy = FaultProxy("http://unused", every_fault(0.1), seed=3)
    writes = [
        classify("PATCH", f"/api/v1/namespaces/ns/configmaps/c{i}", (), "") for i in range(5000)
    ]
    for call in writes:
        proxy.decide(call)
    counts = proxy.counts()
    # A patch can get 500, 503, 429, 409 or a timeout: each about 10 %, never a watch fault.
    for fault in (ERROR_500, ERROR_503, THROTTLE_429, CONFLICT_409, TIMEOUT):
        assert 400 <= counts[fault] <= 600, counts
    assert counts[WATCH_CUT] == counts[WATCH_GONE] == 0
    resumed = classify("GET", "/api/v1/pods", (("watch", "true"), ("resourceVersion", "5")), "")
    fresh = classify("GET", "/api/v1/pods", (("watch", "true"),), "")
    assert [r.fault for r in proxy._applicable(resumed)] == [
        ERROR_500, ERROR_503, THROTTLE_429, TIMEOUT, WATCH_CUT, WATCH_GONE
    ]  # fmt: skip
    assert WATCH_GONE not in [r.fault for r in proxy._applicable(fresh)]


def test_a_rule_narrows_by_verb_resource_and_user_agent() -> None:
    rule = Rule(ERROR_500, 1.0, verbs=frozenset({"create"}), resources=frozenset({"jobs"}),
                user_agents=("smolserve-operator/",))  # fmt: skip
    proxy = FaultProxy("http://unused", [rule])
    hit = classify("POST", "/apis/batch/v1/namespaces/ns/jobs", (), "smolserve-operator/1")
    assert proxy.decide(hit)[0] == ERROR_500
    for miss in (
        classify("POST", "/apis/batch/v1/namespaces/ns/jobs", (), "kopf/1.45.2"),
        classify("PATCH", "/apis/batch/v1/namespaces/ns/jobs/j", (), "smolserve-operator/1"),
        classify("POST", "/api/v1/namespaces/ns/configmaps", (), "smolserve-operator/1"),
    ):
        assert proxy.decide(miss)[0] is None
    with pytest.raises(ValueError, match="unknown fault"):
        Rule("nope", 0.1)
    assert set(FAULTS) == {r.fault for r in every_fault(0.1)}


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        (ERROR_500, 500, "InternalError"),
        (ERROR_503, 503, "ServiceUnavailable"),
        (THROTTLE_429, 429, "TooManyRequests"),
        (CONFLICT_409, 409, "Conflict"),
    ],
)
def test_refusals_are_kubernetes_statuses_and_never_reach_the_server(
    cluster: EmulatedCluster, tmp_path: Path, fault: str, code: int, reason: str
) -> None:
    with proxied(cluster, tmp_path, Rule(fault, 1.0), retry_after=2) as proxy:
        status, body = Api(proxy.url)("POST", CONFIGMAPS, configmap("a"))
        assert (status, body["kind"], body["reason"], body["code"]) == (
            code,
            "Status",
            reason,
            code,
        )
        if fault == THROTTLE_429:
            assert body["details"]["retryAfterSeconds"] == 2
        assert stored(cluster) == []
        exchanges = proxy.call(lambda p: list(p.exchanges))
        assert [(e.call.verb, e.status, e.fault) for e in exchanges] == [("create", code, fault)]


def test_a_429_carries_retry_after(cluster: EmulatedCluster, tmp_path: Path) -> None:
    async def get(url: str) -> tuple[int, str | None]:
        async with aiohttp.ClientSession() as session, session.get(url + CONFIGMAPS) as rsp:
            return rsp.status, rsp.headers.get("Retry-After")

    with proxied(cluster, tmp_path, Rule(THROTTLE_429, 1.0), retry_after=3) as proxy:
        assert asyncio.run(get(proxy.url)) == (429, "3")


def test_a_timed_out_write_takes_effect_but_its_answer_never_comes(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    seen: list[tuple[str | None, int]] = []
    with proxied(cluster, tmp_path, Rule(TIMEOUT, 1.0, verbs=frozenset({"create"})), hang=0.3) as p:
        p.proxy.after_upstream.append(lambda call, status: seen.append((call.verb, status)))
        with pytest.raises(OSError):  # the connection drops without an answer
            Api(p.url)("POST", CONFIGMAPS, configmap("a"))
        assert stored(cluster) == ["a"]
        assert seen == [("create", 201)]
        assert Api(p.url).get(CONFIGMAPS + "/a")["data"] == {"k": "v"}  # reads pass


async def _watch_lines(url: str) -> tuple[list[dict[str, Any]], str | None]:
    """The complete events of a watch, and the error that ended it (None: a clean end)."""
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.get(url) as rsp:
        buffer = b""
        try:
            async for chunk in rsp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    events.append(json.loads(line))
        except aiohttp.ClientPayloadError as exc:
            return events, f"{type(exc).__name__}: {buffer[:20]!r}"
    return events, None


def test_a_cut_watch_ends_halfway_through_an_event(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    api = Api(cluster.url)
    for index in range(8):
        assert api("POST", CONFIGMAPS, configmap(f"cm-{index}"))[0] == 201
    with proxied(cluster, tmp_path, Rule(WATCH_CUT, 1.0), seed=5) as proxy:
        events, error = asyncio.run(_watch_lines(proxy.url + CONFIGMAPS + "?watch=true"))
        assert error is not None and error.startswith("ClientPayloadError: b'{")
        assert len(events) < 8 and all(e["type"] == "ADDED" for e in events)
        # The same seed cuts the same watch at the same event.
        again, _ = asyncio.run(_watch_lines(proxy.url + CONFIGMAPS + "?watch=true"))
        assert proxy.call(lambda p: [i.fault for i in p.injected]) == [WATCH_CUT, WATCH_CUT]
    with proxied(cluster, tmp_path, Rule(WATCH_CUT, 1.0), seed=5) as replay:
        replayed, _ = asyncio.run(_watch_lines(replay.url + CONFIGMAPS + "?watch=true"))
        assert len(replayed) == len(events)
        del again


def test_a_resumed_watch_can_be_answered_410_gone(cluster: EmulatedCluster, tmp_path: Path) -> None:
    api = Api(cluster.url)
    assert api("POST", CONFIGMAPS, configmap("a"))[0] == 201
    with proxied(cluster, tmp_path, Rule(WATCH_GONE, 1.0)) as proxy:
        resumed, error = asyncio.run(
            _watch_lines(proxy.url + CONFIGMAPS + "?watch=true&resourceVersion=1&timeoutSeconds=1")
        )
        assert error is None
        assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in resumed] == [
            ("ERROR", 410, "Expired")
        ]
        fresh, _ = asyncio.run(
            _watch_lines(proxy.url + CONFIGMAPS + "?watch=true&timeoutSeconds=1")
        )
        assert [e["type"] for e in fresh] == ["ADDED"]  # a watch from now is never 410


def test_a_stalled_watch_sends_nothing_until_the_client_gives_up(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    async def watch(url: str) -> str:
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with session.get(url) as rsp:
                    await rsp.read()
            except TimeoutError:
                return "client timeout"
        return "answered"

    with proxied(cluster, tmp_path, Rule(TIMEOUT, 1.0, verbs=frozenset({"watch"})), hang=30) as p:
        assert asyncio.run(watch(p.url + CONFIGMAPS + "?watch=true")) == "client timeout"
        # The proxy stops holding it once the client hangs up (well before its 30 s).
        exchanges = wait_for(lambda: p.call(lambda proxy: list(proxy.exchanges)), timeout=5)
        assert [(e.call.verb, e.status, e.fault) for e in exchanges] == [("watch", None, TIMEOUT)]


def test_without_faults_everything_passes_through(cluster: EmulatedCluster, tmp_path: Path) -> None:
    with proxied(cluster, tmp_path, *every_fault(0.0)) as proxy:
        api = Api(proxy.url)
        assert api("POST", CONFIGMAPS, configmap("a"))[0] == 201
        assert api("POST", CONFIGMAPS, configmap("a"))[0] == 409  # the server's own answer
        assert [cm["metadata"]["name"] for cm in api.get(CONFIGMAPS)["items"]] == ["a"]
        events, error = asyncio.run(
            _watch_lines(proxy.url + CONFIGMAPS + "?watch=true&timeoutSeconds=1")
        )
        assert error is None and [e["type"] for e in events] == ["ADDED"]
        assert proxy.call(lambda p: list(p.injected)) == []
