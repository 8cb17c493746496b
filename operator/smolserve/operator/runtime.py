"""The reconcile shell around the pure planner: read, plan, apply, report.

``Reconciler.reconcile`` brings one SmolServe to its desired state, the way a
controller-runtime reconciler does:

1. **read** the SmolServe and its children from the watch caches (``children.py``'s and
   kopf's indexes, with this operator's unseen writes laid over them by ``Overlay``), load
   its spec once, and split the children into those it owns (controller uid) and the ones
   someone else does;
2. **plan** with ``reconcile.plan`` (pure);
3. **apply** the plan's creates, patches and deletes;
4. **report**: write the status (with its own patch, in order, under the SmolServe's lock)
   and post the Events.

Reads are API calls in three cases only, all rare and remembered: a failed template Job's
termination message (the pod's, listed once per Job), a configMap template source that is
not in the watch cache (to tell "missing" from "not labelled"), and API discovery of the
optional kinds (KEDA, InferencePool) once a spec asks for one (``discovery.py``). At steady
state a reconcile makes no request at all. Each reconcile ends in one call to the metrics hook
(``metrics.py``). Calls for one SmolServe are serialized; different SmolServes run in
parallel (each queued reconcile runs in a worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from smolserve import labels
from smolserve.kinds import CHILD_KINDS, Ref
from smolserve.manifests import OperatorConfig
from smolserve.manifests.autoscaling import enabled_autoscaling
from smolserve.operator import reconcile
from smolserve.operator.discovery import ServedApis
from smolserve.operator.kube import ApiError, Kube
from smolserve.operator.metrics import OperatorMetrics
from smolserve.operator.overlay import Key, Overlay, resource_version
from smolserve.operator.projection import Packed, pack, project
from smolserve.operator.status import Event
from smolserve.spec import SmolServeSpec, SpecError

# API answers no retry can fix: bad request, forbidden, invalid.
PERMANENT = frozenset({400, 403, 422})
# Seconds between retries of a reconcile that a child's or a source's event triggered; the
# last one repeats (a deleted SmolServe ends the retries: its reconcile is then a no-op).
RETRY_DELAYS = (1, 2, 5, 10, 30, 60)
# How long a reconcile that a child's event asked for waits for more events of the same
# SmolServe to join it (a Deployment's status moves in several quick steps).
COALESCE_SECONDS = 0.1
SOURCES_INDEX = "template-sources"
logger = logging.getLogger("smolserve.operator")
PODS_INDEX = "server-pods"  # projections of the SmolServes' vLLM pods (operator/agents.py)
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


@dataclass(frozen=True, slots=True)
class CachedServe:
    """A SmolServe as its last event showed it (packed), with what says whether it changed."""

    uid: str | None
    generation: int | None
    packed: Packed


@dataclass(frozen=True)
class Progress:
    """What the last reconcile of a SmolServe saw and did (tests wait on it; so can probes)."""

    seen: int  # the highest resourceVersion among the SmolServe and the children it read
    writes: int  # the writes it planned (creates, patches, deletes, status)
    events: int


def retry_delay(exc: ApiError, planned: float) -> float:
    """The pause before the next try: the planned one, or longer if the server asked."""
    return max(planned, exc.retry_after or 0.0)


def _values(indexes: Mapping[str, Any], name: str, key: Any) -> list[Any]:
    index = indexes.get(name)
    return list(index.get(key, ())) if index is not None else []


def _objects(indexes: Mapping[str, Any], name: str, key: Any) -> list[dict[str, Any]]:
    """The objects an index keeps packed (``projection.pack``) under ``key``, unpacked."""
    return [packed.unpack() for packed in _values(indexes, name, key)]


def termination_message(pods: Iterable[dict[str, Any]]) -> str:
    """The last line a failed pod's container left in its termination message."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (status.get("state"), status.get("lastState")):
                message = ((state or {}).get("terminated") or {}).get("message")
                if message and message.strip():
                    return message.strip().splitlines()[-1]
    return ""


def needs_optional_kinds(spec: SmolServeSpec) -> bool:
    """Whether the spec asks for a kind a cluster may not serve (ScaledObject, InferencePool)."""
    autoscaling = enabled_autoscaling(spec)
    pool = spec.inference_pool
    return (autoscaling is not None and autoscaling.engine == "keda") or (
        pool is not None and pool.enabled
    )


class Gate:
    """What every reconcile waits for before it starts (and before each retry): the
    operator's own child caches listed once (``children.py``), and this replica not paused
    by kopf's peering (``peering.py``; always open without peering)."""

    def __init__(self) -> None:
        self.listed = asyncio.Event()
        self.active = asyncio.Event()
        self.active.set()

    async def passed(self) -> None:
        while not (self.listed.is_set() and self.active.is_set()):
            await self.listed.wait()
            await self.active.wait()


class Reconciler:
    """The operator's state between handler calls, and the reconcile itself.

    ``apis``: which optional kinds the cluster serves (default: discovered once, at first
    need). ``metrics``: the operator's Prometheus metrics (default: a registry of its own).
    """

    def __init__(
        self,
        kube: Kube,
        config: OperatorConfig,
        *,
        apis: ServedApis | None = None,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.apis = apis if apis is not None else ServedApis(kube)
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        self.overlay = Overlay()
        self.gate = Gate()
        # A context of kopf's handlers: its Events (``kopf.event``) need kopf's context
        # variables, which reconciles queued by the operator's own watches do not carry.
        self.kopf_context: contextvars.Context | None = None
        self._locks = KeyedLocks()
        self._guard = threading.Lock()
        # Per SmolServe (all dropped by ``forget``):
        self._job_messages: dict[Key, dict[str, str]] = {}  # failed Job uid → its message
        self._sources: dict[Key, tuple[str, str]] = {}  # the (namespace, ConfigMap) it reads
        self._progress: dict[Key, Progress] = {}
        # The SmolServes as their last events showed them: the operator's own watch cache of
        # them (one kopf handler per SmolServe event, not an index and a handler). Dropped by
        # their deletion's event only, not by ``forget``.
        self._serves: dict[Key, CachedServe] = {}
        self._queued: dict[Key, bool] = {}  # a reconcile is queued (any event a deletion?)
        self._tasks: set[asyncio.Task[None]] = set()  # queued, running or retrying reconciles
        self._specs: dict[Key, tuple[tuple[Any, Any], SmolServeSpec | SpecError]] = {}
        self._incarnation: dict[Key, str | None] = {}  # the uid the state above is about
        # A deadline to plan again at (touched on the event loop only).
        self._rechecks: dict[Key, asyncio.TimerHandle] = {}
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the work queue runs on

    # --- the reconcile -----------------------------------------------------------------------

    def reconcile(
        self,
        key: Key,
        indexes: Mapping[str, Any],
        *,
        after_deletion: bool = False,
    ) -> None:
        """Bring one SmolServe to its desired state (a no-op when it is already there).

        ``after_deletion``: the trigger
        was a child's deletion, which is what the garbage collector sends when the SmolServe
        itself is gone (its cache entry may lag): before writing anything, check.
        """
        with self._locks.hold(key):
            with self._guard:
                cached = self._serves.get(key)
            current = cached.packed.unpack() if cached is not None else None
            if current is None or current["metadata"].get("deletionTimestamp"):
                self.forget(key)
                return  # deleted: owner references take the children
            uid = current["metadata"].get("uid")
            if self._incarnation.get(key) not in (None, uid):
                self.forget(key)  # deleted and re-created under its name: start clean
            with self._guard:
                self._incarnation[key] = uid
            serve = self.overlay.serve(key, current)
            started = time.perf_counter()
            try:
                observed = self._observe(key, serve, indexes)
                plan = reconcile.plan(observed, self.config, now())
                if after_deletion and plan.writes and not self._still_there(key, serve):
                    return  # deleted or re-created meanwhile: its own event has the last word
                result = "changed" if plan.writes else "unchanged"
                try:
                    self._apply(key, plan)
                except ApiError as exc:
                    if not isinstance(exc, Refused) and exc.status not in PERMANENT:
                        raise
                    # Nothing but a change (to the spec, a policy, the operator's RBAC) fixes it.
                    plan = reconcile.refused(plan, f"HTTP {exc.status}: {exc}", serve, now())
                    result = "refused"
                self._report(key, serve, plan)
                self._recheck(key, indexes, plan.recheck_after)
            except ApiError:
                self.metrics.failed(time.perf_counter() - started)
                raise
            self.metrics.reconciled(key, observed, plan, result, time.perf_counter() - started)
            seen = max(map(resource_version, [serve, *observed.children, *observed.foreign]))
            with self._guard:
                self._progress[key] = Progress(seen, plan.writes, len(plan.events))

    async def submit(
        self, key: Key, indexes: Mapping[str, Any], *, after_deletion: bool = False
    ) -> None:
        """Queue a reconcile for an event (the SmolServe's, a child's, a template source's, a
        pod's deletion); returns at once.

        kopf handles one object's events one after another, indexing each before its handlers
        run: a handler that waited for the reconcile (and for its retries, while the API keeps
        failing) would hold that object's index at its old state all the while, and every
        reconcile meanwhile would plan from the stale copy. So the reconcile runs in a task of
        its own, as a controller's work queue does. Events of one SmolServe that arrive while a
        reconcile of it is queued join that reconcile: it reads the caches when it runs, so it
        sees every change that came in meanwhile.
        """
        self._loop = asyncio.get_running_loop()
        self._enqueue(key, indexes, after_deletion=after_deletion)

    def _enqueue(self, key: Key, indexes: Mapping[str, Any], *, after_deletion: bool) -> None:
        if key in self._queued:
            self._queued[key] |= after_deletion
            return
        self._queued[key] = after_deletion
        task = asyncio.create_task(self._work(key, indexes), name=f"reconcile {key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _work(self, key: Key, indexes: Mapping[str, Any]) -> None:
        """Wait for more events to join, then reconcile in a thread; a failed reconcile is
        retried with growing pauses (or the server's Retry-After) until it succeeds."""
        try:
            await asyncio.sleep(COALESCE_SECONDS)
            await self.gate.passed()  # events meanwhile still join this reconcile
        finally:
            after_deletion = self._queued.pop(key)
        for attempt in itertools.count():
            await self.gate.passed()
            try:
                await asyncio.to_thread(self.reconcile, key, indexes, after_deletion=after_deletion)
                return
            except ApiError as exc:
                delay = retry_delay(exc, RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                logger.warning("reconciling %s/%s failed (%s); retrying in %g s", *key, exc, delay)
                await asyncio.sleep(delay)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())

    def _still_there(self, key: Key, serve: dict[str, Any]) -> bool:
        """Whether the SmolServe the cache shows still exists (one GET, only when a child's
        deletion would make the operator write: the garbage collector removing a deleted
        SmolServe's children sends those events while the cache may still hold the SmolServe,
        and recreating them would be a write the collector undoes)."""
        live = self.kube.get(Ref(labels.KIND, *key))
        if live is None:
            self.forget(key)
        return live is not None and live["metadata"].get("uid") == serve["metadata"].get("uid")

    def _recheck(self, key: Key, indexes: Mapping[str, Any], delay: float | None) -> None:
        """Queue a reconcile of ``key`` in ``delay`` seconds (a smoke timeout, a stale report):
        one deadline per SmolServe, replaced by each reconcile; None cancels it. Deadlines are
        timers of the event loop that feed the work queue, as events do (no thread each)."""
        self._on_loop(self._set_deadline, key, indexes, delay)

    def _on_loop(self, callback: Any, *args: Any) -> None:
        """Run ``callback(*args)`` on the operator's event loop, from any thread, in the
        caller's context (kopf's settings live in context variables: the Events need them)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nothing was ever queued: no deadline to set or cancel
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the operator stops
            loop.call_soon_threadsafe(callback, *args, context=contextvars.copy_context())

    def _set_deadline(self, key: Key, indexes: Mapping[str, Any], delay: float | None) -> None:
        current = self._rechecks.pop(key, None)
        if current is not None:
            current.cancel()
        if delay is not None and not self._closed:
            loop = asyncio.get_running_loop()
            self._rechecks[key] = loop.call_later(max(delay, 0.05), self._deadline, key, indexes)

    def _deadline(self, key: Key, indexes: Mapping[str, Any]) -> None:
        del self._rechecks[key]
        self._enqueue(key, indexes, after_deletion=False)

    def close(self) -> None:
        """The operator stops: no more deadlines."""
        self._closed = True
        self._on_loop(self._cancel_deadlines)

    def _cancel_deadlines(self) -> None:
        for handle in self._rechecks.values():
            handle.cancel()
        self._rechecks.clear()

    def _observe(
        self, key: Key, serve: dict[str, Any], indexes: Mapping[str, Any]
    ) -> reconcile.Observed:
        spec = self._spec(key, serve)
        cached = [o for kind in CHILD_KINDS for o in _objects(indexes, children_index(kind), key)]
        owned, foreign = reconcile.split_owned(
            self.overlay.objects(key, cached), serve["metadata"].get("uid")
        )
        source = None
        if isinstance(spec, SmolServeSpec) and spec.template.config_map_ref is not None:
            source = self._source(key, spec, indexes)
        unserved = (
            self.apis.unserved()
            if isinstance(spec, SmolServeSpec) and needs_optional_kinds(spec)
            else frozenset()
        )
        return reconcile.Observed(
            serve=serve,
            spec=spec,
            children=owned,
            foreign=foreign,
            source=source,
            job_messages=self._failed_job_messages(key, owned),
            unserved=unserved,
            pods=_values(indexes, PODS_INDEX, key),
        )

    def _spec(self, key: Key, serve: dict[str, Any]) -> SmolServeSpec | SpecError:
        """The loaded spec, loaded again only when its generation (or the object) changed:
        validating it against the CRD's schema is most of a steady reconcile's CPU."""
        meta = serve["metadata"]
        version = (meta.get("uid"), meta.get("generation"))
        with self._guard:
            known = self._specs.get(key)
        if known is not None and known[0] == version and None not in version:
            return known[1]
        spec = reconcile.read_spec(serve)
        with self._guard:
            self._specs[key] = (version, spec)
        return spec

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
                self.overlay.record(key, ref, project(self.kube.create(obj)))
            except ApiError as exc:
                if exc.status == 404 and ref.resource.optional:
                    self.apis.recheck(ref.resource)  # uninstalled? the retry then says so
                if exc.status != 409 or exc.reason != "AlreadyExists":
                    raise
                self.overlay.record(key, ref, project(self._created_before(ref, obj, exc)))
        for ref, body in plan.patch:
            try:
                self.overlay.record(key, ref, project(self.kube.patch(ref, body)))
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
            try:
                written = self.kube.patch(Ref(labels.KIND, *key), {"status": plan.status}, "status")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.forget(key)  # deleted meanwhile: nothing to report to
                return
            self.overlay.record_status(key, plan.status, resource_version(written))
        for event in plan.events:
            self._post(serve, event)

    def _post(self, serve: dict[str, Any], event: Event) -> None:
        # A reconcile gets this far only for a SmolServe a kopf handler has seen, and that
        # handler kept its context.
        assert self.kopf_context is not None
        self.kopf_context.copy().run(
            kopf.event, serve, type=event.type, reason=event.reason, message=event.message
        )

    # --- lookups for the handlers and tests ----------------------------------------------------

    def serve_seen(self, key: Key, serve: Mapping[str, Any]) -> bool:
        """Keep a SmolServe's event (its cached copy), and say whether it needs a reconcile:
        the first event of this object (its creation, or the listing at start), or a new
        generation (its spec changed). Its status (the operator's own writes) and metadata are
        not read by the plan, so their changes are not (controller-runtime's
        generation-changed predicate)."""
        meta = serve.get("metadata") or {}
        seen = CachedServe(meta.get("uid"), meta.get("generation"), pack(serve))
        with self._guard:
            previous = self._serves.get(key)
            self._serves[key] = seen
        return (
            previous is None
            or (previous.uid, previous.generation) != (seen.uid, seen.generation)
            or None in (seen.uid, seen.generation)
        )

    def referrers(self, namespace: str, configmap: str) -> list[Key]:
        """The SmolServes whose template source is this ConfigMap (as last reconciled)."""
        with self._guard:
            return [k for k, src in self._sources.items() if src == (namespace, configmap)]

    def progress(self, key: Key) -> Progress | None:
        with self._guard:
            return self._progress.get(key)

    def idle(self) -> bool:
        """Whether no reconcile is running, waiting, queued or due for a retry right now."""
        return len(self._locks) == 0 and not self._queued and not self._tasks

    def tracked(self) -> int:
        """How many SmolServes the operator keeps anything for (for leak checks)."""
        with self._guard:
            keys = self._job_messages.keys() | self._sources.keys() | self._progress.keys()
            keys |= self._serves.keys() | self._specs.keys() | self._incarnation.keys()
            keys |= self._rechecks.keys()
        return max(len(keys), len(self.overlay), len(self._locks), self.metrics.tracked())

    def deleted(self, key: Key, uid: str | None) -> None:
        """The SmolServe ``uid`` was deleted: forget it once no reconcile of it runs (unless a
        successor of that name is already known)."""
        with self._locks.hold(key):
            with self._guard:
                known = self._incarnation.get(key)
                cached = self._serves.get(key)
                if cached is not None and cached.uid == uid:
                    del self._serves[key]
            if known in (None, uid):
                self.forget(key)

    def forget(self, key: Key) -> None:
        """Drop everything kept for a deleted SmolServe: a new one of that name starts clean."""
        self.overlay.forget(key)
        self.metrics.forget(key)
        with self._guard:
            self._job_messages.pop(key, None)
            self._sources.pop(key, None)
            self._progress.pop(key, None)
            self._specs.pop(key, None)
            self._incarnation.pop(key, None)
        self._on_loop(self._set_deadline, key, None, None)
