"""ownerReference garbage collection, as kube-controller-manager's garbage collector does it.

The emulator shows the collector every change (``observe``). The collector keeps an index
owner uid → dependents and acts ``delay`` seconds (clock time) after there is something to do,
or, with ``delay=None``, only when ``collect()`` is called, so that, as on a real cluster, an
owner is gone first and its dependents stay visible for a while, their ownerReferences
pointing at a uid that no longer exists. What it does, as the real one does:

- a dependent none of whose owners exists (by uid: an owner re-created under the same name is
  another owner) is deleted, in the background (in the foreground when an owner that is
  being deleted in the foreground waits for it and it has dependents of its own);
- a dependent with a surviving owner only loses its references to the owners that are gone;
- an owner deleted with ``propagationPolicy: Orphan`` carries the ``orphan`` finalizer until
  the references to it are removed from its dependents, which are kept;
- an owner deleted with ``Foreground`` carries the ``foregroundDeletion`` finalizer until its
  dependents with ``blockOwnerDeletion: true`` are gone (the others are deleted too, without
  holding it).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import Timer

if TYPE_CHECKING:
    from .emulator import Emulator

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


@dataclass(frozen=True)
class Stored:
    """Where one object (one uid) is stored."""

    group: str
    plural: str
    namespace: str | None
    name: str
    uid: str


class GarbageCollector:
    def __init__(self, emulator: Emulator, delay: float | None) -> None:
        self.emulator = emulator
        self.delay = delay
        self._where: dict[str, Stored] = {}  # uid → location, for every object that exists
        self._owners: dict[str, tuple[str, ...]] = {}  # dependent uid → its owners' uids
        self._dependents: dict[str, set[Stored]] = {}  # owner uid → dependents
        self._pending: dict[Stored, float] = {}  # objects to look at → when (clock time)
        self._timer: Timer | None = None
        self._collecting = False

    def exists(self, uid: str | None) -> bool:
        return uid in self._where

    def _schedule(self, item: Stored) -> None:
        self._pending.setdefault(item, self.emulator.clock.now() + (self.delay or 0.0))
        if not self._collecting:
            self._arm()

    def _arm(self) -> None:
        """Have the timer fire when the first pending item falls due (never, with no delay)."""
        if self.delay is None or not self._pending:
            return
        first = min(self._pending.values())
        if self._timer is not None:
            if self._timer.when <= first:
                return
            self._timer.cancel()
        self._timer = self.emulator.clock.call_at(first, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.collect(due_only=True)
        except Exception:  # reported by the cluster fixture, never lost
            self.emulator.errors.append(traceback.format_exc())

    # --- the graph ---------------------------------------------------------------------------

    def observe(self, group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
        """Keep the graph up to date with one change (ADDED, MODIFIED, DELETED)."""
        meta = obj["metadata"]
        uid = meta["uid"]
        here = Stored(group, plural, meta.get("namespace"), meta["name"], uid)
        owners = tuple(r["uid"] for r in meta.get("ownerReferences") or [] if r.get("uid"))
        old = self._owners.get(uid, ())
        if change == "DELETED":
            for owner in old:
                self._unlink(owner, here)
                if self._waits_for_dependents(owner):  # it may go now
                    self._schedule(self._where[owner])
            self._where.pop(uid, None)
            self._owners.pop(uid, None)
            for dependent in self._dependents.get(uid, ()):
                self._schedule(dependent)  # its owner is gone
            return
        for owner in set(old) - set(owners):
            self._unlink(owner, here)
        self._where[uid] = here
        self._owners[uid] = owners
        for owner in owners:
            self._dependents.setdefault(owner, set()).add(here)
        if any(owner not in self._where for owner in owners):
            self._schedule(here)
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and (ORPHAN in finalizers or FOREGROUND in finalizers):
            self._schedule(here)

    def _unlink(self, owner: str, dependent: Stored) -> None:
        dependents = self._dependents.get(owner)
        if dependents is not None:
            dependents.discard(dependent)
            if not dependents:
                del self._dependents[owner]

    # --- collecting --------------------------------------------------------------------------

    def collect(self, *, due_only: bool = False) -> None:
        """Act on everything pending (only what is due, with ``due_only``), to a fixed point."""
        if self._collecting:
            return
        self._collecting = True
        try:
            while True:
                now = self.emulator.clock.now()
                ready = [i for i, due in self._pending.items() if not due_only or due <= now]
                if not ready:
                    break
                for item in ready:
                    del self._pending[item]
                    self._attempt(item)
        finally:
            self._collecting = False
        self._arm()

    def _live(self, item: Stored) -> dict[str, Any] | None:
        obj = self.emulator.get(item.plural, item.namespace, item.name, item.group)
        return obj if obj is not None and obj["metadata"]["uid"] == item.uid else None

    def _attempt(self, item: Stored) -> None:
        obj = self._live(item)
        if obj is None:
            return
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and ORPHAN in finalizers:
            for dependent in list(self._dependents.get(item.uid, ())):
                live = self._live(dependent)
                if live is not None:
                    refs = live["metadata"].get("ownerReferences") or []
                    self._set_owners(dependent, live, [r for r in refs if r["uid"] != item.uid])
            self._drop_finalizer(item, obj, ORPHAN)
            return
        if meta.get("deletionTimestamp") and FOREGROUND in finalizers:
            blocked = False
            for dependent in list(self._dependents.get(item.uid, ())):
                live = self._live(dependent)
                if live is None:
                    continue
                if not live["metadata"].get("deletionTimestamp"):
                    self._attempt_dependent(dependent, live)
                    live = self._live(dependent)
                refs = (live or {}).get("metadata", {}).get("ownerReferences") or []
                blocked |= any(r["uid"] == item.uid and r.get("blockOwnerDeletion") for r in refs)
            if not blocked:
                self._drop_finalizer(item, obj, FOREGROUND)
                return
        if not meta.get("deletionTimestamp"):
            self._attempt_dependent(item, obj)

    def _waits_for_dependents(self, uid: str) -> bool:
        owner = self._where.get(uid)
        obj = self._live(owner) if owner else None
        meta = (obj or {}).get("metadata", {})
        return bool(meta.get("deletionTimestamp")) and FOREGROUND in (meta.get("finalizers") or [])

    def _attempt_dependent(self, item: Stored, obj: dict[str, Any]) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return
        dangling = [r for r in refs if r["uid"] not in self._where]
        waiting = [r for r in refs if r not in dangling and self._waits_for_dependents(r["uid"])]
        solid = [r for r in refs if r not in dangling and r not in waiting]
        if solid:
            if dangling or waiting:
                self._set_owners(item, obj, solid)
            return
        if waiting and self._dependents.get(item.uid):
            policy = "Foreground"
        else:
            finalizers = obj["metadata"].get("finalizers") or []
            policy = (
                "Orphan"
                if ORPHAN in finalizers
                else "Foreground"
                if FOREGROUND in finalizers
                else "Background"
            )
        kind = self.emulator.kinds.get((item.group, item.plural))
        if kind is not None:
            self.emulator._delete(kind, item.namespace, item.name, {"propagationPolicy": policy})

    def _set_owners(self, item: Stored, obj: dict[str, Any], refs: list[dict[str, Any]]) -> None:
        new = {**obj, "metadata": {**obj["metadata"], "ownerReferences": refs}}
        if not refs:
            del new["metadata"]["ownerReferences"]
        self.emulator.commit(item.plural, new, item.group)

    def _drop_finalizer(self, item: Stored, obj: dict[str, Any], finalizer: str) -> None:
        rest = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        new = {**obj, "metadata": {**obj["metadata"], "finalizers": rest}}
        if not rest:
            del new["metadata"]["finalizers"]
        self.emulator.commit(item.plural, new, item.group)
