"""Two operator replicas with kopf peering, as the chart runs them: only one acts; SIGKILLed,
the other takes over within a measured time, and nothing is written twice.

Both replicas run as processes (``smolserve operator --peering smol``, each with its own
``POD_ID``, as the chart's Deployment sets it) against the emulator, each through its own
proxy, so that every request is known to come from one or the other. The peering lifetime is
10 s (``--peering-lifetime``; the chart's ``peering.lifetime``): kopf takes a replica that has
not refreshed its entry for that long for dead, so the takeover after a SIGKILL (no goodbye:
the dead replica's entry stays until it expires) should take at most the lifetime, plus the
new active replica's start of its watches; the target is twice the lifetime.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from smolserve.operator.kube import USER_AGENT
from support import EmulatedCluster, install_crds, load_crds
from support.factories import TEST_JOB_IMAGE
from support.faults import Exchange, FaultProxyThread
from support.jobplayer import JobPlayer
from support.kubelet import Kubelet
from support.running import wait_for

from .processes import REPO, operator_env, start_operator
from .scenario import Creations, Fleet

LIFETIME = 10  # seconds
PEERING = "smol"
NS = "default"
PEERING_PLURALS = {"clusterkopfpeerings", "kopfpeerings"}


def _peering_crds() -> list[dict[str, Any]]:
    text = (REPO / "charts" / "smol" / "crds" / "kopf-peering.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def _chart_peering_verbs(home: Path) -> set[str]:
    """The verbs the chart's ClusterRole grants on kopf's peering objects (cluster-wide)."""
    from chart.helpers import CHART, find_tool, load_all, run

    env = {**os.environ, "HOME": str(home)}
    docs = load_all(run([find_tool("helm"), "template", "smol", CHART], env=env))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return {
        verb
        for rule in role["rules"]
        if "clusterkopfpeerings" in rule.get("resources", [])
        for verb in rule["verbs"]
    }


def _writes(exchanges: list[Exchange]) -> list[Exchange]:
    """The operator's writes, but for its peering keep-alives."""
    return [
        e
        for e in exchanges
        if e.call.method != "GET"
        and e.call.user_agent.startswith((USER_AGENT, "kopf/"))
        and e.call.resource not in PEERING_PLURALS
    ]


def _repeated(writes: list[tuple[str, Exchange]]) -> list[str]:
    """Writes sent twice, by one replica or by both: the same request twice, or two Events for
    one status write (the operator posts an Event right after the status write that made its
    transition, so each Event follows its own status write by the same replica)."""
    found = []
    seen: collections.Counter[tuple[str, str, bytes]] = collections.Counter()
    latest_status: dict[tuple[str, str], int] = {}  # (replica, SmolServe) → its last status
    posted: collections.Counter[tuple[int, str]] = collections.Counter()
    for index, (replica, write) in enumerate(sorted(writes, key=lambda rw: rw[1].at)):
        call = write.call
        if call.resource == "events":
            event = json.loads(write.body)
            serve = (event.get("involvedObject") or {}).get("name", "")
            status = latest_status.get((replica, serve))
            if status is None:
                found.append(f"{replica}: Event {event.get('reason')} without a status write")
            else:
                posted[status, event.get("reason", "")] += 1
            continue
        seen[call.method, call.path, write.body] += 1
        if call.resource == "smolserves/status":
            latest_status[replica, call.name or ""] = index
    found += [f"{method} {path} twice" for (method, path, _), n in seen.items() if n > 1]
    found += [f"Event {reason} twice for one status write" for (_, reason), n in posted.items()
              if n > 1]  # fmt: skip
    return found


def test_one_replica_acts_and_the_other_takes_over_when_it_is_killed(
    tmp_path: Path, models_dir: Path
) -> None:
    with EmulatedCluster(tmp_path / "kubeconfig", readiness="auto", gc_delay=0.5) as cluster:
        direct = install_crds(cluster, [*load_crds(), *_peering_crds()])
        custom = kubernetes.client.CustomObjectsApi(direct)
        peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                   "metadata": {"name": PEERING}}  # fmt: skip
        custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)

        def peers() -> dict[str, Any]:
            obj = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", PEERING)
            return obj.get("status") or {}

        kubelet = Kubelet(cluster, {"/models": models_dir}, tmp_path)
        creations = Creations(cluster, NS)
        deployments: list[tuple[float, dict[str, Any]]] = []

        def listen(emulator: Any) -> None:
            def record(group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
                if plural == "deployments":
                    deployments.append((time.monotonic(), obj["spec"].get("replicas")))

            emulator.listeners.append(record)

        cluster.call(listen)
        args = ["--peering", PEERING, "--peering-lifetime", str(LIFETIME), "--no-scanning"]
        proxies = {
            name: FaultProxyThread(cluster.url, tmp_path / f"kubeconfig-{name}")
            for name in ("replica-a", "replica-b")
        }
        processes = {}
        try:
            for name, proxy in proxies.items():
                proxy.__enter__()
                env = operator_env(
                    proxy.kubeconfig, POD_ID=name, SMOLSERVE_TEMPLATE_JOB_IMAGE=TEST_JOB_IMAGE
                )
                processes[name] = start_operator(args, env, tmp_path / f"{name}.log")
                wait_for(lambda n=name: n in peers(), timeout=60, what=f"{name} in the peering")
            priorities = {name: peers()[name]["priority"] for name in processes}
            active = max(priorities, key=priorities.__getitem__)
            standby = next(name for name in processes if name != active)

            fleet = Fleet(cluster, direct, NS, ["smol", "other"])
            with JobPlayer(kubelet, kubernetes.client.CoreV1Api(direct)):
                fleet.create()
                fleet.wait(lambda h: h is not None, 120, "the active replica's rollout")
                time.sleep(1)
                standby_writes = _writes(proxies[standby].call(lambda p: list(p.exchanges)))
                assert standby_writes == [], [(e.call.method, e.call.path) for e in standby_writes]
                assert _writes(proxies[active].call(lambda p: list(p.exchanges)))

                # The active replica dies without a word; a spec change waits for the other.
                processes[active].send_signal(signal.SIGKILL)
                processes[active].wait(10)
                killed = time.monotonic()
                fleet.patch({"replicas": 2})
                wait_for(
                    lambda: sum(replicas == 2 for _, replicas in deployments) >= 2,
                    timeout=4 * LIFETIME,
                    what="the standby to take over",
                )
                takeover = next(t for t, replicas in deployments if replicas == 2) - killed
                fleet.wait(lambda h: h is not None, 60, "the new active replica's rollout")
                time.sleep(1)
            assert processes[standby].poll() is None  # it never stopped
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
                    process.wait(20)
            for proxy in proxies.values():
                proxy.__exit__(None, None, None)

        print(f"takeover after SIGKILL: {takeover:.1f} s (peering lifetime {LIFETIME} s)")
        assert takeover <= 2 * LIFETIME
        # Nothing written twice: no object created twice, no write (or Event) sent twice,
        # by one replica or by both.
        assert creations.more_than_once() == {}
        writes = [(name, w) for name, p in proxies.items() for w in _writes(p.proxy.exchanges)]
        assert _repeated(writes) == []
        # What kopf did to the peering object is what the chart's RBAC grants.
        used = {
            e.call.verb
            for proxy in proxies.values()
            for e in proxy.proxy.exchanges
            if e.call.resource in PEERING_PLURALS
        }
        assert used <= _chart_peering_verbs(tmp_path), used
        for name in processes:
            assert "Traceback" not in (tmp_path / f"{name}.log").read_text(), name
