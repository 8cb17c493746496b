"""50 SmolServes through create → template → Deployment → template change → revert with every
kind of API fault injected at 10 %: the operator converges to exactly the end state of the
same scenario without faults.

The real operator (kopf, in a thread) talks to the emulator through the fault-injecting proxy
(``support/faults.py``): 500, 503, 429 with Retry-After, 409 on writes, timeouts (a write that
takes effect but whose answer never comes, a watch that stays silent), watch streams cut
halfway through an event, 410 Gone on a resumed watch, each at 10 % of the requests it
applies to (so about half of all writes fail). The template Jobs' pods are played
(``support/jobplayer.py``: the real engine and publish function) and talk to the emulator
directly: the faults are the operator's. The operator runs with short timeouts (a request 3 s,
a watch 5 s, a silent one cut at 8 s) so that a timed-out request costs seconds, not the
production minute.

409 hits every write of the operator's own client and kopf's Event posts, not kopf's merge
patches of the SmolServe: those carry no resourceVersion precondition, and the API server
retries such a patch's conflicts itself, so it never answers them 409 (kopf, if it got one,
would back off through its error throttler and recover: seen, not tested here).

The fault-free run goes through the same proxy with no rule, with the same names and
timeouts. ``SMOLSERVE_FAULT_SEED`` replays another seed.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from smolserve.kinds import CHILDREN
from smolserve.manifests import OperatorConfig
from smolserve.operator.kube import USER_AGENT
from smolserve.operator.settings import Timeouts
from support import EmulatedCluster, load_crds
from support.faults import CONFLICT_409, FaultProxyThread, Rule, every_fault
from support.jobplayer import JobPlayer
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for

from .scenario import CHANGE, REVERT, Creations, Fleet, LogRecords, differences, end_state

SEED = int(os.environ.get("SMOLSERVE_FAULT_SEED", "20261201"))
COUNT = 50
RATE = 0.10
NS = "default"
# Seconds: the bound on each phase's convergence. Measured under faults: 113-123 s for the
# slowest phase (create) at a load average of 3 on 2 cores, up to 213 s at a load average of 7.
PHASE_TIMEOUT = 420.0
FAST = Timeouts(request=3, connect=2, watch_server=5, watch_client=8)
OPERATOR_UA = (USER_AGENT, "kopf/")
RULES = [
    *(rule for rule in every_fault(RATE) if rule.fault != CONFLICT_409),
    Rule(CONFLICT_409, RATE, user_agents=(USER_AGENT,)),
    Rule(CONFLICT_409, RATE, verbs=frozenset({"create"}), user_agents=("kopf/",)),
]


@dataclass
class Run:
    state: dict[str, Any]
    creations: Creations
    seconds: dict[str, float]
    injected: dict[str, int]
    requests: int


def _quiet(
    proxy: FaultProxyThread, operator: OperatorThread, fleet: Fleet, seconds: float = 2.0
) -> None:
    """Wait until the operator is idle, has written nothing for ``seconds``, and kopf has no
    handler retry on record in ``status.kopf`` (the operator retries a failed handler's
    reconcile itself, so kopf should never have one: if it did, it would name an older spec)."""
    reconciler = operator.reconciler
    assert reconciler is not None

    def kopf_pending() -> bool:
        return any(
            ((serve.get("status") or {}).get("kopf") or {}).get("progress")
            for serve, _ in fleet.views()
        )

    wait_for(
        lambda: (
            reconciler.idle()
            and time.monotonic() - proxy.last_write_at(OPERATOR_UA) > seconds
            and not kopf_pending()
        ),
        timeout=60,
        what="the operator to be quiet",
    )


@pytest.fixture()
def scenario(
    tmp_path: Path,
    models_dir: Path,
    operator_config: OperatorConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[list[Rule], str], Run]]:
    """``run(rules, label)``: the scenario in an emulator of its own; runs may overlap."""
    starting = threading.Lock()  # KUBECONFIG is read once, as an operator starts

    def run(rules: list[Rule], label: str) -> Run:
        workdir = tmp_path / label
        workdir.mkdir()
        with EmulatedCluster(workdir / "kubeconfig", readiness="auto") as cluster:
            direct = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
            ext = kubernetes.client.ApiextensionsV1Api(direct)
            for crd in load_crds():
                ext.create_custom_resource_definition(crd)
            kubelet = Kubelet(cluster, {"/models": models_dir}, workdir)
            creations = Creations(cluster, NS)
            proxy = FaultProxyThread(
                cluster.url, workdir / "proxy-kubeconfig", rules, seed=SEED, hang=6
            )
            player = JobPlayer(kubelet, kubernetes.client.CoreV1Api(direct))
            with proxy, player:
                with starting:
                    monkeypatch.setenv("KUBECONFIG", str(proxy.kubeconfig))
                    operator = OperatorThread(operator_config, timeouts=FAST).start()
                try:
                    fleet = Fleet(cluster, direct, NS, [f"conv-{i:02d}" for i in range(COUNT)])
                    seconds = {}
                    fleet.create()
                    seconds["create"] = fleet.wait(lambda h: h is not None, PHASE_TIMEOUT, label)
                    (first,) = fleet.hashes()
                    fleet.patch(CHANGE)
                    seconds["change"] = fleet.wait(
                        lambda h: h not in (None, first), PHASE_TIMEOUT, f"{label} change"
                    )
                    fleet.patch(REVERT)
                    seconds["revert"] = fleet.wait(
                        lambda h: h == first, PHASE_TIMEOUT, f"{label} revert"
                    )
                    _quiet(proxy, operator, fleet)
                    state = end_state(cluster, NS)
                    injected, requests = proxy.call(lambda p: (dict(p.counts()), len(p.exchanges)))
                    assert operator.reconciler is not None
                    assert operator.reconciler.tracked() == COUNT
                finally:
                    operator.stop()
                assert operator.error is None, operator.error
        return Run(state, creations, seconds, injected, requests)

    yield run


def test_fifty_smolserves_converge_under_faults_to_the_fault_free_end_state(
    scenario: Callable[[list[Rule], str], Run], tmp_path: Path
) -> None:
    # Both runs at once (each in its own emulator): the faulty one mostly waits out retries.
    with LogRecords() as logs, concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = pool.submit(scenario, [], "clean"), pool.submit(scenario, RULES, "faulty")
        try:
            clean, faulty = (run.result() for run in runs)
        finally:
            logs.write(tmp_path / "operators.log")
    report = (
        f"seed {SEED}: {faulty.injected} in {faulty.requests} requests; phases "
        f"{ {k: round(v, 1) for k, v in faulty.seconds.items()} } s "
        f"(fault-free { ({k: round(v, 1) for k, v in clean.seconds.items()}) } s); "
        f"{logs.count('retrying in|will retry|failed temporarily')} retries logged"
    )
    print(report)
    assert logs.unhandled() == [], report
    assert set(faulty.injected) == {
        "error500", "error503", "throttle429", "conflict409", "timeout", "watchCut", "watchGone"
    }, report  # fmt: skip
    differ = differences(clean.state, faulty.state)
    assert differ == [], report + "\n" + "\n".join(differ)
    # No duplicates: nothing was created twice (a Job twice for one inputs hash, above all),
    # and no object was created that the fault-free run did not create.
    assert faulty.creations.beyond(clean.creations) == {}, report
    for child in CHILDREN:
        assert faulty.creations.of(child.plural) == clean.creations.of(child.plural), child.kind
    assert faulty.creations.of("replicasets") == clean.creations.of(
        "replicasets"
    )  # no extra rollout
