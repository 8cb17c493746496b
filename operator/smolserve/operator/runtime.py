"""The reconcile shell around the pure planner: read, plan, apply, report.

``Reconciler.reconcile`` brings one SmolServe to its desired state, the way a
controller-runtime reconciler does:

1. **read** the SmolServe and its children from kopf's indexes (watch caches, with this
   operator's unseen writes laid over them by ``Overlay``), load its spec once, and split the
   children into those it owns (controller uid) and the ones someone else does;
2. **plan** with ``reconcile.plan`` (pure);
3. **apply** the plan's creates, patches and deletes;
4. **report**: write the status (always with its own patch, in order, under the SmolServe's
   lock: a status handed to kopf's patch would be written after the handler returns, after
   kopf's own retries, possibly over a newer status another reconcile wrote meanwhile) and
   post the Events.

Reads are API calls in two cases only, both rare and remembered: a failed template Job's
termination message (the pod's, listed once per Job) and a configMap template source that is
not in the watch cache (to tell "missing" from "not labelled"). At steady state a reconcile
makes no request at all. Calls for one SmolServe are serialized; different SmolServes run in
parallel (kopf runs synchronous handlers in threads).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from smolserve import labels
from smolserve.kinds import CHILD_KINDS, Ref
from smolserve.manifests import OperatorConfig
from smolserve.operator import reconcile
from smolserve.operator.kube import ApiError, Kube
from smolserve.operator.overlay import Key, Overlay, resource_version
from smolserve.spec import SmolServeSpec

# API answers no retry can fix: bad request, forbidden, invalid.
PERMANENT = frozenset({400, 403, 422})
SERVES_INDEX = "smolserves"
SOURCES_INDEX = "template-sources"
# The label a user's template-source ConfigMap needs for the operator to see it (and its edits).
SOURCE_LABEL = (labels.PART_OF, labels.APP_NAME)


def children_index(kind: str) -> str:
    return f"{kind.lower()}s-by-serve"


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def text_hashes(configmap: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of each value in a ConfigMap's data (what the template inputs hash reads)."""
    data = configmap.get("data") or {}
    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in data.items()}


class Refused(ApiError):
    """A write the API server refused for good; the message says which object and why."""


class KeyedLocks:
    """One lock per SmolServe, dropped when nobody holds or waits for it (no leak)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Key, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: Key) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


@dataclass(frozen=True)
class Progress:
    """What the last reconcile of a SmolServe saw and did (tests wait on it; so can probes)."""

    seen: int  # the highest resourceVersion among the SmolServe and the children it read
    writes: int  # the writes it planned (creates, patches, deletes, status)
    events: int


def _values(indexes: Mapping[str, Any], name: str, key: Any) -> list[dict[str, Any]]:
    index = indexes.get(name)
    return list(index.get(key, ())) if index is not None else []


def termination_message(pods: Iterable[dict[str, Any]]) -> str:
    """The last line a failed pod's container left in its termination message."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (status.get("state"), status.get("lastState")):
                message = ((state or {}).get("terminated") or {}).get("message")
                if message and message.strip():
                    return message.strip().splitlines()[-1]
    return ""


class Reconciler:
    """The operator's state between handler calls, and the reconcile itself."""

    def __init__(self, kube: Kube, config: OperatorConfig) -> None:
        self.kube = kube
        self.config = config
        self.overlay = Overlay()
        self._locks = KeyedLocks()
        self._guard = threading.Lock()
        # Per SmolServe (all dropped by ``forget``):
        self._job_messages: dict[Key, dict[str, str]] = {}  # failed Job uid → its message
        self._sources: dict[Key, tuple[str, str]] = {}  # the (namespace, ConfigMap) it reads
        self._progress: dict[Key, Progress] = {}
        self._handled: set[Key] = set()  # its own kopf handler ran (in this process)

    # --- the reconcile -----------------------------------------------------------------------

    def reconcile(self, key: Key, indexes: Mapping[str, Any], *, handler: bool = False) -> None:
        """Bring one SmolServe to its desired state (a no-op when it is already there).

        ``handler``: called by the SmolServe's own kopf handler (create, update, resume);
        until that has run once, other triggers wait for it.
        """
        with self._locks.hold(key):
            serves = _values(indexes, SERVES_INDEX, key)
            if not serves or serves[0]["metadata"].get("deletionTimestamp"):
                self.forget(key)
                return  # deleted: owner references take the children
            with self._guard:
                if handler:
                    self._handled.add(key)
                elif key not in self._handled:
                    return  # its own handler (create, or resume at start) has not run; it will
            serve = self.overlay.serve(key, serves[0])
            observed = self._observe(key, serve, indexes)
            plan = reconcile.plan(observed, self.config, now())
            try:
                self._apply(key, plan)
            except ApiError as exc:
                if not isinstance(exc, Refused) and exc.status not in PERMANENT:
                    raise
                # Nothing but a change (to the spec, a policy, the operator's RBAC) fixes this.
                plan = reconcile.refused(plan, f"HTTP {exc.status}: {exc}", serve, now())
            self._report(key, serve, plan)
            seen = max(map(resource_version, [serve, *observed.children, *observed.foreign]))
            with self._guard:
                self._progress[key] = Progress(seen, plan.writes, len(plan.events))

    def _observe(
        self, key: Key, serve: dict[str, Any], indexes: Mapping[str, Any]
    ) -> reconcile.Observed:
        spec = reconcile.read_spec(serve)
        cached = [o for kind in CHILD_KINDS for o in _values(indexes, children_index(kind), key)]
        owned, foreign = reconcile.split_owned(
            self.overlay.objects(key, cached), serve["metadata"].get("uid")
        )
        source = None
        if isinstance(spec, SmolServeSpec) and spec.template.config_map_ref is not None:
            source = self._source(key, spec, indexes)
        return reconcile.Observed(
            serve=serve,
            spec=spec,
            children=owned,
            foreign=foreign,
            source=source,
            job_messages=self._failed_job_messages(key, owned),
        )

    def _source(
        self, key: Key, spec: SmolServeSpec, indexes: Mapping[str, Any]
    ) -> reconcile.SourceState:
        """The user's template ConfigMap: from the watch cache, else one GET to say why not."""
        ref = spec.template.config_map_ref
        assert ref is not None
        namespace = key[0]
        with self._guard:
            self._sources[key] = (namespace, ref.name)
        cached = _values(indexes, SOURCES_INDEX, (namespace, ref.name))
        hashes = cached[0] if cached else None
        if hashes is None:
            live = self.kube.get(Ref("ConfigMap", namespace, ref.name))
            if live is None:
                return reconcile.SourceState(
                    None,
                    f"ConfigMap {ref.name!r} not found (create it with the label "
                    f"{SOURCE_LABEL[0]}={SOURCE_LABEL[1]})",
                )
            if (live["metadata"].get("labels") or {}).get(SOURCE_LABEL[0]) != SOURCE_LABEL[1]:
                return reconcile.SourceState(
                    None,
                    f"ConfigMap {ref.name!r} is not labelled {SOURCE_LABEL[0]}={SOURCE_LABEL[1]}:"
                    " the operator watches only labelled ConfigMaps, so it would miss its edits",
                )
            hashes = text_hashes(live)
        if ref.key not in hashes:
            return reconcile.SourceState(None, f"ConfigMap {ref.name!r} has no key {ref.key!r}")
        return reconcile.SourceState(hashes[ref.key])

    def _failed_job_messages(self, key: Key, children: list[dict[str, Any]]) -> dict[str, str]:
        """Failed Job name → its pod's termination message (listed once per Job)."""
        failed = [c for c in children if c["kind"] == "Job" and reconcile.job_state(c) == "failed"]
        with self._guard:
            known = self._job_messages.get(key, {})
        messages: dict[str, str] = {}
        for job in failed:
            meta = job["metadata"]
            if meta["uid"] not in known:
                pods = self.kube.list("Pod", meta["namespace"], f"job-name={meta['name']}")
                known[meta["uid"]] = termination_message(pods)
            messages[meta["uid"]] = known[meta["uid"]]
        with self._guard:
            if messages:
                self._job_messages[key] = messages  # only the Jobs that still exist
            else:
                self._job_messages.pop(key, None)
        names = {job["metadata"]["uid"]: job["metadata"]["name"] for job in failed}
        return {names[uid]: text for uid, text in messages.items() if text}

    def _apply(self, key: Key, plan: reconcile.Plan) -> None:
        for obj in plan.create:
            ref = Ref.of(obj)
            try:
                self.overlay.record(key, ref, self.kube.create(obj))
            except ApiError as exc:
                if exc.status != 409 or exc.reason != "AlreadyExists":
                    raise
                self.overlay.record(key, ref, self._created_before(ref, obj, exc))
        for ref, body in plan.patch:
            try:
                self.overlay.record(key, ref, self.kube.patch(ref, body))
            except ApiError as exc:
                if exc.status != 404:
                    raise
        for ref in plan.delete:
            try:
                self.kube.delete(ref)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            self.overlay.record(key, ref, None)

    def _created_before(self, ref: Ref, obj: dict[str, Any], exc: ApiError) -> dict[str, Any]:
        """The object a create was refused for (409 AlreadyExists), if it is this SmolServe's:
        an earlier create whose answer was lost (a timeout), not yet in the watch cache."""
        live = self.kube.get(ref)
        if live is None:  # deleted in between: the next reconcile creates it
            raise ApiError(409, f"{ref} was deleted while being created") from exc
        owner = reconcile.controller_uid(obj)
        if owner is None or reconcile.controller_uid(live) != owner:
            raise Refused(
                409, f"{ref} already exists and is not managed by this SmolServe"
            ) from exc
        return live

    def _report(self, key: Key, serve: dict[str, Any], plan: reconcile.Plan) -> None:
        if plan.status is not None:
            written = self.kube.patch(Ref(labels.KIND, *key), {"status": plan.status}, "status")
            self.overlay.record_status(key, plan.status, resource_version(written))
        for event in plan.events:
            kopf.event(serve, type=event.type, reason=event.reason, message=event.message)

    # --- lookups for the handlers and tests ----------------------------------------------------

    def referrers(self, namespace: str, configmap: str) -> list[Key]:
        """The SmolServes whose template source is this ConfigMap (as last reconciled)."""
        with self._guard:
            return [k for k, src in self._sources.items() if src == (namespace, configmap)]

    def progress(self, key: Key) -> Progress | None:
        with self._guard:
            return self._progress.get(key)

    def idle(self) -> bool:
        """Whether no reconcile is running or waiting right now."""
        return len(self._locks) == 0

    def tracked(self) -> int:
        """How many SmolServes the operator keeps anything for (for leak checks)."""
        with self._guard:
            keys = self._job_messages.keys() | self._sources.keys() | self._progress.keys()
            keys |= self._handled
        return max(len(keys), len(self.overlay), len(self._locks))

    def forget(self, key: Key) -> None:
        """Drop everything kept for a deleted SmolServe: a new one of that name starts clean."""
        self.overlay.forget(key)
        with self._guard:
            self._job_messages.pop(key, None)
            self._sources.pop(key, None)
            self._progress.pop(key, None)
            self._handled.discard(key)
