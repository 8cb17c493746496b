"""The kopf handlers: thin I/O around the pure planner (``reconcile.plan``).

Reads come from kopf indexes (in-memory caches fed by watches), never from API calls, so a
reconcile at steady state makes no request at all. Every trigger — the SmolServe changing, any
of its children changing, the user's template ConfigMap changing — runs the same
``Runtime.reconcile`` for that SmolServe, serialized per SmolServe.

Status writes: from the SmolServe's own handlers the status goes into kopf's patch, so it and
kopf's bookkeeping (kept in status) make a single write; from children's events the operator
patches ``/status`` itself. Handlers are synchronous: kopf runs them in threads, so the
blocking client never stalls kopf's event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import kopf

from smolserve import labels
from smolserve.manifests import OperatorConfig
from smolserve.operator import reconcile
from smolserve.operator.apply import contains
from smolserve.operator.kube import ApiError, Kube, Ref

logger = logging.getLogger("smolserve.operator")

SERVE_RESOURCE = (labels.GROUP, labels.VERSION, labels.PLURAL)
# The children the operator watches (all labelled smolserve.dev/serve): kind → kopf resource.
CHILD_RESOURCES = {
    "Job": ("batch", "v1", "jobs"),
    "Deployment": ("apps", "v1", "deployments"),
    "Service": ("", "v1", "services"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "ConfigMap": ("", "v1", "configmaps"),
}
SERVES_INDEX = "smolserves_by_name"
# API answers no retry can fix: bad request, forbidden, invalid.
PERMANENT = frozenset({400, 403, 422})
# Seconds between retries of a reconcile that a child's event triggered (kopf retries the
# SmolServe's own handlers itself, but not event handlers).
RETRY_DELAYS = (1, 2, 5, 10, 30, 60)
SERVE_LABEL = labels.SERVE

Key = tuple[str, str]  # (namespace, SmolServe name)


def _index_name(kind: str) -> str:
    return f"{kind.lower()}s_by_serve"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(obj: Mapping[str, Any]) -> int:
    raw = obj.get("metadata", {}).get("resourceVersion", "")
    return int(raw) if str(raw).isdigit() else -1


def _values(index: Any, key: Key) -> list[dict[str, Any]]:
    return list(index.get(key, ())) if index is not None else []


class Runtime:
    """The operator's state between handler calls: client, config, locks, recent writes.

    ``_written`` remembers what this operator just wrote until its watch shows it (an object
    at that resourceVersion or newer), so a reconcile that runs in between acts on what is
    really there instead of re-sending the same write.
    """

    def __init__(self, kube: Kube, config: OperatorConfig) -> None:
        self.kube = kube
        self.config = config
        self._guard = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}
        self._written: dict[Key, dict[Ref, dict[str, Any] | None]] = {}
        self._status_written: dict[Key, dict[str, Any]] = {}
        self._job_messages: dict[str, str] = {}  # Job uid → its pod's termination message
        # (namespace, ConfigMap, key) of a user's template source → sha256 of the text
        self._sources: dict[tuple[str, str, str], str | None] = {}

    def _lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # --- observing ---------------------------------------------------------------------------

    def _fresh(self, key: Key, cached: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The watch cache, overlaid with this operator's writes the watch has not shown yet."""
        seen: dict[Ref, dict[str, Any]] = {}
        for obj in cached:
            if not obj.get("metadata", {}).get("deletionTimestamp"):
                seen[Ref.of(obj)] = obj
        with self._guard:
            written = self._written.get(key, {})
            for ref, body in list(written.items()):
                live = seen.get(ref)
                if body is None:  # deleted by us
                    if live is None:
                        del written[ref]
                    else:
                        seen.pop(ref)
                elif live is not None and _version(live) >= _version(body):
                    del written[ref]
                else:
                    seen[ref] = body
        return list(seen.values())

    def _source_sha(self, serve: dict[str, Any]) -> str | None:
        source = serve_source(serve)
        if source is None:
            return None
        namespace = serve["metadata"]["namespace"]
        if (namespace, *source) not in self._sources:
            cm = self.kube.get(Ref("ConfigMap", namespace, source[0]))
            self.remember_source(cm, namespace, *source)
        return self._sources.get((namespace, *source))

    def remember_source(
        self, cm: Mapping[str, Any] | None, namespace: str, name: str, data_key: str
    ) -> None:
        """Keep the sha256 of a user template ConfigMap's key (None: no such ConfigMap or key)."""
        text = ((cm or {}).get("data") or {}).get(data_key)
        sha = None if text is None else hashlib.sha256(text.encode()).hexdigest()
        self._sources[namespace, name, data_key] = sha

    def _job_messages_for(self, jobs: Iterable[dict[str, Any]]) -> dict[str, str]:
        messages = {}
        for job in jobs:
            if reconcile.job_state(job) != "failed":
                continue
            meta = job["metadata"]
            if meta["uid"] not in self._job_messages:
                pods = self.kube.list("Pod", meta["namespace"], f"job-name={meta['name']}")
                self._job_messages[meta["uid"]] = termination_message(pods)
            if self._job_messages[meta["uid"]]:
                messages[meta["name"]] = self._job_messages[meta["uid"]]
        return messages

    # --- reconciling -------------------------------------------------------------------------

    def reconcile(
        self, key: Key, indexes: Mapping[str, Any], patch: kopf.Patch | None = None
    ) -> None:
        """Bring one SmolServe to its desired state (a no-op when it is already there)."""
        with self._lock(key):
            serves = _values(indexes.get(SERVES_INDEX), key)
            if not serves or serves[0]["metadata"].get("deletionTimestamp"):
                self._forget(key)
                return  # deleted: owner references take the children
            serve = serves[0]
            if patch is None and not (serve.get("status") or {}).get("kopf"):
                return  # not yet handled by its own create handler, which comes next
            written_status = self._status_written.get(key)
            if written_status is not None:
                if contains(serve.get("status"), written_status):
                    del self._status_written[key]
                else:
                    serve = {**serve, "status": {**(serve.get("status") or {}), **written_status}}
            cached = [
                o for kind in CHILD_RESOURCES for o in _values(indexes.get(_index_name(kind)), key)
            ]
            children = self._fresh(key, cached)
            observed = reconcile.Observed(
                serve=serve,
                children=children,
                source_sha256=self._source_sha(serve),
                job_messages=self._job_messages_for(c for c in children if c.get("kind") == "Job"),
            )
            plan = reconcile.plan(observed, self.config, _now())
            try:
                self._execute(key, plan)
            except ApiError as exc:
                if exc.status not in PERMANENT:
                    raise
                # Nothing but a change (to the spec, or to the operator's RBAC) can fix this:
                # say so in the status instead of retrying.
                failed = replace(observed, apply_error=f"HTTP {exc.status}: {exc}")
                plan = reconcile.plan(failed, self.config, _now())
            if plan.status is not None:
                if patch is not None:
                    patch.setdefault("status", {}).update(plan.status)
                else:
                    self.kube.patch(Ref(labels.KIND, *key), {"status": plan.status}, "status")
                self._status_written[key] = plan.status
            for event in plan.events:
                kopf.event(serve, type=event.type, reason=event.reason, message=event.message)

    def _execute(self, key: Key, plan: reconcile.Plan) -> None:
        for obj in plan.create:
            try:
                created = self.kube.create(obj)
            except ApiError as exc:
                if exc.status != 409:  # 409: it exists already; its watch event will follow
                    raise
            else:
                self._note(key, Ref.of(obj), created)
        for ref, body in plan.patch:
            try:
                self._note(key, ref, self.kube.patch(ref, body))
            except ApiError as exc:
                if exc.status != 404:
                    raise
        for ref in plan.delete:
            try:
                self.kube.delete(ref)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            self._note(key, ref, None)

    def is_echo(self, key: Key, body: Mapping[str, Any]) -> bool:
        """Whether a watch event only shows this operator's own last write (nothing new)."""
        with self._guard:
            written = self._written.get(key, {}).get(Ref.of(body))
            return written is not None and _version(written) == _version(body)

    def _forget(self, key: Key) -> None:
        """Drop what was written for a deleted SmolServe: a new one of the same name starts clean
        (a stale status overlay would hide that its status was never written)."""
        with self._guard:
            self._written.pop(key, None)
            self._status_written.pop(key, None)

    def _note(self, key: Key, ref: Ref, body: dict[str, Any] | None) -> None:
        with self._guard:
            self._written.setdefault(key, {})[ref] = body


def termination_message(pods: list[dict[str, Any]]) -> str:
    """The last line a failed pod's container left in its termination message."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (status.get("state"), status.get("lastState")):
                message = ((state or {}).get("terminated") or {}).get("message")
                if message and message.strip():
                    return message.strip().splitlines()[-1]
    return ""


async def reconcile_with_retries(runtime: Runtime, key: Key, indexes: Mapping[str, Any]) -> None:
    """Reconcile in a thread; on a transient API error, try again after a pause."""
    for delay in (*RETRY_DELAYS, None):
        try:
            await asyncio.to_thread(runtime.reconcile, key, indexes)
            return
        except ApiError as exc:
            if delay is None:
                raise
            logger.warning("reconciling %s/%s failed (%s); retrying in %d s", *key, exc, delay)
            await asyncio.sleep(delay)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Register every handler into ``registry`` (one registry per operator, or per test)."""
    present = {labels.SERVE: kopf.PRESENT}

    # Index functions and the echo check are async: they do no I/O, and running them on the
    # loop saves a thread hop per watch event. Reconciles, which do I/O, go to a thread.
    async def index_serves(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Key, Any]:
        return {(namespace, name): dict(body)}

    kopf.index(*SERVE_RESOURCE, id=SERVES_INDEX, registry=registry)(index_serves)

    for kind, resource in CHILD_RESOURCES.items():

        async def index_child(namespace: str, body: kopf.Body, **_: Any) -> dict[Key, Any]:
            return {(namespace, body["metadata"]["labels"][SERVE_LABEL]): dict(body)}

        kopf.index(*resource, id=_index_name(kind), labels=present, registry=registry)(index_child)

        async def on_child(namespace: str, body: kopf.Body, **kwargs: Any) -> None:
            key = (namespace, body["metadata"]["labels"][SERVE_LABEL])
            if not runtime.is_echo(key, body):
                await reconcile_with_retries(runtime, key, kwargs)

        kopf.on.event(*resource, id=f"{kind.lower()}-changed", labels=present, registry=registry)(
            on_child
        )

    def on_serve(namespace: str, name: str, patch: kopf.Patch, **kwargs: Any) -> None:
        try:
            runtime.reconcile((namespace, name), kwargs, patch)
        except ApiError as exc:
            raise kopf.TemporaryError(str(exc), delay=5) from exc

    for cause in (kopf.on.create, kopf.on.update, kopf.on.resume):
        cause(*SERVE_RESOURCE, id="reconcile", registry=registry)(on_serve)

    async def on_configmap(
        namespace: str, name: str, body: kopf.Body, type: str | None, **kwargs: Any
    ) -> None:
        """A user's template ConfigMap changed: re-hash it and reconcile who uses it."""
        for (ns, serve_name), serve in _referencing(kwargs.get(SERVES_INDEX), namespace, name):
            ref = serve_source(serve)
            if ref is None:
                continue
            runtime.remember_source(None if type == "DELETED" else body, namespace, name, ref[1])
            await reconcile_with_retries(runtime, (ns, serve_name), kwargs)

    kopf.on.event(
        "",
        "v1",
        "configmaps",
        id="source-changed",
        labels={labels.SERVE: kopf.ABSENT},
        registry=registry,
    )(on_configmap)


def serve_source(serve: Mapping[str, Any]) -> tuple[str, str] | None:
    """(ConfigMap name, key) of a SmolServe whose template source is a ConfigMap, else None."""
    template = (serve.get("spec") or {}).get("template") or {}
    ref = template.get("configMapRef") or {}
    if template.get("source") != "configMap" or not ref.get("name"):
        return None
    return ref["name"], ref.get("key", "chat_template.jinja")


def _referencing(index: Any, namespace: str, name: str) -> list[tuple[Key, dict[str, Any]]]:
    if index is None:
        return []
    found = []
    for key in list(index):
        if key[0] != namespace:
            continue
        for serve in index.get(key, ()):
            source = serve_source(serve)
            if source is not None and source[0] == name:
                found.append((key, serve))
    return found
