"""The operator process SIGKILLed at 30 points of a create and a rollout, restarted each time;
the template Job's pod SIGKILLed mid-publish.

The operator runs as a real process (``smolserve operator --standalone``) behind the proxy
(``support/faults.py``, here injecting nothing): the proxy counts the operator's writes (its
own client's and kopf's) and, right after the chosen write has taken effect in the emulator
and before its answer is delivered, SIGKILLs the process; the supervisor starts the next one
at once (``processes.py``). Kill points: in the first run, right after the Job's creation
(before its ConfigMap is published), after the Deployment's creation, after the template
change's Job, after the Deployment's patch of the rollout (before the status says so), twice;
in the other runs, at writes drawn at random (seeded) from all the writes of a run without
kills.

Every run converges to the end state of the run without kills, and at every moment: no Job
is created twice (one inputs hash, one Job), no Deployment ever mounts a template ConfigMap
that does not exist (only the Job creates one, after verification), and nothing is created
that the run without kills did not create. ``SMOLSERVE_KILL_SEED`` draws other points.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from smolserve import labels
from smolserve.manifests.server import mounted_template, served_template_hash
from smolserve.operator.kube import USER_AGENT
from support import EmulatedCluster, install_crds
from support.factories import TEST_JOB_IMAGE
from support.faults import Call, FaultProxyThread
from support.jobplayer import JobPlayer
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for

from .processes import Supervised, operator_env
from .scenario import CHANGE, Creations, Fleet, differences, end_state

SEED = int(os.environ.get("SMOLSERVE_KILL_SEED", "1201"))
NS = "kills"
RUNS = 6
KILLS_PER_RUN = 5
NAMES = ["smol", "other"]
OPERATOR_UA = (USER_AGENT, "kopf/")
PHASE_TIMEOUT = 120.0

KillPoint = Callable[[Call, int], bool]  # (the write, its number in the run) → kill after it?


def after(method: str, resource: str, nth: int = 1) -> KillPoint:
    """Right after the ``nth`` write ``method`` on ``resource`` (or the first write after it
    while an operator is running to be killed)."""
    seen = [0]

    def point(call: Call, _: int) -> bool:
        seen[0] += call.method == method and call.resource == resource
        return seen[0] >= nth

    return point


def at_write(number: int) -> KillPoint:
    return lambda _, index: index >= number


@dataclass
class Invariants:
    """What must hold at every moment (an emulator listener), in the order it was broken."""

    broken: list[str] = field(default_factory=list)

    def install(self, cluster: EmulatedCluster) -> None:
        def listen(emulator: Any) -> None:
            def check(group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
                if (group, plural) != ("apps", "deployments") or change == "DELETED":
                    return
                meta = obj["metadata"]
                name = mounted_template(obj)
                cm = emulator.get("configmaps", meta["namespace"], name) if name else None
                hash_label = ((cm or {}).get("metadata", {}).get("labels") or {}).get(
                    labels.TEMPLATE_HASH
                )
                if cm is None or hash_label != served_template_hash(obj):
                    self.broken.append(
                        f"Deployment {meta['name']} at {meta['resourceVersion']} serves "
                        f"{name!r}, which is not a published template of that hash"
                    )

            emulator.listeners.append(check)

        cluster.call(listen)


class Killer:
    """Counts the operator's writes through the proxy and kills it at its kill points."""

    def __init__(self, operator: Supervised, points: list[KillPoint]) -> None:
        self.operator = operator
        self.points = list(points)
        self.writes = 0
        self.kills: list[str] = []

    def after_upstream(self, call: Call, status: int) -> None:
        if call.method == "GET" or not call.user_agent.startswith(OPERATOR_UA):
            return
        self.writes += 1
        fired = [point(call, self.writes) for point in self.points]  # every point counts
        # A write still in flight from a process killed a moment ago finds none to kill.
        if fired and fired[0] and self.operator.kill():
            self.points.pop(0)
            self.kills.append(f"#{self.writes} {call.method} {call.resource} {call.name or ''}")


@dataclass
class Run:
    state: dict[str, Any]
    creations: Creations
    writes: int
    kills: list[str]
    restarts: int
    broken: list[str]
    log: str


@pytest.fixture()
def run_scenario(tmp_path: Path, models_dir: Path) -> Iterator[Callable[..., Run]]:
    def run(label: str, points: list[KillPoint]) -> Run:
        workdir = tmp_path / label
        workdir.mkdir()
        with EmulatedCluster(workdir / "kubeconfig", readiness="auto", gc_delay=0.5) as cluster:
            direct = install_crds(cluster)
            kubernetes.client.CoreV1Api(direct).create_namespace({"metadata": {"name": NS}})
            creations, invariants = Creations(cluster, NS), Invariants()
            invariants.install(cluster)
            kubelet = Kubelet(cluster, {"/models": models_dir}, workdir)
            with FaultProxyThread(cluster.url, workdir / "proxy-kubeconfig") as proxy:
                env = operator_env(proxy.kubeconfig, SMOLSERVE_TEMPLATE_JOB_IMAGE=TEST_JOB_IMAGE)
                operator = Supervised(
                    ["--standalone", "--no-scanning", "--namespace", NS], env, workdir
                )
                killer = Killer(operator, points)
                proxy.proxy.after_upstream.append(killer.after_upstream)
                fleet = Fleet(cluster, direct, NS, NAMES)
                try:
                    with JobPlayer(kubelet, kubernetes.client.CoreV1Api(direct)):
                        operator.start()
                        fleet.create()
                        fleet.wait(lambda h: h is not None, PHASE_TIMEOUT, f"{label} create")
                        (first,) = fleet.hashes()
                        fleet.patch(CHANGE)
                        fleet.wait(lambda h: h not in (None, first), PHASE_TIMEOUT, label)
                        # A kill after the last write needed: its successor must be quiet too.
                        wait_for(
                            lambda: operator.restarts == len(killer.kills),
                            what=f"a restart after each kill: {killer.kills}",
                        )
                        _quiet(proxy)
                        fleet.wait(lambda h: h not in (None, first), PHASE_TIMEOUT, label)
                        state = end_state(cluster, NS)
                finally:
                    operator.stop()
        return Run(
            state,
            creations,
            killer.writes,
            killer.kills,
            operator.restarts,
            invariants.broken,
            operator.log_text(),
        )

    yield run


def _quiet(proxy: FaultProxyThread, seconds: float = 1.5) -> None:
    wait_for(
        lambda: time.monotonic() - proxy.last_write_at(OPERATOR_UA) > seconds,
        timeout=60,
        what="quiet",
    )


def _check(run: Run, reference: Run) -> None:
    assert run.broken == [], run.kills
    differ = differences(reference.state, run.state)
    assert differ == [], "\n".join([str(run.kills), *differ])
    assert run.creations.beyond(reference.creations) == {}, run.kills
    assert set(run.creations.counts) == set(reference.creations.counts), run.kills
    assert "Traceback" not in run.log, run.log[-3000:]


def test_the_operator_killed_at_30_points_converges_every_time(
    run_scenario: Callable[..., Run],
) -> None:
    began = time.monotonic()
    reference = run_scenario("reference", [])
    assert reference.broken == [] and reference.restarts == 0
    rng = random.Random(SEED)
    named = [  # in the order they come in a run
        after("POST", "jobs"),  # the Job exists, its ConfigMap does not yet
        after("POST", "deployments"),  # the Deployment exists, the status does not say so
        after("POST", "jobs", 3),  # the change's first Job (both SmolServes made one before)
        after("PATCH", "deployments"),  # the rollout's patch, before its status write
        after("PATCH", "deployments", 2),  # the other SmolServe's
    ]
    plans = [named] + [
        [at_write(n) for n in sorted(rng.sample(range(1, reference.writes - 9), KILLS_PER_RUN))]
        for _ in range(RUNS - 1)
    ]
    kills, runs = [], 0
    while plans:
        points = plans.pop(0)
        result = run_scenario(f"run-{runs}", points)
        runs += 1
        assert result.restarts == len(result.kills), result.kills
        _check(result, reference)
        kills += result.kills
        # A run with kills can end with fewer writes than one without (a restarted operator
        # does not post the Events of a transition its predecessor wrote the status of):
        # points past its end go to one more run, drawn again.
        missed = len(points) - len(result.kills)
        if missed and runs < 2 * RUNS:
            drawn = sorted(rng.sample(range(1, result.writes + 1), missed))
            plans.append([at_write(n) for n in drawn])
    assert len(kills) == RUNS * KILLS_PER_RUN, kills
    print(f"{len(kills)} kills in {runs} runs, {time.monotonic() - began:.0f} s; "
          f"{reference.writes} writes in a run without kills; kills: {kills}")  # fmt: skip


# --- the template Job's pod, killed mid-publish ---------------------------------------------


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_template_job_killed_mid_publish_leaves_no_half_published_configmap(
    moment: str,
    tmp_path: Path,
    models_dir: Path,
    operator_config: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Job's container runs the real ``smolserve job publish-template`` as a process,
    through the proxy, which SIGKILLs it at its ConfigMap create: ``before`` it reaches the
    API server (the request is dropped), or ``after`` it took effect (its answer is lost).
    The Job controller starts the retry pod, whose command runs to the end: one ConfigMap,
    created once, whole, never changed afterwards; the Deployment serves it."""
    with EmulatedCluster(tmp_path / "kubeconfig", readiness="auto") as cluster:
        direct = install_crds(cluster)
        kubelet = Kubelet(cluster, {"/models": models_dir}, tmp_path)
        changes: list[tuple[str, dict[str, Any]]] = []

        def listen(emulator: Any) -> None:
            def record(group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
                component = (obj["metadata"].get("labels") or {}).get(labels.COMPONENT)
                if plural == "configmaps" and component == "template":
                    changes.append((change, copy.deepcopy(obj)))

            emulator.listeners.append(record)

        cluster.call(listen)
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))  # the operator: direct
        with FaultProxyThread(cluster.url, tmp_path / "proxy-kubeconfig") as proxy:
            pods: list[subprocess.Popen[bytes]] = []

            def is_publish(call: Call) -> bool:
                return call.method == "POST" and call.resource == "configmaps"

            def kill_first_pod(call: Call, *_: Any) -> bool:
                if is_publish(call) and len(pods) == 1 and pods[0].poll() is None:
                    os.kill(pods[0].pid, signal.SIGKILL)
                    return True
                return False

            if moment == "before":
                proxy.proxy.on_request.append(kill_first_pod)
            else:
                proxy.proxy.after_upstream.append(kill_first_pod)
            operator = OperatorThread(operator_config).start()
            try:
                fleet = Fleet(cluster, direct, "default", ["smol"])
                fleet.create()
                job = wait_for(lambda: cluster.snapshot("jobs", "batch"), what="the Job")[0]
                codes = []
                for attempt in range(2):
                    running = kubelet.wait_running("default", "Job", job["metadata"]["name"])
                    pod = running[0]
                    log = tmp_path / f"termination-{attempt}.log"
                    args = [kubelet._local(a) for a in pod["spec"]["containers"][0]["args"]]
                    env = operator_env(proxy.kubeconfig, SMOLSERVE_NAMESPACE="default")
                    command = [sys.executable, "-m", "smolserve.cli", *args]
                    command += ["--termination-log", str(log)]
                    pods.append(
                        subprocess.Popen(
                            command,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                    code = pods[-1].wait(120)
                    codes.append(code)
                    message = log.read_text() if log.exists() else ""
                    exit_code = 128 + signal.SIGKILL if code == -signal.SIGKILL else code
                    kubelet.exit_container("default", pod["metadata"]["name"], exit_code, message)
                assert codes == [-signal.SIGKILL, 0]
                fleet.wait(lambda h: h is not None, 30, "the Deployment on the template")
            finally:
                operator.stop()
        assert [change for change, _ in changes] == ["ADDED"]  # created once, never touched
        cm = changes[0][1]
        text = cm["data"]["chat_template.jinja"]
        assert cm["immutable"] is True
        assert (
            hashlib.sha256(text.encode()).hexdigest()
            == cm["metadata"]["annotations"]["smolserve.dev/template-sha256"]
        )  # whole: exactly the text it names
        posts = [e.status for e in proxy.call(lambda p: list(p.exchanges)) if is_publish(e.call)]
        # before: the first create never arrived, the retry's made it; after: the first took
        # effect (its answer lost with the pod), the retry found it (409) and took it as its own.
        assert posts == {"before": [None, 201], "after": [201, 409]}[moment]
