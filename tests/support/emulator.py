"""A Kubernetes API emulator realistic enough for a real kopf operator: kmock plus a realism layer.

kmock 0.8 (``kmock.KubernetesScaffold``) gives the aiohttp server, request parsing, Status error
rendering and ``/version``. It lacks what kopf and the Kubernetes client rely on (see
``docs/operator.md`` and the shared testing notes), so this subclass serves every resource
request itself, from an in-memory store, with the API server's rules:

- ``metadata.uid``, ``resourceVersion`` (one cluster-wide counter), ``creationTimestamp``,
  ``generation`` (bumped when anything but metadata and status changes), ``generateName``;
- 201 on create, 409 ``AlreadyExists``, 409 ``Conflict`` on a stale ``resourceVersion``, 404,
  422 on a failed JSON-patch ``test`` op and on writes to an immutable ConfigMap;
- merge patch and JSON patch (strategic-merge and apply patches answer 415, so code that
  relies on them fails loudly here instead of passing by accident), PUT;
- ``status`` subresources (main writes ignore status, status writes ignore the rest);
- a CRD's ``scale`` subresource (GET, merge PATCH and PUT of an ``autoscaling/v1`` Scale; only
  ``spec.replicas`` reaches the object, at the CRD's ``specReplicasPath``), as ``kubectl
  scale`` uses it;
- resource quantities (``limits``/``requests``) stored and returned as strings;
- label selectors, ``metadata.name``/``metadata.namespace`` field selectors, ``kind`` on lists;
- watch from a ``resourceVersion`` (replayed from history; 410 when it is too old);
- deletion with finalizers (``deletionTimestamp``, removal once finalizers are empty) and
  ``propagationPolicy`` (``Background``; ``Foreground`` and ``Orphan`` through their
  finalizers; batch/v1 Jobs orphan by default, as the real API does);
- ownerReference garbage collection (``collector.py``): right after the owner is gone, after a
  delay, or only when a test calls ``collect_garbage()``;
- discovery of built-in kinds and of CRDs created through the API (served versions,
  subresources, short names), with ``/api/v1`` answering ``groupVersion: v1``;
- a clock (``clock.py``) a test can advance, for timestamps and the controllers' deadlines;
- ``listeners``: callbacks that see every change, which is how the controllers
  (``controllers.py``: Deployment, ReplicaSet, Job, and a kubelet) run beside the store.

With ``refuse_unversioned_watches``, a watch opened without a ``resourceVersion`` is answered
with a single ``ERROR`` event, as some API servers do, for testing clients that must list first.

Not emulated: schema validation and defaulting (so no defaulted fields appear on created
objects: a Job gets no generated ``spec.selector``), admission, the scale subresource of
built-in kinds,
server-side apply, strategic-merge patch, Events from controllers, CRD deletion waiting for its
objects' finalizers (they are removed at once).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import kmock

from .clock import Clock
from .collector import FOREGROUND, ORPHAN, GarbageCollector
from .objects import controller_of
from .patching import PatchInvalid, PatchTestFailed, json_patch, merge_patch
from .selectors import SelectorError, field_matcher, label_matcher

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
HISTORY_LIMIT = 100_000  # watch events kept for resuming watches; older resourceVersions get 410
NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # generateName's, without vowels
WHOLE = "*"  # a controller's write: metadata, spec and status at once (no subresource split)
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")

Listener = Callable[[str, str, str, dict[str, Any]], None]  # (group, plural, change, object)


@dataclass(frozen=True)
class Kind:
    """One served resource type."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: frozenset[str] = frozenset()
    short_names: tuple[str, ...] = ()
    # A CRD's scale subresource: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    scale: tuple[str, str, str | None] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version


def _builtin(
    api: str, plural: str, kind: str, namespaced: bool = True, status: bool = False
) -> Kind:
    group, _, version = api.rpartition("/")
    return Kind(group, version, plural, kind, namespaced, frozenset({"status"} if status else ()))


BUILTIN_KINDS = (
    _builtin("v1", "namespaces", "Namespace", namespaced=False, status=True),
    _builtin("v1", "configmaps", "ConfigMap"),
    _builtin("v1", "secrets", "Secret"),
    _builtin("v1", "services", "Service", status=True),
    _builtin("v1", "serviceaccounts", "ServiceAccount"),
    _builtin("v1", "pods", "Pod", status=True),
    _builtin("v1", "events", "Event"),
    _builtin("v1", "persistentvolumeclaims", "PersistentVolumeClaim", status=True),
    _builtin("apps/v1", "deployments", "Deployment", status=True),
    _builtin("apps/v1", "replicasets", "ReplicaSet", status=True),
    _builtin("batch/v1", "jobs", "Job", status=True),
    _builtin("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", status=True),
    _builtin("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _builtin("events.k8s.io/v1", "events", "Event"),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
    _builtin(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status=True,
    ),
)
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


def _fail(status: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message, details={})


def _normalize_quantities(node: Any) -> None:
    """Resource quantities come back as strings, as the API server serializes them."""
    if isinstance(node, dict):
        resources = node.get("resources")
        if isinstance(resources, dict):
            for section in ("limits", "requests"):
                values = resources.get(section)
                if isinstance(values, dict):
                    for name, value in values.items():
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            values[name] = str(value)
        for value in node.values():
            _normalize_quantities(value)
    elif isinstance(node, list):
        for item in node:
            _normalize_quantities(item)


def _scale_paths(version: dict[str, Any]) -> tuple[str, str, str | None] | None:
    scale = (version.get("subresources") or {}).get("scale")
    if not isinstance(scale, dict):
        return None
    return scale["specReplicasPath"], scale["statusReplicasPath"], scale.get("labelSelectorPath")


def _at_path(obj: dict[str, Any], path: str) -> Any:
    """The value at a simple JSON path such as ``.spec.replicas`` (None when absent)."""
    node: Any = obj
    for part in path.strip(".").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    node = obj
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What ``generation`` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid its controller reference names ("" when that has none), None with no controller."""
    ref = controller_of(obj)
    return None if ref is None else ref.get("uid") or ""


@dataclass
class _Collection:
    """The objects of one resource type and the watch history over them.

    ``objects`` holds them in creation order; ``put`` and ``drop`` keep two indexes beside it,
    so that a controller finds its namespace's objects, and those one owner controls, without
    scanning every object of the type (which made a thousand SmolServes quadratic).
    """

    objects: dict[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)
    history: collections.deque[tuple[int, dict[str, Any]]] = field(
        default_factory=lambda: collections.deque(maxlen=HISTORY_LIMIT)
    )
    forgotten_up_to: int = 0  # resourceVersions at or below this are no longer replayable
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # namespace → name → object, each in creation order (as ``objects`` filtered by namespace)
    by_namespace: dict[str | None, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # (namespace, controller uid or None) → names → their place in creation order
    by_controller: dict[tuple[str | None, str | None], dict[str, int]] = field(default_factory=dict)
    _placed: dict[tuple[str | None, str], tuple[int, str | None]] = field(default_factory=dict)
    _created: int = 0

    def put(self, namespace: str | None, name: str, obj: dict[str, Any]) -> None:
        """Store a new object or the next state of one (which keeps its place)."""
        key = (namespace, name)
        self.objects[key] = obj
        self.by_namespace.setdefault(namespace, {})[name] = obj
        controller = _controller_uid(obj)
        placed = self._placed.get(key)
        if placed is not None and placed[1] == controller:
            return
        if placed is None:
            self._created += 1
            place = self._created
        else:
            place = placed[0]
            self._unindex(namespace, name, placed[1])
        self._placed[key] = (place, controller)
        self.by_controller.setdefault((namespace, controller), {})[name] = place

    def drop(self, namespace: str | None, name: str) -> None:
        key = (namespace, name)
        del self.objects[key]
        in_namespace = self.by_namespace[namespace]
        del in_namespace[name]
        if not in_namespace:
            del self.by_namespace[namespace]
        self._unindex(namespace, name, self._placed.pop(key)[1])

    def _unindex(self, namespace: str | None, name: str, controller: str | None) -> None:
        names = self.by_controller[namespace, controller]
        del names[name]
        if not names:
            del self.by_controller[namespace, controller]

    def controlled(self, namespace: str | None, *uids: str | None) -> list[dict[str, Any]]:
        """The namespace's objects whose controller has one of these uids (None: those with no
        controller), in creation order."""
        places: dict[str, int] = {}
        for uid in uids:
            places.update(self.by_controller.get((namespace, uid), {}))
        in_namespace = self.by_namespace.get(namespace, {})
        return [in_namespace[name] for name in sorted(places, key=places.__getitem__)]


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw it, for counting who asked what."""

    method: str
    path: str
    user_agent: str
    at: float
    query: str = ""  # the query string (labelSelector, fieldSelector, watch=true, ...)


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesScaffold):
    """kmock's server with a realistic, in-memory Kubernetes API behind it."""

    # Seconds from an owner's deletion to its dependents' collection; None: only on
    # collect_garbage(). 0: right after the request that removed the owner.
    gc_delay: float | None = 0.0
    refuse_unversioned_watches: bool = False
    clock: Clock = attrs.field(factory=Clock)
    kinds: dict[tuple[str, str], Kind] = attrs.field(factory=dict, init=False)
    stores: dict[tuple[str, str], _Collection] = attrs.field(
        factory=lambda: collections.defaultdict(_Collection), init=False
    )
    log: list[RequestRecord] = attrs.field(factory=list, init=False)
    listeners: list[Listener] = attrs.field(factory=list, init=False)
    errors: list[str] = attrs.field(factory=list, init=False)  # from background work
    gc: GarbageCollector = attrs.field(init=False)
    _revision: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.gc = GarbageCollector(self, self.gc_delay)
        for kind in BUILTIN_KINDS:
            self.kinds[kind.group, kind.plural] = kind

    # --- entry point -----------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Parse requests here: kmock's parser fails on cluster-scoped paths such as
        ``/api/v1/namespaces``, and keeps every request in memory (a benchmark cannot)."""
        body = await raw_request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = kmock.Request(
            method=raw_request.method,
            url=raw_request.url,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=body.decode(errors="replace"),
            data=data,
            raw_request=raw_request,
        )
        try:
            return await self._handle(request)
        except Exception as exc:  # rendered as a Kubernetes Status, as the API server would
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        self.log.append(
            RequestRecord(
                request.method.value,
                path,
                request.headers.get("User-Agent", ""),
                time.monotonic(),
                request.url.query_string,
            )
        )
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["_emulator"]:  # the request log, from the ``since``-th record on
            since = int(request.params.get("since") or 0)
            return aiohttp.web.json_response([r.__dict__ for r in self.log[since:]])
        if parts == ["api"]:
            return aiohttp.web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            return aiohttp.web.json_response(self._group_list())
        if parts[:1] == ["apis"] and len(parts) == 2:
            return aiohttp.web.json_response(self._group(parts[1]))
        if parts[:1] == ["api"] and len(parts) == 2:
            return aiohttp.web.json_response(self._resource_list("", parts[1]))
        if parts[:1] == ["apis"] and len(parts) == 3:
            return aiohttp.web.json_response(self._resource_list(parts[1], parts[2]))
        if parts[:1] in (["api"], ["apis"]) and len(parts) > 2:
            return await self._serve_resource(request, parts)
        return await super()._handle(request)

    # --- discovery -------------------------------------------------------------------------------

    def _served(self, group: str, version: str | None = None) -> list[Kind]:
        return [k for k in self.kinds.values() if k.group == group and version in (None, k.version)]

    def _group(self, name: str) -> dict[str, Any]:
        versions = sorted({k.version for k in self._served(name)})
        if not versions:
            raise _fail(404, "NotFound", f"the server could not find the group {name}")
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {
            "apiVersion": "v1",
            "kind": "APIGroup",
            "name": name,
            "versions": entries,
            "preferredVersion": entries[-1],
        }

    def _group_list(self) -> dict[str, Any]:
        names = sorted({k.group for k in self.kinds.values() if k.group})
        groups = [self._group(name) for name in names]
        for group in groups:
            del group["apiVersion"], group["kind"]
        return {"apiVersion": "v1", "kind": "APIGroupList", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        kinds = self._served(group, version)
        if not kinds:
            raise _fail(404, "NotFound", f"the server could not find {group}/{version}")
        resources: list[dict[str, Any]] = []
        for k in sorted(kinds, key=lambda k: k.plural):
            common = {"namespaced": k.namespaced, "kind": k.kind, "verbs": VERBS}
            resources.append(
                {
                    "name": k.plural,
                    "singularName": k.kind.lower(),
                    "shortNames": list(k.short_names),
                    **common,
                }
            )
            resources.extend(
                {"name": f"{k.plural}/{sub}", "singularName": "", **common}
                for sub in sorted(k.subresources)
            )
        return {
            "apiVersion": "v1",
            "kind": "APIResourceList",
            "groupVersion": kinds[0].group_version,
            "resources": resources,
        }

    # --- store helpers (also used directly by tests to play controllers) -----------------------

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _publish(self, key: tuple[str, str], kind: str, obj: dict[str, Any]) -> None:
        coll = self.stores[key]
        if len(coll.history) == coll.history.maxlen:
            coll.forgotten_up_to = coll.history[0][0]
        coll.history.append(
            (int(obj["metadata"]["resourceVersion"]), {"type": kind, "object": copy.deepcopy(obj)})
        )
        coll.changed.set()
        coll.changed = asyncio.Event()
        self.gc.observe(*key, kind, obj)
        for listener in self.listeners:
            listener(*key, kind, obj)

    def _kind(self, plural: str, group: str) -> Kind:
        return self.kinds[group, plural]

    def objects(self, plural: str, group: str = "") -> Iterator[dict[str, Any]]:
        """The stored objects of one resource type (live references: do not mutate)."""
        return iter(list(self.stores[group, plural].objects.values()))

    def get(self, plural: str, namespace: str | None, name: str, group: str = "") -> dict | None:
        """One stored object, or None."""
        return self.stores[group, plural].objects.get((namespace, name))

    def create(
        self, plural: str, namespace: str | None, body: dict[str, Any], group: str = ""
    ) -> dict[str, Any]:
        """Create as a controller would (status included): raises kmock errors like the API."""
        obj = self._create(self._kind(plural, group), namespace, body)
        if body.get("status") is not None:
            obj = self.commit(plural, {**obj, "status": copy.deepcopy(body["status"])}, group)
        return obj

    def commit(self, plural: str, new: dict[str, Any], group: str = "") -> dict[str, Any]:
        """Store an object's next state as a controller writes it: metadata, spec and status
        in one write (a no-op when nothing changes)."""
        new = copy.deepcopy(new)
        meta = new["metadata"]
        kind = self._kind(plural, group)
        return self._store(kind, self._read(kind, meta.get("namespace"), meta["name"]), new, WHOLE)

    def delete(
        self,
        plural: str,
        namespace: str | None,
        name: str,
        group: str = "",
        propagation: str | None = None,
    ) -> dict[str, Any]:
        options = {"propagationPolicy": propagation} if propagation else {}
        return self._delete(self._kind(plural, group), namespace, name, options)

    def collect_garbage(self) -> None:
        """Run the garbage collector now, to the end of every cascade."""
        self.gc.collect()

    # --- resources -------------------------------------------------------------------------------

    def _route(self, parts: list[str]) -> tuple[Kind, str | None, str | None, str | None]:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        kind = self.kinds.get((group, rest[0]))
        if kind is None or kind.version != version:
            raise _fail(
                404,
                "NotFound",
                f"the server could not find the requested resource ({'/'.join(parts)})",
            )
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in kind.subresources:
            raise _fail(404, "NotFound", f"{kind.plural} has no subresource {subresource}")
        return kind, (namespace if kind.namespaced else None), name, subresource

    async def _serve_resource(
        self, request: kmock.Request, parts: list[str]
    ) -> aiohttp.web.StreamResponse:
        kind, namespace, name, subresource = self._route(parts)
        method, params = request.method.value.upper(), request.params
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(request, kind, namespace, name)
        if subresource == "scale" and name is not None:
            return aiohttp.web.json_response(self._serve_scale(kind, namespace, name, request))
        if name is None:
            if method == "GET":
                return aiohttp.web.json_response(self._list(kind, namespace, params))
            if method == "POST":
                body = self._create(kind, namespace, request.data)
                return aiohttp.web.json_response(body, status=201)
            if method == "DELETE":
                options = request.data if isinstance(request.data, dict) else {}
                return aiohttp.web.json_response(
                    self._delete_collection(kind, namespace, params, options)
                )
        else:
            if method == "GET":
                return aiohttp.web.json_response(self._read(kind, namespace, name))
            if method == "PATCH":
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
                body = self._patch(kind, namespace, name, subresource, content_type, request.data)
                return aiohttp.web.json_response(body)
            if method == "PUT":
                return aiohttp.web.json_response(
                    self._replace(kind, namespace, name, subresource, request.data)
                )
            if method == "DELETE":
                options = request.data if isinstance(request.data, dict) else {}
                return aiohttp.web.json_response(self._delete(kind, namespace, name, options))
        raise _fail(405, "MethodNotAllowed", f"{method} is not supported on {request.url.path}")

    def _read(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.stores[kind.group, kind.plural].objects.get((namespace, name))
        if obj is None:
            raise _fail(404, "NotFound", f'{kind.plural} "{name}" not found')
        return obj

    def _matching(
        self, kind: Kind, namespace: str | None, params: dict[str, str]
    ) -> list[dict[str, Any]]:
        try:
            labels_ok = label_matcher(params.get("labelSelector"))
            fields_ok = field_matcher(params.get("fieldSelector"))
        except SelectorError as exc:
            raise _fail(400, "BadRequest", str(exc)) from exc
        coll = self.stores[kind.group, kind.plural]
        candidates = coll.objects if namespace is None else coll.by_namespace.get(namespace, {})
        return [
            obj
            for obj in candidates.values()
            if labels_ok(obj["metadata"].get("labels") or {}) and fields_ok(obj)
        ]

    def _list(self, kind: Kind, namespace: str | None, params: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self._revision)},
            "items": self._matching(kind, namespace, params),
        }

    def _create(self, kind: Kind, namespace: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _fail(400, "BadRequest", "the request body must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(NAME_SUFFIX_ALPHABET, k=5))
            meta["name"] = meta["generateName"] + suffix
        if not meta.get("name"):
            raise _fail(422, "Invalid", f"{kind.kind}: metadata.name: Required value")
        if kind.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise _fail(400, "BadRequest", "the namespace of the object does not match the URL")
            meta["namespace"] = namespace
        coll = self.stores[kind.group, kind.plural]
        if (namespace, meta["name"]) in coll.objects:
            raise _fail(409, "AlreadyExists", f'{kind.plural} "{meta["name"]}" already exists')
        if "status" in kind.subresources:
            obj.pop("status", None)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        _normalize_quantities(obj.get("spec"))
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_revision(),
            creationTimestamp=self.clock.stamp(),
            generation=1,
        )
        for stale in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(stale, None)
        if (kind.group, kind.plural) == CRD_KEY:
            self._register_crd(obj)
        coll.put(namespace, meta["name"], obj)
        self._publish((kind.group, kind.plural), "ADDED", obj)  # a gone owner: the GC's job
        return obj

    def _store(
        self, kind: Kind, old: dict[str, Any], new: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        """Validate and commit a new state of an existing object (patch or replace)."""
        if "status" in kind.subresources and subresource != WHOLE:
            if subresource == "status":
                new = {**copy.deepcopy(old), "status": new.get("status")}
            else:
                new["status"] = copy.deepcopy(old.get("status"))
            if new.get("status") is None:
                new.pop("status")
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        for fixed in ("uid", "name", "namespace", "creationTimestamp", "deletionTimestamp"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        _normalize_quantities(new.get("spec"))
        if old.get("immutable") and _content(new) != _content(old):
            raise _fail(422, "Invalid", f'{kind.kind} "{meta["name"]}" is immutable')
        meta["resourceVersion"] = old_meta["resourceVersion"]
        meta["generation"] = old_meta.get("generation", 1)
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        meta["generation"] += _content(new) != _content(old)
        meta["resourceVersion"] = self._next_revision()
        if (kind.group, kind.plural) == CRD_KEY:
            self._register_crd(new)
        key = (kind.group, kind.plural)
        self.stores[key].put(meta.get("namespace"), meta["name"], new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(kind, new)
        else:
            self._publish(key, "MODIFIED", new)
        return new

    def _patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        subresource: str | None,
        content_type: str,
        body: Any,
    ) -> dict[str, Any]:
        old = self._read(kind, namespace, name)
        try:
            if content_type == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise _fail(400, "BadRequest", "a merge patch must be a JSON object")
                wanted = (body.get("metadata") or {}).get("resourceVersion")
                if wanted is not None and wanted != old["metadata"]["resourceVersion"]:
                    raise _fail(409, "Conflict", f'the object "{name}" has been modified')
                new = merge_patch(old, body)
            elif content_type == "application/json-patch+json":
                new = json_patch(old, body if isinstance(body, list) else [])
            else:
                raise _fail(
                    415,
                    "UnsupportedMediaType",
                    f"the emulator applies merge and JSON patches only, not {content_type!r}",
                )
        except PatchTestFailed as exc:
            raise _fail(422, "Invalid", str(exc)) from exc
        except PatchInvalid as exc:
            raise _fail(422, "Invalid", str(exc)) from exc
        return self._store(kind, old, new, subresource)

    def _replace(
        self, kind: Kind, namespace: str | None, name: str, subresource: str | None, body: Any
    ) -> dict[str, Any]:
        old = self._read(kind, namespace, name)
        if not isinstance(body, dict):
            raise _fail(400, "BadRequest", "the request body must be a JSON object")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise _fail(409, "Conflict", f'the object "{name}" has been modified')
        return self._store(kind, old, copy.deepcopy(body), subresource)

    # --- the scale subresource (CRDs) ------------------------------------------------------------

    def _scale_of(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        """The autoscaling/v1 Scale the API server shows for a custom object."""
        assert kind.scale is not None
        spec_path, status_path, selector_path = kind.scale
        meta = obj["metadata"]
        status: dict[str, Any] = {"replicas": _at_path(obj, status_path) or 0}
        selector = _at_path(obj, selector_path) if selector_path else None
        if selector:
            status["selector"] = selector
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": _at_path(obj, spec_path) or 0},
            "status": status,
        }

    def _serve_scale(
        self, kind: Kind, namespace: str | None, name: str, request: kmock.Request
    ) -> dict[str, Any]:
        """GET, PATCH (merge) and PUT of ``/scale``: only ``spec.replicas`` reaches the object,
        at the CRD's ``specReplicasPath``."""
        if kind.scale is None:
            raise _fail(404, "NotFound", f"{kind.plural} has no scale subresource")
        obj = self._read(kind, namespace, name)
        method = request.method.value.upper()
        if method == "GET":
            return self._scale_of(kind, obj)
        current = self._scale_of(kind, obj)
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type != "application/merge-patch+json" or not isinstance(request.data, dict):
                raise _fail(415, "UnsupportedMediaType", "scale: the emulator takes merge patches")
            wanted = merge_patch(current, request.data)
        elif method == "PUT" and isinstance(request.data, dict):
            wanted = request.data
        else:
            raise _fail(405, "MethodNotAllowed", f"{method} is not supported on scale")
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise _fail(422, "Invalid", "spec.replicas: must be a non-negative integer")
        new = copy.deepcopy(obj)
        _set_path(new, kind.scale[0], replicas)
        return self._scale_of(kind, self._store(kind, obj, new, None))

    @staticmethod
    def _propagation(kind: Kind, options: dict[str, Any]) -> str:
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy is None:  # batch/v1 Jobs keep their pods unless told otherwise
            policy = "Orphan" if (kind.group, kind.plural) == ("batch", "jobs") else "Background"
        if policy not in PROPAGATION_POLICIES:
            raise _fail(422, "Invalid", f"propagationPolicy: Unsupported value: {policy!r}")
        return policy

    def _delete(
        self, kind: Kind, namespace: str | None, name: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        obj = self._read(kind, namespace, name)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj  # being deleted already
        finalizers = list(meta.get("finalizers") or [])
        policy = self._propagation(kind, options)
        gc_finalizer = {"Orphan": ORPHAN, "Foreground": FOREGROUND}.get(policy)
        if gc_finalizer and gc_finalizer not in finalizers:
            finalizers.append(gc_finalizer)
        if finalizers:
            new = copy.deepcopy(obj)
            new["metadata"].update(
                deletionTimestamp=self.clock.stamp(),
                deletionGracePeriodSeconds=0,
                finalizers=finalizers,
                resourceVersion=self._next_revision(),
            )
            self.stores[kind.group, kind.plural].put(namespace, name, new)
            self._publish((kind.group, kind.plural), "MODIFIED", new)
            return new
        self._remove(kind, obj)
        return obj

    def _delete_collection(
        self, kind: Kind, namespace: str | None, params: dict[str, str], options: dict[str, Any]
    ) -> dict[str, Any]:
        items = [
            self._delete(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"], options)
            for obj in self._matching(kind, namespace, params)
        ]
        return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List", "items": items}

    def _remove(self, kind: Kind, obj: dict[str, Any]) -> None:
        """Remove an object for good (the collector then sees to its dependents)."""
        meta = obj["metadata"]
        self.stores[kind.group, kind.plural].drop(meta.get("namespace"), meta["name"])
        gone = {**obj, "metadata": {**meta, "resourceVersion": self._next_revision()}}
        self._publish((kind.group, kind.plural), "DELETED", gone)
        if (kind.group, kind.plural) == CRD_KEY:
            self._unregister_crd(obj)

    # --- CRDs ------------------------------------------------------------------------------------

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        served = [v for v in spec.get("versions") or [] if v.get("served", True)]
        if not served or not names.get("plural") or not spec.get("group"):
            raise _fail(
                422, "Invalid", "a CRD needs spec.group, spec.names.plural and a served version"
            )
        version = next((v for v in served if v.get("storage")), served[0])
        self.kinds[spec["group"], names["plural"]] = Kind(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            subresources=frozenset((version.get("subresources") or {}).keys()),
            scale=_scale_paths(version),
            short_names=tuple(names.get("shortNames") or ()),
        )
        now = self.clock.stamp()
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [version["name"]],
            "conditions": [
                {"type": t, "status": "True", "reason": t, "lastTransitionTime": now}
                for t in ("NamesAccepted", "Established")
            ],
        }

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        kind = self.kinds.get(key)
        if kind is not None:
            for obj in list(self.stores[key].objects.values()):
                self._remove(kind, obj)
        self.kinds.pop(key, None)
        self.stores.pop(key, None)

    # --- watch -----------------------------------------------------------------------------------

    async def _watch(
        self, request: kmock.Request, kind: Kind, namespace: str | None, name: str | None
    ) -> aiohttp.web.StreamResponse:
        params = dict(request.params)
        if name is not None:
            params["fieldSelector"] = ",".join(
                filter(None, [params.get("fieldSelector"), f"metadata.name={name}"])
            )
        try:
            labels_ok = label_matcher(params.get("labelSelector"))
            fields_ok = field_matcher(params.get("fieldSelector"))
        except SelectorError as exc:
            raise _fail(400, "BadRequest", str(exc)) from exc

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (
                namespace in (None, meta.get("namespace"))
                and labels_ok(meta.get("labels") or {})
                and fields_ok(obj)
            )

        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)
        if self.refuse_unversioned_watches and not params.get("resourceVersion"):
            refused = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 500,
                "reason": "InternalError",
                "message": "a watch needs a resourceVersion here: list first",
            }
            await response.write(self._event_line("ERROR", refused))
            await response.write_eof()
            return response
        coll = self.stores[kind.group, kind.plural]
        since = params.get("resourceVersion") or "0"
        deadline = time.monotonic() + float(params.get("timeoutSeconds") or 3600)
        try:
            if since == "0":
                since = str(self._revision)
                for obj in self._matching(kind, namespace, params):
                    await response.write(self._event_line("ADDED", obj))
            last = int(since)
            if last < coll.forgotten_up_to:
                gone = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 410,
                    "reason": "Expired",
                    "message": f"too old resource version: {last}",
                }
                await response.write(self._event_line("ERROR", gone))
                return response
            while time.monotonic() < deadline:
                changed = coll.changed
                fresh = []
                for rv, event in reversed(coll.history):
                    if rv <= last:
                        break
                    fresh.append((rv, event))
                for rv, event in reversed(fresh):
                    last = rv
                    if wanted(event["object"]):
                        await response.write(self._event_line(event["type"], event["object"]))
                if not fresh:
                    try:
                        await asyncio.wait_for(changed.wait(), deadline - time.monotonic())
                    except TimeoutError:
                        break
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    @staticmethod
    def _event_line(kind: str, obj: dict[str, Any]) -> bytes:
        return json.dumps({"type": kind, "object": obj}).encode() + b"\n"
