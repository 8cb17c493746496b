"""The controllers that drive status on a real cluster, run beside the emulator's store.

``ControllerManager`` listens to every change in the emulator and, on the emulator's loop,
works through a de-duplicated queue of objects to sync, one at a time, as
kube-controller-manager's controllers do (each write is its own change, so a watcher sees the
status move in steps). Ported from the real controllers, in what an operator can observe:

- **Deployment** (``DeploymentController``): a ReplicaSet per pod template, named
  ``<deployment>-<pod-template-hash>`` (FNV-32a of the template, encoded as Kubernetes does),
  with the hash label, a controller ownerReference, the Deployment's annotations and the
  ``deployment.kubernetes.io/revision``, ``desired-replicas`` and ``max-replicas``
  annotations; the Deployment's own revision annotation. Rolling updates honour ``maxSurge``
  (percentages rounded up) and ``maxUnavailable`` (rounded down; 1 if both come to 0),
  scaling old ReplicaSets down as new pods become available; ``Recreate`` scales the old ones to
  0 and waits for their pods to be gone. A change of ``replicas`` alone scales (proportionally
  during a rollout) without a new ReplicaSet; a pod template seen before brings its old
  ReplicaSet back (revision bumped). ``revisionHistoryLimit`` prunes old, empty ReplicaSets.
  Status as ``syncRolloutStatus`` writes it: ``observedGeneration``, ``replicas``,
  ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``, ``unavailableReplicas``;
  ``Available`` (``MinimumReplicasAvailable``/``MinimumReplicasUnavailable``) and
  ``Progressing`` (``NewReplicaSetCreated``, ``FoundNewReplicaSet``, ``ReplicaSetUpdated``,
  ``NewReplicaSetAvailable``, and ``ProgressDeadlineExceeded`` once
  ``progressDeadlineSeconds`` pass without progress: advance the emulator's clock to get there
  in a test). ``paused`` is ignored.
- **ReplicaSet**: pods from the template (``generateName: <replicaset>-``, its labels and
  annotations, a controller ownerReference), orphans matching the selector adopted, surplus
  pods deleted (not ready and newest first); status ``replicas``, ``fullyLabeledReplicas``,
  ``readyReplicas``, ``availableReplicas`` (ready for ``minReadySeconds``), ``observedGeneration``.
- **Job** (``JobController``, NonIndexed): ``startTime`` and a pod ``<job>-<random>`` labelled
  ``job-name``, ``controller-uid`` and their ``batch.kubernetes.io/`` forms, held by the
  ``batch.kubernetes.io/job-tracking`` finalizer until counted; a finished pod counts as
  ``succeeded`` or ``failed``; a failure within ``backoffLimit`` gets a new pod (after
  ``job_backoff * 2**(failures - 1)`` seconds); the end comes as 1.31+ write it, first the
  interim condition (``SuccessCriteriaMet``/``FailureTarget``, reasons ``CompletionsReached``,
  ``BackoffLimitExceeded``, ``DeadlineExceeded`` for ``activeDeadlineSeconds``), then, once no
  pod is terminating, ``Complete`` (with ``completionTime``) or ``Failed``.
  ``ttlSecondsAfterFinished`` is ignored (finished Jobs stay), as are ``parallelism`` > 1
  semantics beyond counting, pod failure policies, success policies and suspension.
- **the kubelet** (``node.Node``): pod phases and readiness, by policy.

The API server's defaulting is not emulated, so absent fields read as their defaults here
(``replicas`` 1, ``RollingUpdate`` 25 %/25 %, ``revisionHistoryLimit`` 10,
``progressDeadlineSeconds`` 600; Job ``completions``/``parallelism`` 1, ``backoffLimit`` 6).
Controllers post no Events. A controller's unexpected exception is recorded in
``emulator.errors`` (the test cluster fails on it) instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import struct
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import kmock

from .clock import Clock, Timer
from .node import Node, Readiness
from .objects import (
    controlled_by,
    controller_of,
    controller_ref,
    find_condition,
    is_active,
    is_deleting,
    is_ready,
    is_terminal,
    is_true,
    selector_matches,
)

if TYPE_CHECKING:
    from .emulator import Emulator

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
NOT_COPIED_TO_REPLICASETS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
NO_DEADLINE = 2**31 - 1
JOB_TRACKING = "batch.kubernetes.io/job-tracking"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Deployment condition reasons, as the real controller spells them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


class _Retry(Exception):
    """Sync again (a pod-template-hash collision bumped ``collisionCount``)."""


# --- pure rollout arithmetic -------------------------------------------------------------------


def pod_template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """FNV-32a over the template (and the collision count), encoded without vowels."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count) + bytes(4)
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in str(value))


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """An int-or-percent against ``total``, as ``GetScaledValueFromIntOrPercent`` does."""
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: {value!r} is not a percentage")
    product = int(value[:-1]) * total
    return -(-product // 100) if round_up else product // 100


def replicas(obj: dict[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else value


def _status(obj: dict[str, Any] | None, key: str) -> int:
    return ((obj or {}).get("status") or {}).get(key) or 0


def is_rolling(d: dict[str, Any]) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def fenceposts(d: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against the replicas: surge rounds up, unavailable
    down, and when both come to 0, 1 pod may be unavailable."""
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge", "25%"), replicas(d), True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas(d), False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: dict[str, Any]) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: dict[str, Any]) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


def progress_deadline(d: dict[str, Any]) -> int | None:
    seconds = d["spec"].get("progressDeadlineSeconds", 600)
    return None if seconds is None or seconds == NO_DEADLINE else seconds


def revision(rs: dict[str, Any]) -> int:
    raw = (rs["metadata"].get("annotations") or {}).get(REVISION, "")
    return int(raw) if raw.isdigit() else 0


def deployment_complete(d: dict[str, Any], status: dict[str, Any]) -> bool:
    want = replicas(d)
    return (
        (status.get("updatedReplicas") or 0) == want
        and (status.get("replicas") or 0) == want
        and (status.get("availableReplicas") or 0) == want
        and (status.get("observedGeneration") or 0) >= d["metadata"].get("generation", 1)
    )


def deployment_progressing(d: dict[str, Any], status: dict[str, Any]) -> bool:
    old = d.get("status") or {}
    old_old = (old.get("replicas") or 0) - (old.get("updatedReplicas") or 0)
    new_old = (status.get("replicas") or 0) - (status.get("updatedReplicas") or 0)
    return (
        (status.get("updatedReplicas") or 0) > (old.get("updatedReplicas") or 0)
        or new_old < old_old
        or (status.get("readyReplicas") or 0) > (old.get("readyReplicas") or 0)
        or (status.get("availableReplicas") or 0) > (old.get("availableReplicas") or 0)
    )


def _template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return template


def _created(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("creationTimestamp", ""), obj["metadata"]["name"]


def set_condition(
    status: dict[str, Any], type_: str, true: bool, reason: str, message: str, now: str
) -> None:
    """``SetDeploymentCondition``: the same status and reason changes nothing; the same
    status keeps its ``lastTransitionTime``; the condition moves to the end."""
    value = "True" if true else "False"
    current = find_condition(status, type_)
    if current and current["status"] == value and current.get("reason") == reason:
        return
    cond = {
        "type": type_,
        "status": value,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
    if current and current["status"] == value:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_] + [
        cond
    ]


def _without_zeros(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if v not in (0, None, [])}


# --- the manager -------------------------------------------------------------------------------


class ControllerManager:
    """The controllers and the node, run on the emulator's loop (an async context manager)."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        readiness: Readiness = "manual",
        start_delay: float = 0.05,
        ready_delay: float = 0.2,
        job_backoff: float = 0.0,
    ) -> None:
        self.emulator = emulator
        self.node = Node(
            self, readiness=readiness, start_delay=start_delay, ready_delay=ready_delay
        )
        self.deployments = DeploymentController(self)
        self.replicasets = ReplicaSetController(self)
        self.jobs = JobController(self, backoff=job_backoff)
        self._handlers: dict[str, Callable[[str, str], None]] = {
            "deployment": self.deployments.sync,
            "replicaset": self.replicasets.sync,
            "job": self.jobs.sync,
            "job-pod": self.jobs.release_pod,
            "pod": self.node.sync,
        }
        self._queue: dict[tuple[str, str, str], None] = {}  # insertion-ordered, de-duplicated
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timers: dict[tuple[str, str, str], Timer] = {}

    @property
    def clock(self) -> Clock:
        return self.emulator.clock

    async def __aenter__(self) -> ControllerManager:
        self.emulator.listeners.append(self._on_change)
        self._task = asyncio.create_task(self._work(), name="emulated-controllers")
        for key in (
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("batch", "jobs"),
            ("", "pods"),
        ):
            for obj in self.emulator.objects(key[1], key[0]):
                self._on_change(*key, "ADDED", obj)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.emulator.listeners.remove(self._on_change)
        for timer in self._timers.values():
            timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- the work queue ----------------------------------------------------------------------

    def enqueue(self, handler: str, namespace: str, name: str) -> None:
        self._queue[handler, namespace, name] = None
        self._wake.set()

    def enqueue_at(self, when: float, handler: str, namespace: str, name: str) -> None:
        """Sync again at clock time ``when`` (one timer per object and handler: the earliest)."""
        key = (handler, namespace, name)
        current = self._timers.get(key)
        if current is not None and current.when <= when and current in self.clock._timers:
            return
        if current is not None:
            current.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.enqueue(*key)

        self._timers[key] = self.clock.call_at(when, fire)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                key = next(iter(self._queue))
                del self._queue[key]
                try:
                    self._handlers[key[0]](key[1], key[2])
                except _Retry:
                    self.enqueue(*key)
                except Exception:
                    self.emulator.errors.append(f"{key}: {traceback.format_exc()}")
                await asyncio.sleep(0)  # let the API serve requests between two syncs

    def _on_change(self, group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        owner = controller_of(obj)
        if (group, plural) == ("apps", "deployments"):
            self.enqueue("deployment", namespace, name)
        elif (group, plural) == ("apps", "replicasets"):
            self.enqueue("replicaset", namespace, name)
            if owner is not None and owner.get("kind") == "Deployment":
                self.enqueue("deployment", namespace, owner["name"])
            elif owner is None:  # an orphan: a Deployment may adopt it
                for d in self.list("deployments", "apps", namespace):
                    if selector_matches(d["spec"].get("selector"), meta.get("labels") or {}):
                        self.enqueue("deployment", namespace, d["metadata"]["name"])
        elif (group, plural) == ("batch", "jobs"):
            self.enqueue("job", namespace, name)
        elif (group, plural) == ("", "pods"):
            if change == "DELETED":
                self.node.forget(meta["uid"])
            else:
                self.enqueue("pod", namespace, name)
                if JOB_TRACKING in (meta.get("finalizers") or []):
                    self.enqueue("job-pod", namespace, name)
            if owner is not None and owner.get("kind") == "ReplicaSet":
                self.enqueue("replicaset", namespace, owner["name"])
            elif owner is not None and owner.get("kind") == "Job":
                self.enqueue("job", namespace, owner["name"])
            elif owner is None:
                for rs in self.list("replicasets", "apps", namespace):
                    if selector_matches(rs["spec"].get("selector"), meta.get("labels") or {}):
                        self.enqueue("replicaset", namespace, rs["metadata"]["name"])

    def settled(self) -> bool:
        """Nothing queued and no pod waiting to start: until a timer or a test acts, nothing
        more will happen."""
        if self._queue:
            return False
        pods = self.emulator.objects("pods")
        return all((p.get("status") or {}).get("phase") not in (None, "Pending") for p in pods)

    # --- store access ------------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str, group: str = "") -> dict[str, Any] | None:
        return self.emulator.get(plural, namespace, name, group)

    def list(self, plural: str, group: str, namespace: str) -> list[dict[str, Any]]:
        return list(self.emulator.stores[group, plural].by_namespace.get(namespace, {}).values())

    def controlled(
        self, plural: str, group: str, namespace: str, *owners: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """The namespace's objects that these owners control (None: those no controller owns;
        an adopting controller looks at both), in creation order, as ``list`` has them."""
        uids = [None if o is None else o["metadata"]["uid"] for o in owners]
        return self.emulator.stores[group, plural].controlled(namespace, *uids)

    def write(self, plural: str, obj: dict[str, Any], group: str = "") -> None:
        """Commit ``obj`` and refresh it in place with what was stored."""
        stored = self.emulator.commit(plural, obj, group)
        obj.clear()
        obj.update(copy.deepcopy(stored))

    # --- what tests read ---------------------------------------------------------------------

    def replicasets_of(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        """The Deployment's ReplicaSets, oldest revision first (copies)."""
        d = self.get("deployments", namespace, deployment, "apps")
        if d is None:
            return []
        owned = self.controlled("replicasets", "apps", namespace, d)
        return copy.deepcopy(sorted(owned, key=lambda rs: (revision(rs), _created(rs))))

    def pods_of(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """The pods a ReplicaSet, a Job or a Deployment (through its ReplicaSets) controls."""
        if kind == "Deployment":
            owners = self.replicasets_of(namespace, name)
        else:
            plural, group = {"ReplicaSet": ("replicasets", "apps"), "Job": ("jobs", "batch")}[kind]
            owner = self.get(plural, namespace, name, group)
            owners = [owner] if owner is not None else []
        pods = self.controlled("pods", "", namespace, *owners)
        return copy.deepcopy(sorted(pods, key=_created))


# --- Deployment --------------------------------------------------------------------------------


class DeploymentController:
    def __init__(self, manager: ControllerManager) -> None:
        self.m = manager

    def _now(self) -> str:
        return self.m.clock.stamp()

    def sync(self, namespace: str, name: str) -> None:
        live = self.m.get("deployments", namespace, name, "apps")
        if live is None:
            return
        d = copy.deepcopy(live)
        selector = d["spec"].get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            status = d.setdefault("status", {})
            if status.get("observedGeneration", 0) < d["metadata"].get("generation", 1):
                status["observedGeneration"] = d["metadata"].get("generation", 1)
                self.m.write("deployments", d, "apps")
            return
        rss = self._replicasets(d)
        if is_deleting(d):
            new, old = self._new_and_old(d, rss, create=False)
            self._sync_status(d, [*old, *([new] if new else [])], new)
        elif self._is_scaling_event(d, rss):
            new, old = self._new_and_old(d, rss, create=False)
            self._scale(d, new, old)
            self._sync_status(d, [*old, *([new] if new else [])], new)
        elif is_rolling(d):
            self._rolling(d, rss)
        else:
            self._recreate(d, rss)

    # --- ReplicaSets -------------------------------------------------------------------------

    def _replicasets(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        """Its ReplicaSets: owned ones that still match, plus orphans it adopts."""
        selector = d["spec"]["selector"]
        owned = []
        namespace = d["metadata"]["namespace"]
        for live in self.m.controlled("replicasets", "apps", namespace, d, None):
            rs = copy.deepcopy(live)
            ref = controller_of(rs)
            matches = selector_matches(selector, rs["metadata"].get("labels") or {})
            if ref is None and matches and not is_deleting(rs) and not is_deleting(d):
                refs = rs["metadata"].setdefault("ownerReferences", [])
                refs.append(controller_ref(d))
                self.m.write("replicasets", rs, "apps")
                owned.append(rs)
            elif ref is not None and ref["uid"] == d["metadata"]["uid"]:
                if matches:
                    owned.append(rs)
                else:  # released: it no longer matches the selector
                    rs["metadata"]["ownerReferences"] = [
                        r for r in rs["metadata"]["ownerReferences"] if r is not ref
                    ]
                    self.m.write("replicasets", rs, "apps")
        return owned

    def _new_and_old(
        self, d: dict[str, Any], rss: list[dict[str, Any]], *, create: bool
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        template = _template_without_hash(d["spec"]["template"])
        same = [
            rs
            for rs in sorted(rss, key=_created)
            if _template_without_hash(rs["spec"]["template"]) == template
        ]
        existing = same[0] if same else None
        old = [rs for rs in rss if rs is not existing]
        return self._new_replicaset(d, existing, old, create), old

    def _copy_annotations(self, d: dict[str, Any], rs: dict[str, Any]) -> None:
        annotations = rs["metadata"].setdefault("annotations", {})
        for key, value in (d["metadata"].get("annotations") or {}).items():
            if key not in NOT_COPIED_TO_REPLICASETS:
                annotations[key] = value

    def _set_revision(self, rs: dict[str, Any], new_revision: int) -> None:
        annotations = rs["metadata"].setdefault("annotations", {})
        old = annotations.get(REVISION)
        if revision(rs) < new_revision:
            annotations[REVISION] = str(new_revision)
            if old:  # a template seen before: keep the revisions it had
                history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
                annotations[REVISION_HISTORY] = ",".join([*history, old])

    def _set_replica_annotations(self, d: dict[str, Any], rs: dict[str, Any]) -> bool:
        annotations = rs["metadata"].setdefault("annotations", {})
        wanted = {
            DESIRED_REPLICAS: str(replicas(d)),
            MAX_REPLICAS: str(replicas(d) + max_surge(d)),
        }
        changed = any(annotations.get(k) != v for k, v in wanted.items())
        annotations.update(wanted)
        return changed

    def _deployment_revision(self, d: dict[str, Any], value: str) -> bool:
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(REVISION) == value:
            return False
        annotations[REVISION] = value
        return True

    def _new_replicaset(
        self,
        d: dict[str, Any],
        existing: dict[str, Any] | None,
        old: list[dict[str, Any]],
        create: bool,
    ) -> dict[str, Any] | None:
        new_revision = max((revision(rs) for rs in old), default=0) + 1
        status = d.setdefault("status", {})
        deadline = progress_deadline(d)
        if existing is not None:
            before = copy.deepcopy(existing)
            self._copy_annotations(d, existing)
            self._set_revision(existing, new_revision)
            min_ready = d["spec"].get("minReadySeconds", 0)
            if existing["spec"].get("minReadySeconds", 0) != min_ready:
                existing["spec"]["minReadySeconds"] = min_ready
            if existing != before:
                self.m.write("replicasets", existing, "apps")
            changed = self._deployment_revision(d, str(revision(existing)))
            if deadline is not None and find_condition(status, "Progressing") is None:
                message = f'Found new replica set "{existing["metadata"]["name"]}"'
                set_condition(status, "Progressing", True, FOUND_NEW_RS, message, self._now())
                changed = True
            if changed:
                self.m.write("deployments", d, "apps")
            return existing
        if not create:
            return None
        meta = d["metadata"]
        template = copy.deepcopy(d["spec"]["template"])
        template_hash = pod_template_hash(template, status.get("collisionCount"))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
        rs: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{template_hash}",
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        rs["spec"]["replicas"] = self._new_replicas(d, [*old, rs], rs)
        self._copy_annotations(d, rs)
        self._set_revision(rs, new_revision)
        self._set_replica_annotations(d, rs)
        try:
            created = copy.deepcopy(
                self.m.emulator.create("replicasets", meta["namespace"], rs, "apps")
            )
        except kmock.KubernetesError as exc:
            if exc.status != 409:
                raise
            clash = self.m.get("replicasets", meta["namespace"], rs["metadata"]["name"], "apps")
            if clash is None or not controlled_by(clash, d):
                status["collisionCount"] = status.get("collisionCount", 0) + 1
                self.m.write("deployments", d, "apps")
                raise _Retry from exc
            return copy.deepcopy(clash)
        changed = self._deployment_revision(d, str(new_revision))
        if deadline is not None:
            message = f'Created new replica set "{created["metadata"]["name"]}"'
            set_condition(status, "Progressing", True, NEW_RS_CREATED, message, self._now())
            changed = True
        if changed:
            self.m.write("deployments", d, "apps")
        return created

    def _new_replicas(
        self, d: dict[str, Any], all_rss: list[dict[str, Any]], new: dict[str, Any]
    ) -> int:
        """How far the new ReplicaSet may grow now (``NewRSNewReplicas``)."""
        if not is_rolling(d):
            return replicas(d)
        rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = scaled_value(rolling.get("maxSurge", "25%"), replicas(d), True)
        current = sum(replicas(rs) for rs in all_rss)
        most = replicas(d) + surge
        if current >= most:
            return replicas(new)
        return replicas(new) + min(most - current, replicas(d) - replicas(new))

    def _scale_to(self, d: dict[str, Any], rs: dict[str, Any], size: int) -> bool:
        """Scale a ReplicaSet (and refresh its replica annotations); True if its size changed."""
        resized = replicas(rs) != size
        if self._set_replica_annotations(d, rs) or resized:
            rs["spec"]["replicas"] = size
            self.m.write("replicasets", rs, "apps")
        return resized

    def _scale_if_needed(self, d: dict[str, Any], rs: dict[str, Any], size: int) -> bool:
        return replicas(rs) != size and self._scale_to(d, rs, size)

    def _is_scaling_event(self, d: dict[str, Any], rss: list[dict[str, Any]]) -> bool:
        new, old = self._new_and_old(d, rss, create=False)
        for rs in [*old, *([new] if new else [])]:
            desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
            if replicas(rs) > 0 and desired is not None and int(desired) != replicas(d):
                return True
        return False

    def _scale(
        self, d: dict[str, Any], new: dict[str, Any] | None, old: list[dict[str, Any]]
    ) -> None:
        """A change of replicas: the one active ReplicaSet takes it, else proportionally."""
        active = [rs for rs in [*old, *([new] if new else [])] if replicas(rs) > 0]
        if len(active) <= 1:
            target = active[0] if active else new or max(old, key=_created, default=None)
            if target is not None and replicas(target) != replicas(d):
                self._scale_to(d, target, replicas(d))
            return
        if new is not None and self._saturated(d, new):
            for rs in old:
                if replicas(rs) > 0:
                    self._scale_to(d, rs, 0)
            return
        if not is_rolling(d):
            return
        allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
        to_add = allowed - sum(replicas(rs) for rs in active)
        newer_first = sorted(active, key=_created, reverse=to_add > 0)
        ordered = sorted(newer_first, key=replicas, reverse=True)
        added, sizes = 0, {}
        for rs in ordered:
            proportion = self._proportion(d, rs, to_add, added) if to_add else 0
            sizes[rs["metadata"]["name"]] = replicas(rs) + proportion
            added += proportion
        if ordered and to_add:
            first = ordered[0]["metadata"]["name"]
            sizes[first] = max(sizes[first] + to_add - added, 0)
        for rs in ordered:
            self._scale_to(d, rs, sizes[rs["metadata"]["name"]])

    def _saturated(self, d: dict[str, Any], rs: dict[str, Any]) -> bool:
        desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
        return (
            desired == str(replicas(d))
            and replicas(rs) == replicas(d)
            and _status(rs, "availableReplicas") == replicas(d)
        )

    def _proportion(self, d: dict[str, Any], rs: dict[str, Any], to_add: int, added: int) -> int:
        if replicas(rs) == 0 or to_add == added:
            return 0
        if replicas(d) == 0:
            fraction = -replicas(rs)
        else:
            before = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS, "")
            base = int(before) if before.isdigit() and int(before) else _status(d, "replicas")
            if not base:
                return 0
            most = replicas(d) + max_surge(d)
            fraction = int(replicas(rs) * most / base + 0.5) - replicas(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # --- strategies --------------------------------------------------------------------------

    def _rolling(self, d: dict[str, Any], rss: list[dict[str, Any]]) -> None:
        new, old = self._new_and_old(d, rss, create=True)
        assert new is not None
        all_rss = [*old, new]
        if self._reconcile_new(d, all_rss, new) or self._reconcile_old(d, all_rss, old, new):
            self._sync_rollout_status(d, all_rss, new)
            return
        if deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, all_rss, new)

    def _reconcile_new(
        self, d: dict[str, Any], all_rss: list[dict[str, Any]], new: dict[str, Any]
    ) -> bool:
        if replicas(new) == replicas(d):
            return False
        if replicas(new) > replicas(d):
            return self._scale_if_needed(d, new, replicas(d))
        return self._scale_if_needed(d, new, self._new_replicas(d, all_rss, new))

    def _reconcile_old(
        self,
        d: dict[str, Any],
        all_rss: list[dict[str, Any]],
        old: list[dict[str, Any]],
        new: dict[str, Any],
    ) -> bool:
        active_old = [rs for rs in old if replicas(rs) > 0]
        if not active_old:
            return False
        min_available = replicas(d) - max_unavailable(d)
        new_unavailable = replicas(new) - _status(new, "availableReplicas")
        most = sum(replicas(rs) for rs in all_rss) - min_available - new_unavailable
        if most <= 0:
            return False
        cleaned = 0  # first the old pods that are not available anyway
        for rs in sorted(active_old, key=_created):
            unhealthy = replicas(rs) - _status(rs, "availableReplicas")
            if cleaned >= most or replicas(rs) == 0 or unhealthy <= 0:
                continue
            step = min(most - cleaned, unhealthy)
            self._scale_if_needed(d, rs, replicas(rs) - step)
            cleaned += step
        scaled = 0  # then as many available ones as availability allows
        available = sum(_status(rs, "availableReplicas") for rs in all_rss)
        if available > min_available:
            budget = available - min_available
            for rs in sorted(active_old, key=_created):
                if scaled >= budget or replicas(rs) == 0:
                    continue
                step = min(replicas(rs), budget - scaled)
                self._scale_if_needed(d, rs, replicas(rs) - step)
                scaled += step
        return cleaned + scaled > 0

    def _recreate(self, d: dict[str, Any], rss: list[dict[str, Any]]) -> None:
        new, old = self._new_and_old(d, rss, create=False)
        scaled_down = False
        for rs in old:
            if replicas(rs) > 0:
                scaled_down |= self._scale_if_needed(d, rs, 0)
        all_rss = [*old, *([new] if new else [])]
        if scaled_down or self._old_pods_running(d, old):
            self._sync_rollout_status(d, all_rss, new)
            return
        if new is None:
            new, old = self._new_and_old(d, rss, create=True)
            assert new is not None
            all_rss = [*old, new]
        self._scale_if_needed(d, new, replicas(d))
        if deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old)
        self._sync_rollout_status(d, all_rss, new)

    def _old_pods_running(self, d: dict[str, Any], old: list[dict[str, Any]]) -> bool:
        if sum(_status(rs, "replicas") for rs in old) > 0:
            return True
        pods = self.m.controlled("pods", "", d["metadata"]["namespace"], *old)
        return any(not is_terminal(p) for p in pods)

    def _cleanup(self, d: dict[str, Any], old: list[dict[str, Any]]) -> None:
        """``revisionHistoryLimit``: delete the oldest empty ReplicaSets beyond it."""
        limit = d["spec"].get("revisionHistoryLimit", 10)
        if limit is None:
            return
        cleanable = [rs for rs in old if not is_deleting(rs)]
        surplus = len(cleanable) - limit
        for rs in sorted(cleanable, key=lambda rs: (revision(rs), _created(rs)))[: max(surplus, 0)]:
            observed = _status(rs, "observedGeneration")
            if _status(rs, "replicas") or replicas(rs) or rs["metadata"]["generation"] > observed:
                continue
            self.m.emulator.delete(
                "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"], "apps"
            )

    # --- status ------------------------------------------------------------------------------

    def _calculate_status(
        self, d: dict[str, Any], all_rss: list[dict[str, Any]], new: dict[str, Any] | None
    ) -> dict[str, Any]:
        available = sum(_status(rs, "availableReplicas") for rs in all_rss)
        total = sum(replicas(rs) for rs in all_rss)
        previous = d.get("status") or {}
        status = _without_zeros(
            {
                "observedGeneration": d["metadata"].get("generation", 1),
                "replicas": sum(_status(rs, "replicas") for rs in all_rss),
                "updatedReplicas": _status(new, "replicas"),
                "readyReplicas": sum(_status(rs, "readyReplicas") for rs in all_rss),
                "availableReplicas": available,
                "unavailableReplicas": max(total - available, 0),
                "conditions": copy.deepcopy(previous.get("conditions") or []),
                "collisionCount": previous.get("collisionCount"),
            }
        )
        if available >= replicas(d) - max_unavailable(d):
            message = "Deployment has minimum availability."
            set_condition(status, "Available", True, MIN_AVAILABLE, message, self._now())
        else:
            message = "Deployment does not have minimum availability."
            set_condition(status, "Available", False, MIN_UNAVAILABLE, message, self._now())
        return status

    def _sync_status(
        self, d: dict[str, Any], all_rss: list[dict[str, Any]], new: dict[str, Any] | None
    ) -> None:
        """``syncDeploymentStatus``: counts and availability only (scaling, deletion)."""
        status = self._calculate_status(d, all_rss, new)
        if status != (d.get("status") or {}):
            d["status"] = status
            self.m.write("deployments", d, "apps")

    def _sync_rollout_status(
        self, d: dict[str, Any], all_rss: list[dict[str, Any]], new: dict[str, Any] | None
    ) -> None:
        status = self._calculate_status(d, all_rss, new)
        deadline = progress_deadline(d)
        now = self._now()
        current = find_condition(d.get("status"), "Progressing")
        if deadline is None:
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
        done = (
            (status.get("replicas") or 0) == (status.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        subject = (
            f'ReplicaSet "{new["metadata"]["name"]}"'
            if new
            else f'Deployment "{d["metadata"]["name"]}"'
        )
        if deadline is not None and not done:
            if deployment_complete(d, status):
                message = f"{subject} has successfully progressed."
                set_condition(status, "Progressing", True, NEW_RS_AVAILABLE, message, now)
            elif deployment_progressing(d, status):
                cond = {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                    "reason": RS_UPDATED,
                    "message": f"{subject} is progressing.",
                }
                if current is not None and current["status"] == "True":
                    cond["lastTransitionTime"] = current["lastTransitionTime"]
                status["conditions"] = [
                    c for c in status["conditions"] if c["type"] != "Progressing"
                ] + [cond]
            elif self._timed_out(status, deadline):
                message = f"{subject} has timed out progressing."
                set_condition(status, "Progressing", False, TIMED_OUT, message, now)
        if status == (d.get("status") or {}):
            self._requeue_if_stuck(d, status, deadline)
            return
        d["status"] = status
        self.m.write("deployments", d, "apps")

    def _timed_out(self, status: dict[str, Any], deadline: int) -> bool:
        cond = find_condition(status, "Progressing")
        if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        return Clock.parse(cond["lastUpdateTime"]) + deadline < self.m.clock.now()

    def _requeue_if_stuck(
        self, d: dict[str, Any], status: dict[str, Any], deadline: int | None
    ) -> None:
        current = find_condition(d.get("status"), "Progressing")
        if deadline is None or current is None or current.get("reason") == TIMED_OUT:
            return
        if deployment_complete(d, status):
            return
        when = max(Clock.parse(current["lastUpdateTime"]) + deadline, self.m.clock.now()) + 0.01
        meta = d["metadata"]
        self.m.enqueue_at(when, "deployment", meta["namespace"], meta["name"])


# --- ReplicaSet --------------------------------------------------------------------------------


def _deletion_rank(pod: dict[str, Any]) -> tuple[Any, ...]:
    """Which surplus pod goes first: not running, not ready, ready most recently, most
    restarts, newest."""
    status = pod.get("status") or {}
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
    ready = find_condition(status, "Ready")
    ready_since = (
        Clock.parse(ready["lastTransitionTime"]) if ready and ready.get("status") == "True" else 0.0
    )
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = pod["metadata"].get("creationTimestamp")
    return (phase, is_ready(pod), -ready_since, -restarts, -Clock.parse(created) if created else 0)


class ReplicaSetController:
    def __init__(self, manager: ControllerManager) -> None:
        self.m = manager

    def sync(self, namespace: str, name: str) -> None:
        live = self.m.get("replicasets", namespace, name, "apps")
        if live is None:
            return
        rs = copy.deepcopy(live)
        active = [p for p in self._pods(rs) if is_active(p)]
        if not is_deleting(rs):
            self._manage(rs, active)
        status = self._status(rs, active)
        if status != (rs.get("status") or {}):
            rs["status"] = status
            self.m.write("replicasets", rs, "apps")
        wanted = replicas(rs)
        min_ready = rs["spec"].get("minReadySeconds") or 0
        if min_ready and status.get("readyReplicas") == wanted != status.get("availableReplicas"):
            self.m.enqueue_at(self.m.clock.now() + min_ready, "replicaset", namespace, name)

    def _pods(self, rs: dict[str, Any]) -> list[dict[str, Any]]:
        selector = rs["spec"].get("selector")
        owned = []
        for live in self.m.controlled("pods", "", rs["metadata"]["namespace"], rs, None):
            ref = controller_of(live)
            matches = selector_matches(selector, live["metadata"].get("labels") or {})
            if ref is None and matches and not is_deleting(live) and not is_deleting(rs):
                pod = copy.deepcopy(live)
                pod["metadata"].setdefault("ownerReferences", []).append(controller_ref(rs))
                self.m.write("pods", pod)
                owned.append(pod)
            elif ref is not None and ref["uid"] == rs["metadata"]["uid"] and matches:
                owned.append(live)
        return owned

    def _manage(self, rs: dict[str, Any], active: list[dict[str, Any]]) -> None:
        surplus = len(active) - replicas(rs)
        namespace = rs["metadata"]["namespace"]
        if surplus < 0:
            template = rs["spec"].get("template") or {}
            meta = template.get("metadata") or {}
            pod_meta: dict[str, Any] = {
                "generateName": f"{rs['metadata']['name']}-",
                "labels": dict(meta.get("labels") or {}),
                "ownerReferences": [controller_ref(rs)],
            }
            for key in ("annotations", "finalizers"):
                if meta.get(key):
                    pod_meta[key] = copy.deepcopy(meta[key])
            for _ in range(-surplus):
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": copy.deepcopy(pod_meta),
                    "spec": copy.deepcopy(template.get("spec") or {}),
                }
                self.m.emulator.create("pods", namespace, pod)
        elif surplus > 0:
            for pod in sorted(active, key=_deletion_rank)[:surplus]:
                self.m.emulator.delete("pods", namespace, pod["metadata"]["name"])

    def _status(self, rs: dict[str, Any], active: list[dict[str, Any]]) -> dict[str, Any]:
        labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = rs["spec"].get("minReadySeconds") or 0
        now = self.m.clock.now()
        ready = [p for p in active if is_ready(p)]
        available = [
            p
            for p in ready
            if Clock.parse(find_condition(p["status"], "Ready")["lastTransitionTime"]) + min_ready
            <= now
        ]
        fully_labeled = [
            p for p in active if labels.items() <= (p["metadata"].get("labels") or {}).items()
        ]
        return {
            "replicas": len(active),
            **_without_zeros(
                {
                    "fullyLabeledReplicas": len(fully_labeled),
                    "readyReplicas": len(ready),
                    "availableReplicas": len(available),
                    "observedGeneration": rs["metadata"].get("generation", 1),
                }
            ),
        }


# --- Job ---------------------------------------------------------------------------------------


def _job_condition(type_: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def job_finished(job: dict[str, Any]) -> bool:
    status = job.get("status")
    return is_true(status, "Complete") or is_true(status, "Failed")


class JobController:
    def __init__(self, manager: ControllerManager, *, backoff: float) -> None:
        self.m = manager
        self.backoff = backoff
        self._not_before: dict[str, float] = {}  # Job uid → when its next pod may start

    def _drop_tracking(self, pod: dict[str, Any]) -> None:
        finalizers = [f for f in pod["metadata"].get("finalizers") or [] if f != JOB_TRACKING]
        new = copy.deepcopy(pod)
        new["metadata"]["finalizers"] = finalizers
        if not finalizers:
            del new["metadata"]["finalizers"]
        self.m.emulator.commit("pods", new)

    def release_pod(self, namespace: str, name: str) -> None:
        """A pod whose Job is gone or finished loses the tracking finalizer (``syncOrphanPod``)."""
        pod = self.m.get("pods", namespace, name)
        if pod is None or JOB_TRACKING not in (pod["metadata"].get("finalizers") or []):
            return
        ref = controller_of(pod)
        if ref is not None and ref.get("kind") != "Job":
            return
        job = self.m.get("jobs", namespace, ref["name"], "batch") if ref else None
        if job is not None and job["metadata"]["uid"] == ref["uid"] and not job_finished(job):
            return  # its Job counts it when it ends
        self._drop_tracking(pod)

    def sync(self, namespace: str, name: str) -> None:
        live = self.m.get("jobs", namespace, name, "batch")
        if live is None:
            return
        job = copy.deepcopy(live)
        uid = job["metadata"]["uid"]
        pods = self.m.controlled("pods", "", namespace, job)
        if job_finished(job):
            for pod in pods:
                if JOB_TRACKING in (pod["metadata"].get("finalizers") or []):
                    self._drop_tracking(pod)
            self._not_before.pop(uid, None)
            return
        spec = job["spec"]
        status = copy.deepcopy(job.get("status") or {})
        now, stamp = self.m.clock.now(), self.m.clock.stamp()
        status.setdefault("startTime", stamp)
        for pod in pods:  # count finished pods once: the finalizer says not yet counted
            if is_terminal(pod) and JOB_TRACKING in (pod["metadata"].get("finalizers") or []):
                outcome = "succeeded" if pod["status"]["phase"] == "Succeeded" else "failed"
                status[outcome] = status.get(outcome, 0) + 1
                if outcome == "failed" and self.backoff:
                    delay = self.backoff * 2 ** (status["failed"] - 1)
                    self._not_before[uid] = now + delay
                self._drop_tracking(pod)
        conditions = status.setdefault("conditions", [])
        interim = next(
            (
                c
                for c in conditions
                if c["type"] in ("FailureTarget", "SuccessCriteriaMet") and c["status"] == "True"
            ),
            None,
        )
        had_interim = interim is not None
        deadline = spec.get("activeDeadlineSeconds")
        started = Clock.parse(status["startTime"])
        if interim is None:
            if (status.get("failed") or 0) > spec.get("backoffLimit", 6):
                interim = _job_condition(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    stamp,
                )
            elif deadline is not None and now >= started + deadline:
                interim = _job_condition(
                    "FailureTarget",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    stamp,
                )
            elif (status.get("succeeded") or 0) >= spec.get("completions", 1):
                interim = _job_condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    stamp,
                )
            if interim is not None:
                conditions.append(interim)
        if interim is not None:
            for pod in pods:
                if is_active(pod):
                    self.m.emulator.delete("pods", namespace, pod["metadata"]["name"])
        else:
            self._start_pods(job, pods, status, now)
        pods = self.m.controlled("pods", "", namespace, job)
        active = [p for p in pods if is_active(p)]
        terminating = [p for p in pods if is_deleting(p) and not is_terminal(p)]
        if interim is not None and had_interim and not terminating:
            final = "Complete" if interim["type"] == "SuccessCriteriaMet" else "Failed"
            conditions.append(_job_condition(final, interim["reason"], interim["message"], stamp))
            if final == "Complete":
                status["completionTime"] = stamp
        status.update(
            active=len(active),
            ready=sum(is_ready(p) for p in active),
            terminating=len(terminating),
            uncountedTerminatedPods={},
        )
        status = {
            k: v
            for k, v in status.items()
            if v or k in ("ready", "terminating", "uncountedTerminatedPods")
        }
        if status != (job.get("status") or {}):
            job["status"] = status
            self.m.write("jobs", job, "batch")
        if deadline is not None and not job_finished(job):
            self.m.enqueue_at(started + deadline, "job", namespace, name)

    def _start_pods(
        self, job: dict[str, Any], pods: list[dict[str, Any]], status: dict[str, Any], now: float
    ) -> None:
        meta, spec = job["metadata"], job["spec"]
        wanted = min(
            spec.get("parallelism", 1), spec.get("completions", 1) - status.get("succeeded", 0)
        )
        missing = wanted - sum(is_active(p) for p in pods)
        if missing <= 0:
            return
        not_before = self._not_before.get(meta["uid"], 0.0)
        if now < not_before:
            self.m.enqueue_at(not_before, "job", meta["namespace"], meta["name"])
            return
        template = spec.get("template") or {}
        template_meta = template.get("metadata") or {}
        labels = {
            **(template_meta.get("labels") or {}),
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
        }
        for _ in range(missing):
            pod_meta: dict[str, Any] = {
                "generateName": f"{meta['name']}-",
                "labels": labels,
                "finalizers": [JOB_TRACKING],
                "ownerReferences": [controller_ref(job)],
            }
            if template_meta.get("annotations"):
                pod_meta["annotations"] = dict(template_meta["annotations"])
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": pod_meta,
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            self.m.emulator.create("pods", meta["namespace"], pod)
