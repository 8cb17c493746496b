"""The children's caches: the operator lists and watches its own child kinds, not kopf.

kopf turns every watch event into handler invocations with their full machinery (body
views, a patch object, loggers, every handler's arguments, the start-up index gate):
measured, 1.3 to 1.6 ms of CPU per child event, and children make most of an operator's
events (6 of the 9 per SmolServe in bulk). All the operator needs from a child's event is
its projection in a cache and a reconcile queued unless the event only shows its own last
write, so it keeps both itself: one stream per kind (and served namespace) through
``watching.watch``, the API server filtering by the serve label, into caches that the
reconcile reads as it reads kopf's indexes. The template-source ConfigMaps (labelled
``part-of=smolserve``, no serve label) come with the ConfigMap stream.

A reconcile starts only when every stream has listed once (``Gate.listed``), as kopf's
handlers wait for its indexes. A stream that lists again (after "410 Gone" or a failure)
drops what the new list no longer shows, and queues a reconcile for its SmolServes, as for
a deletion. kopf keeps what the operator cannot know in advance: the SmolServes, the
optional kinds (discovered when their CRDs appear) and the vLLM pods.
"""

from __future__ import annotations

import asyncio
from collections import ChainMap
from collections.abc import Iterator, Mapping
from typing import Any

from smolserve import labels
from smolserve.kinds import CHILDREN, Resource
from smolserve.operator.projection import pack
from smolserve.operator.runtime import (
    SOURCES_INDEX,
    Key,
    Reconciler,
    children_index,
    text_hashes,
)
from smolserve.operator.watching import LISTED, watch

OWN_KINDS = tuple(child for child in CHILDREN if not child.optional)


class Cache:
    """One index's objects, read like a kopf index: ``get(key)`` → their projections."""

    def __init__(self) -> None:
        self._entries: dict[Key, dict[str, Any]] = {}

    def get(self, key: Key, default: Any = ()) -> Any:
        entries = self._entries.get(key)
        return tuple(entries.values()) if entries else default

    def put(self, key: Key, name: str, value: Any) -> None:
        self._entries.setdefault(key, {})[name] = value

    def drop(self, key: Key, name: str) -> None:
        entries = self._entries.get(key)
        if entries is not None:
            entries.pop(name, None)
            if not entries:
                del self._entries[key]

    def items(self, namespace: str | None) -> Iterator[tuple[Key, str]]:
        """Every (key, object name) in ``namespace`` (None: all)."""
        for key, entries in list(self._entries.items()):
            if namespace is None or key[0] == namespace:
                for name in list(entries):
                    yield key, name


def _where(obj: Mapping[str, Any], kind: str) -> tuple[str, Key] | None:
    """The index and key an object belongs under: its SmolServe's, or (a ConfigMap without
    the serve label) the template source's own name."""
    meta = obj.get("metadata") or {}
    serve = (meta.get("labels") or {}).get(labels.SERVE)
    if serve is not None:
        return children_index(kind), (meta.get("namespace"), serve)
    if kind == "ConfigMap":
        return SOURCES_INDEX, (meta.get("namespace"), meta["name"])
    return None


class ChildCaches:
    """The streams and caches of every child kind the operator creates unconditionally."""

    def __init__(self, reconciler: Reconciler, namespaces: list[str | None]) -> None:
        self.reconciler = reconciler
        self.namespaces = namespaces
        self.caches: dict[str, Cache] = {children_index(c.kind): Cache() for c in OWN_KINDS}
        self.caches[SOURCES_INDEX] = Cache()
        # What reconciles read: these caches, then kopf's indexes (pods, optional kinds).
        self.indexes: ChainMap[str, Any] = ChainMap(self.caches, {})
        self._unlisted = {(c.kind, ns) for c in OWN_KINDS for ns in namespaces}

    def with_kopf_indexes(self, indexes: Mapping[str, Any]) -> None:
        """kopf's indexes (live objects; start-up handlers get them as arguments)."""
        self.indexes.maps[1] = dict(indexes)

    async def run(self, settings: Any) -> None:
        """Follow every stream until cancelled."""
        await asyncio.gather(
            *(
                self._follow(settings, child, namespace)
                for child in OWN_KINDS
                for namespace in self.namespaces
            )
        )

    async def _follow(self, settings: Any, child: Resource, namespace: str | None) -> None:
        listing: set[tuple[str, Key, str]] = set()
        async for event in watch(settings, child, namespace):
            if event == LISTED:
                await self._listed(child.kind, namespace, listing)
                listing = set()
                continue
            assert isinstance(event, dict)
            obj = event["object"]
            where = _where(obj, child.kind)
            if where is None:
                continue
            index, key = where
            name = obj["metadata"]["name"]
            if event["type"] is None:
                listing.add((index, key, name))
            await self._changed(index, key, name, obj, deleted=event["type"] == "DELETED")

    async def _changed(
        self, index: str, key: Key, name: str, obj: Mapping[str, Any], *, deleted: bool
    ) -> None:
        cache = self.caches[index]
        if deleted:
            cache.drop(key, name)
        elif index == SOURCES_INDEX:
            cache.put(key, name, text_hashes(obj))
        else:
            cache.put(key, name, pack(obj))
        reconciler = self.reconciler
        if index == SOURCES_INDEX:
            for serve in reconciler.referrers(*key):
                await reconciler.submit(serve, self.indexes)
        elif not reconciler.overlay.echoed(key, obj, deleted=deleted):
            await reconciler.submit(key, self.indexes, after_deletion=deleted)

    async def _listed(
        self, kind: str, namespace: str | None, listing: set[tuple[str, Key, str]]
    ) -> None:
        """A list ended: drop what it no longer shows (deleted while no watch ran)."""
        indexes = [children_index(kind)] + ([SOURCES_INDEX] if kind == "ConfigMap" else [])
        for index in indexes:
            for key, name in list(self.caches[index].items(namespace)):
                if (index, key, name) not in listing:
                    gone = {"kind": kind, "metadata": {"name": name, "namespace": key[0]}}
                    await self._changed(index, key, name, gone, deleted=True)
        self._unlisted.discard((kind, namespace))
        if not self._unlisted:
            self.reconciler.gate.listed.set()
