"""The emulator's kubelet: one node that every pod runs on, with a readiness policy.

A pod is scheduled (``Pending``, containers ``ContainerCreating``), starts ``start_delay``
seconds later (``Running``, containers started, init containers completed) and becomes Ready
when the policy says so:

- ``"auto"``: every container is ready ``ready_delay`` seconds after it started (the benchmark);
- ``"manual"``: never by itself; a test calls ``set_ready`` (the operator tests' default);
- a callable ``pod → seconds | None``, to decide per pod (``None``: manual for that pod).

The ``Ready`` condition is computed as the kubelet computes it: all containers ready *and*
every ``spec.readinessGates`` condition ``True`` in ``status.conditions``, as someone else
wrote it through ``pods/status`` (reason ``ContainersNotReady`` or ``ReadinessGatesNotReady``
otherwise, with the kubelet's messages). Conditions the kubelet does not own are kept as they
were written. A test ends a container with ``exit_container``: with ``restartPolicy: Always``
(or ``OnFailure`` and a non-zero code) it restarts (``restartCount`` + 1, ``lastState`` the
termination, not ready until the policy makes it ready again); otherwise it stays terminated
and the pod ends ``Succeeded`` or ``Failed``. A pod being deleted whose finalizers hold it
(a Job's pods) has its containers killed and ends ``Failed``.

Not emulated: probes (readiness is the policy's), image pulls, graceful termination (a pod
without finalizers goes the moment it is deleted), resource accounting, crash-loop back-off.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from .clock import Timer
from .objects import is_deleting, is_terminal

if TYPE_CHECKING:
    from .controllers import ControllerManager

Readiness = Literal["auto", "manual"] | Callable[[dict[str, Any]], float | None]

SCHEDULED = "PodScheduled"
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
KILLED = 137  # SIGKILL


class PodNotRunning(Exception):
    """A test acted on a pod's containers before they started or after they ended."""


def _condition(
    type_: str, true: bool, reason: str | None, message: str | None, before: dict | None, now: str
) -> dict[str, Any]:
    status = "True" if true else "False"
    cond: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None}
    kept = before is not None and before.get("status") == status
    cond["lastTransitionTime"] = before["lastTransitionTime"] if kept else now
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def kubelet_conditions(
    pod: dict[str, Any], status: dict[str, Any], now: str
) -> list[dict[str, Any]]:
    """The conditions the scheduler and the kubelet own, then everyone else's, unchanged."""
    spec = pod.get("spec") or {}
    phase = status.get("phase")
    before = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    statuses = {c["name"]: c for c in status.get("containerStatuses") or []}
    unready = [
        c["name"]
        for c in spec.get("containers") or []
        if not statuses.get(c["name"], {}).get("ready")
    ]
    started = phase != "Pending"
    init = [c["name"] for c in spec.get("initContainers") or []]
    initialized = started or not init
    if phase == "Succeeded":
        containers = (False, "PodCompleted", None)
    elif unready:
        containers = (
            False,
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    else:
        containers = (True, None, None)
    ready = containers
    if containers[0]:
        problems = []
        for gate in spec.get("readinessGates") or []:
            gate_type = gate.get("conditionType")
            cond = before.get(gate_type)
            if cond is None:
                problems.append(
                    f"corresponding condition of pod readiness gate {gate_type!r} does not exist."
                )
            elif cond.get("status") != "True":
                problems.append(
                    f'the status of pod readiness gate "{gate_type}" is not "True", '
                    f"but {cond.get('status')}"
                )
        if problems:
            ready = (False, "ReadinessGatesNotReady", ", ".join(problems))
    own = [
        _condition(
            "PodReadyToStartContainers",
            phase == "Running",
            None,
            None,
            before.get("PodReadyToStartContainers"),
            now,
        ),
        _condition(
            "Initialized",
            initialized,
            None if initialized else "ContainersNotInitialized",
            None if initialized else f"containers with incomplete status: [{' '.join(init)}]",
            before.get("Initialized"),
            now,
        ),
        _condition("Ready", *ready, before.get("Ready"), now),
        _condition("ContainersReady", *containers, before.get("ContainersReady"), now),
        _condition(SCHEDULED, True, None, None, before.get(SCHEDULED), now),
    ]
    others = [c for t, c in before.items() if t not in (*KUBELET_CONDITIONS, SCHEDULED)]
    return own + others


class Node:
    """Runs every pod of the emulated cluster (see the module docstring)."""

    def __init__(
        self,
        manager: ControllerManager,
        *,
        readiness: Readiness = "manual",
        start_delay: float = 0.05,
        ready_delay: float = 0.2,
    ) -> None:
        self.manager = manager
        self.readiness = readiness
        self.start_delay = start_delay
        self.ready_delay = ready_delay
        self._starts: dict[str, float] = {}  # pod uid → when it starts (clock time)
        self._timers: dict[str, list[Timer]] = {}  # pod uid → its pending timers

    @property
    def clock(self) -> Any:
        return self.manager.emulator.clock

    def _ready_after(self, pod: dict[str, Any]) -> float | None:
        if self.readiness == "auto":
            return self.ready_delay
        if self.readiness == "manual":
            return None
        return self.readiness(pod)

    def _later(self, pod: dict[str, Any], delay: float, action: Callable[[], None]) -> None:
        uid = pod["metadata"]["uid"]
        self._timers.setdefault(uid, []).append(self.clock.call_later(delay, action))

    def forget(self, uid: str) -> None:
        """The pod is gone: drop its timers."""
        self._starts.pop(uid, None)
        for timer in self._timers.pop(uid, []):
            timer.cancel()

    def _pod(self, namespace: str, name: str, uid: str | None = None) -> dict[str, Any] | None:
        pod = self.manager.emulator.get("pods", namespace, name)
        if pod is None or (uid is not None and pod["metadata"]["uid"] != uid):
            return None
        return pod

    def _write(self, pod: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        status["conditions"] = kubelet_conditions(pod, status, self.clock.stamp())
        return self.manager.emulator.commit("pods", {**pod, "status": status})

    # --- the pod's life ----------------------------------------------------------------------

    def sync(self, namespace: str, name: str) -> None:
        pod = self._pod(namespace, name)
        if pod is None or is_terminal(pod):
            return
        status = copy.deepcopy(pod.get("status") or {})
        uid = pod["metadata"]["uid"]
        if is_deleting(pod):
            self._kill(pod, status)
        elif not status.get("phase"):
            self._schedule(pod, status)
        elif status["phase"] == "Pending":
            if self.clock.now() >= self._starts.get(uid, 0.0):
                self._start(pod, status)
        else:
            self._write(pod, status)  # someone else's condition (a readiness gate) may matter

    def _schedule(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        waiting = {"waiting": {"reason": "ContainerCreating"}}
        status.update(
            phase="Pending",
            hostIP="10.0.0.1",
            startTime=self.clock.stamp(),
            containerStatuses=[
                self._container(c, waiting, ready=False, started=False)
                for c in pod["spec"].get("containers") or []
            ],
        )
        self._starts[meta["uid"]] = self.clock.now() + self.start_delay
        self._write(pod, status)
        self._later(
            pod,
            self.start_delay,
            lambda: self.manager.enqueue("pod", meta["namespace"], meta["name"]),
        )

    @staticmethod
    def _container(
        container: dict[str, Any],
        state: dict[str, Any],
        *,
        ready: bool,
        started: bool,
        restarts: int = 0,
        last: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": started,
            "restartCount": restarts,
            "state": state,
            "lastState": last or {},
        }

    def _start(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        now = self.clock.stamp()
        spec = pod["spec"]
        running = {"running": {"startedAt": now}}
        completed = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": now,
                "finishedAt": now,
            }
        }
        status.update(
            phase="Running",
            podIP=_pod_ip(pod["metadata"]["uid"]),
            containerStatuses=[
                self._container(c, running, ready=False, started=True)
                for c in spec.get("containers") or []
            ],
        )
        status["podIPs"] = [{"ip": status["podIP"]}]
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                self._container(c, completed, ready=True, started=False)
                for c in spec["initContainers"]
            ]
        self._write(pod, status)
        for container in spec.get("containers") or []:
            self._ready_in_time(pod, container["name"], 0)

    def _ready_in_time(self, pod: dict[str, Any], container: str, restarts: int) -> None:
        delay = self._ready_after(pod)
        if delay is None:
            return
        meta = pod["metadata"]

        def ready() -> None:
            live = self._pod(meta["namespace"], meta["name"], meta["uid"])
            if live is None or (live.get("status") or {}).get("phase") != "Running":
                return
            current = _container_status(live, container)
            if current and current["restartCount"] == restarts and "running" in current["state"]:
                self._set_ready(live, True, container)

        self._later(pod, delay, ready)

    def _kill(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        now = self.clock.stamp()
        for current in status.get("containerStatuses") or []:
            if "terminated" not in current.get("state", {}):
                current["state"] = {
                    "terminated": {"exitCode": KILLED, "reason": "Error", "finishedAt": now}
                }
            current.update(ready=False, started=False)
        codes = [
            c["state"]["terminated"]["exitCode"] for c in status.get("containerStatuses") or []
        ]
        status["phase"] = "Succeeded" if codes and not any(codes) else "Failed"
        self._write(pod, status)

    # --- what a test does to a pod -----------------------------------------------------------

    def _running(self, namespace: str, name: str) -> dict[str, Any]:
        pod = self._pod(namespace, name)
        phase = ((pod or {}).get("status") or {}).get("phase")
        if pod is None or phase != "Running":
            raise PodNotRunning(f"pod {namespace}/{name} is not running (phase {phase})")
        return pod

    def set_ready(
        self, namespace: str, name: str, ready: bool = True, container: str | None = None
    ) -> dict[str, Any]:
        """Mark the pod's containers (or one of them) ready or not ready, as probes would."""
        return self._set_ready(self._running(namespace, name), ready, container)

    def _set_ready(self, pod: dict[str, Any], ready: bool, container: str | None) -> dict[str, Any]:
        status = copy.deepcopy(pod["status"])
        for current in status.get("containerStatuses") or []:
            if container in (None, current["name"]) and "running" in current["state"]:
                current["ready"] = ready
        return self._write(pod, status)

    def exit_container(
        self,
        namespace: str,
        name: str,
        exit_code: int = 1,
        message: str = "",
        container: str | None = None,
    ) -> dict[str, Any]:
        """End the pod's containers (or one) with ``exit_code`` and a termination message;
        the restart policy decides whether they restart or the pod ends."""
        pod = self._running(namespace, name)
        status = copy.deepcopy(pod["status"])
        policy = pod["spec"].get("restartPolicy", "Always")
        now = self.clock.stamp()
        restarted = []
        for current in status.get("containerStatuses") or []:
            if container not in (None, current["name"]) or "running" not in current["state"]:
                continue
            ended = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": current["state"]["running"].get("startedAt", now),
                "finishedAt": now,
            }
            if message:
                ended["message"] = message
            if policy == "Always" or (policy == "OnFailure" and exit_code != 0):
                current.update(
                    restartCount=current["restartCount"] + 1,
                    lastState={"terminated": ended},
                    state={"running": {"startedAt": now}},
                    ready=False,
                )
                restarted.append((current["name"], current["restartCount"]))
            else:
                current.update(state={"terminated": ended}, ready=False, started=False)
        states = [c["state"] for c in status.get("containerStatuses") or []]
        if states and all("terminated" in s for s in states):
            failed = any(s["terminated"]["exitCode"] for s in states)
            status["phase"] = "Failed" if failed else "Succeeded"
        written = self._write(pod, status)
        for container_name, restarts in restarted:
            self._ready_in_time(written, container_name, restarts)
        return written


def _container_status(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    for current in (pod.get("status") or {}).get("containerStatuses") or []:
        if current["name"] == name:
            return current
    return None


def _pod_ip(uid: str) -> str:
    number = int(uid.replace("-", "")[:6], 16)
    return f"10.244.{(number >> 8) % 256}.{number % 254 + 1}"
