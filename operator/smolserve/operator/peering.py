"""Whether kopf's peering has paused this replica, for the work the operator schedules itself.

kopf pauses a replica while a live peer of a higher priority (or another of the same
priority) is in the peering object, by stopping its own watch streams; it tells nobody
else. The operator's own child watches (``children.py``) and its work queue would go on,
and a standby replica would reconcile beside the active one. So the operator reads the
peering object too and applies kopf's rule (kopf 1.45, ``process_peering_event``): the
replica is paused while another peer whose ``lastseen`` + ``lifetime`` lies in the future
has a priority at least its own, and while the peering object is absent or not read yet
(kopf starts paused when peering is on, and resumes only on that object's event). A
blocking peer that stops refreshing its entry expires: the rule is evaluated again at its
deadline.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smolserve.kinds import Resource
from smolserve.operator.watching import LISTED, watch

logger = logging.getLogger(__name__)

CLUSTER_PEERINGS = Resource(
    "ClusterKopfPeering", "kopf.dev", "v1", "clusterkopfpeerings", namespaced=False
)
NAMESPACED_PEERINGS = Resource("KopfPeering", "kopf.dev", "v1", "kopfpeerings")


@dataclass(frozen=True)
class Verdict:
    paused: bool
    blockers: tuple[str, ...]  # the peers that pause this replica
    recheck_in: float | None  # seconds until the first blocker expires


def _parse(stamp: Any) -> datetime.datetime | None:
    try:
        parsed = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def verdict(
    peers: Mapping[str, Any], identity: str, priority: int, now: datetime.datetime
) -> Verdict:
    """kopf's rule on one peering object's ``status`` (identity → priority, lifetime,
    lastseen): paused while another live peer's priority is at least ours."""
    blockers: list[str] = []
    deadlines: list[float] = []
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        seen = _parse(info.get("lastseen")) if info.get("lastseen") is not None else now
        if seen is None:
            continue
        left = (seen - now).total_seconds() + float(info.get("lifetime", 60))
        if left > 0 and int(info.get("priority", 0)) >= priority:
            blockers.append(peer)
            deadlines.append(left)
    return Verdict(bool(blockers), tuple(sorted(blockers)), min(deadlines, default=None))


class PeeringGate:
    """Keeps ``active`` set while this replica is not paused by any of its peering objects
    (one cluster-wide, or one per served namespace, as kopf reads them)."""

    def __init__(
        self,
        active: asyncio.Event,
        *,
        name: str,
        identity: str,
        priority: int,
        namespaces: list[str | None],
    ) -> None:
        self.active = active
        self.name = name
        self.identity = identity
        self.priority = priority
        self.namespaces = namespaces
        self._verdicts: dict[str | None, Verdict] = {
            ns: Verdict(True, ("the peering object, not read yet",), None) for ns in namespaces
        }
        self._bodies: dict[str | None, Mapping[str, Any]] = {}
        self._timers: dict[str | None, asyncio.TimerHandle] = {}
        active.clear()

    async def run(self, settings: Any) -> None:
        """Watch the peering objects until cancelled."""
        resource = CLUSTER_PEERINGS if self.namespaces == [None] else NAMESPACED_PEERINGS
        try:
            await asyncio.gather(*(self._follow(settings, resource, ns) for ns in self.namespaces))
        finally:
            for timer in self._timers.values():
                timer.cancel()

    async def _follow(self, settings: Any, resource: Resource, namespace: str | None) -> None:
        async for event in watch(settings, resource, namespace):
            if event == LISTED:
                self._evaluate(namespace)
                continue
            assert isinstance(event, dict)
            body = event["object"]
            if (body.get("metadata") or {}).get("name") != self.name:
                continue
            if event["type"] == "DELETED":
                self._bodies.pop(namespace, None)
            else:
                self._bodies[namespace] = body
            self._evaluate(namespace)

    def _evaluate(self, namespace: str | None) -> None:
        body = self._bodies.get(namespace)
        if body is None:  # kopf too stays paused until its peering object exists
            found = Verdict(True, (f"no peering object {self.name!r}",), None)
        else:
            now = datetime.datetime.now(datetime.UTC)
            found = verdict(body.get("status") or {}, self.identity, self.priority, now)
        self._verdicts[namespace] = found
        timer = self._timers.pop(namespace, None)
        if timer is not None:
            timer.cancel()
        if found.recheck_in is not None:
            loop = asyncio.get_running_loop()
            self._timers[namespace] = loop.call_later(
                found.recheck_in + 0.1, self._evaluate, namespace
            )
        paused = [v for v in self._verdicts.values() if v.paused]
        if paused and self.active.is_set():
            logger.info("paused in favour of %s", ", ".join(b for v in paused for b in v.blockers))
            self.active.clear()
        elif not paused and not self.active.is_set():
            logger.info("active: no live peer of a higher or the same priority")
            self.active.set()
