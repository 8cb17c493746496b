"""What this operator just wrote, until its watches show it: the write overlay and echo checks.

kopf's indexes are fed by watches, which lag behind the operator's own writes. A reconcile
that runs in between (another child's event, a retry) would see the old state and send the
same write again. ``Overlay`` remembers each write's result per SmolServe (the projection the
indexes keep of it, ``projection.project``) until the watch shows an object at that
resourceVersion or newer, and lays it over the cached objects, so the planner acts on what is
really there. The same records tell a watch event that only echoes
this operator's write (nothing new to reconcile) from a change made by someone else.

Pure bookkeeping, thread-safe, no I/O. Everything kept for a SmolServe is dropped by
``forget`` when the SmolServe goes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from smolserve.kinds import Ref

Key = tuple[str, str]  # (namespace, SmolServe name)


def resource_version(obj: Mapping[str, Any]) -> int:
    """An object's resourceVersion as a number (-1 when it has none)."""
    raw = str(obj.get("metadata", {}).get("resourceVersion", ""))
    return int(raw) if raw.isdigit() else -1


def _contains(live: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(_contains(live.get(k), v) for k, v in wanted.items())
    return live == wanted


class Overlay:
    """Per SmolServe: the objects written (None for deleted) and the status last written."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._objects: dict[Key, dict[Ref, dict[str, Any] | None]] = {}
        self._status: dict[Key, tuple[dict[str, Any], int]] = {}  # status, its resourceVersion

    def record(self, key: Key, ref: Ref, body: dict[str, Any] | None) -> None:
        """Remember a write's result (the API's answer), or that ``ref`` was deleted."""
        with self._guard:
            self._objects.setdefault(key, {})[ref] = body

    def record_status(self, key: Key, status: dict[str, Any], version: int) -> None:
        """Remember a status write and the resourceVersion the API answered it with."""
        with self._guard:
            self._status[key] = (status, version)

    def objects(self, key: Key, cached: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The cached objects with this operator's unseen writes laid over them.

        Objects being deleted (``deletionTimestamp``) count as gone. A record is dropped once
        the cache holds that object at the written resourceVersion or newer (or, for a
        deletion, no longer holds it).
        """
        seen: dict[Ref, dict[str, Any]] = {}
        for obj in cached:
            if not obj.get("metadata", {}).get("deletionTimestamp"):
                seen[Ref.of(obj)] = obj
        with self._guard:
            written = self._objects.get(key)
            if not written:
                return list(seen.values())
            for ref, body in list(written.items()):
                live = seen.get(ref)
                if body is None:
                    if live is None:
                        del written[ref]
                    else:
                        del seen[ref]
                elif live is not None and resource_version(live) >= resource_version(body):
                    del written[ref]
                else:
                    seen[ref] = body
            if not written:
                del self._objects[key]
        return list(seen.values())

    def serve(self, key: Key, serve: dict[str, Any]) -> dict[str, Any]:
        """The SmolServe with the status this operator last wrote, until the watch shows it.

        Once the watch shows the SmolServe at that write's resourceVersion or newer, what it
        shows is the truth, even without the written status (someone wrote after it).
        """
        with self._guard:
            record = self._status.get(key)
            if record is None:
                return serve
            written, version = record
            if resource_version(serve) >= version or _contains(serve.get("status"), written):
                del self._status[key]
                return serve
        return {**serve, "status": {**(serve.get("status") or {}), **written}}

    def echoed(self, key: Key, body: Mapping[str, Any], *, deleted: bool = False) -> bool:
        """Whether a watch event shows exactly this operator's last write of that object (for
        a deletion: that this operator deleted it). If so, the record is dropped: the watch
        cache holds what was written now (kopf indexes an event before its handlers run), and
        a SmolServe that no later event reconciles keeps no record of it."""
        ref = Ref.of(dict(body))
        with self._guard:
            records = self._objects.get(key, {})
            if ref not in records:
                return False
            written = records[ref]
            if deleted:
                echo = written is None
            else:
                echo = written is not None and resource_version(written) == resource_version(body)
            if echo:
                del records[ref]
                if not records:
                    del self._objects[key]
        return echo

    def forget(self, key: Key) -> None:
        """Drop everything kept for a SmolServe (deleted: a new one of that name starts clean)."""
        with self._guard:
            self._objects.pop(key, None)
            self._status.pop(key, None)

    def __len__(self) -> int:
        """How many SmolServes have records (for leak checks)."""
        with self._guard:
            return len(self._objects.keys() | self._status.keys())
