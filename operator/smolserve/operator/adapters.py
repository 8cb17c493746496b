"""Per-adapter status of a dynamic-LoRA SmolServe, from its pods' reports. Pure.

Each pod's agent reports, per adapter, the source it loaded (or tried to) and a state
(``Loading``, ``Ready``, ``Failed``) with vLLM's or the fetch's own error. The operator folds
those into one line per adapter of the spec (``status.adapters``): its source, a state, on how
many of the ready pods it is loaded (``2/3``) and the error; an ``AdaptersReady`` condition;
and an Event when an adapter becomes ready, fails, or is removed.

An adapter is ``Failed`` when any pod failed it (for its current source) or the spec lists
more than ``maxLoras`` adapters and it is beyond them; ``Ready`` when every ready pod has it
loaded; ``Loading`` otherwise (also while no pod is ready). A pod counts as ready when its
agent says so; a report of another source (a pod still on the previous revision) counts as
not loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smolserve.agent.report import FAILED, LOADING, READY, PodReport
from smolserve.manifests.lora import admitted_adapters, over_limit_message
from smolserve.operator.status import (
    ADAPTER_FAILED,
    ADAPTERS_LOADED,
    ADAPTERS_LOADING,
    ADAPTERS_READY,
    Condition,
    Event,
)
from smolserve.spec import SmolServeSpec

# Event reasons (one per adapter transition).
EVENT_READY, EVENT_FAILED, EVENT_REMOVED = "AdapterReady", "AdapterFailed", "AdapterRemoved"

MAX_IN_MESSAGE = 3  # adapters named in the condition's message; the rest are counted


@dataclass(frozen=True)
class AdapterStatus:
    name: str
    source: str
    state: str
    loaded_pods: int
    ready_pods: int
    error: str | None
    since: str  # when the state last changed

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "state": self.state,
            "pods": f"{self.loaded_pods}/{self.ready_pods}",
            "loadedPods": self.loaded_pods,
            "readyPods": self.ready_pods,
            "lastTransitionTime": self.since,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class AdapterFindings:
    """What the status says about the adapters: one line each, the condition, the Events."""

    adapters: tuple[AdapterStatus, ...]
    condition: Condition
    events: tuple[Event, ...]

    def status(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.adapters]


def _aggregate(
    name: str, source: str, reports: Mapping[str, PodReport]
) -> tuple[str, int, int, str | None]:
    """(state, loaded on ready pods, ready pods, error) of one admitted adapter."""
    ready = [r for r in reports.values() if r.ready]
    loaded = sum(
        1
        for r in ready
        if (a := r.adapters.get(name)) is not None and a.source == source and a.state == READY
    )
    failures = sorted(
        (pod, a.error or "failed")
        for pod, r in reports.items()
        if (a := r.adapters.get(name)) is not None and a.source == source and a.state == FAILED
    )
    if failures:
        return FAILED, loaded, len(ready), failures[0][1]
    if ready and loaded == len(ready):
        return READY, loaded, len(ready), None
    return LOADING, loaded, len(ready), None


def _condition(adapters: tuple[AdapterStatus, ...]) -> Condition:
    failed = [a for a in adapters if a.state == FAILED]
    if failed:
        named = "; ".join(f"{a.name}: {a.error}" for a in failed[:MAX_IN_MESSAGE])
        more = f" (and {len(failed) - MAX_IN_MESSAGE} more)" if len(failed) > MAX_IN_MESSAGE else ""
        return Condition(ADAPTERS_READY, False, ADAPTER_FAILED, f"{named}{more}")
    loading = [a for a in adapters if a.state == LOADING]
    if loading:
        named = ", ".join(f"{a.name} ({a.loaded_pods}/{a.ready_pods})" for a in loading)
        return Condition(ADAPTERS_READY, False, ADAPTERS_LOADING, f"loading: {named}")
    pods = adapters[0].ready_pods if adapters else 0
    return Condition(
        ADAPTERS_READY,
        True,
        ADAPTERS_LOADED,
        f"{len(adapters)} adapter{'s' * (len(adapters) != 1)} loaded on every ready pod ({pods})",
    )


def _events(
    adapters: tuple[AdapterStatus, ...], before: Mapping[str, Mapping[str, Any]]
) -> list[Event]:
    events = []
    for a in adapters:
        old = before.get(a.name) or {}
        same = old.get("state") == a.state and old.get("source") == a.source
        if same and old.get("error") == a.error:
            continue
        if a.state == READY and not same:
            events.append(
                Event(
                    "Normal",
                    EVENT_READY,
                    f"adapter {a.name} ({a.source}) loaded on {a.loaded_pods}/{a.ready_pods} "
                    "ready pods",
                )
            )
        elif a.state == FAILED:
            events.append(
                Event("Warning", EVENT_FAILED, f"adapter {a.name} ({a.source}): {a.error}")
            )
    current = {a.name for a in adapters}
    events += [
        Event("Normal", EVENT_REMOVED, f"adapter {name} removed from the spec: unloaded")
        for name in sorted(set(before) - current)
    ]
    return events


def adapter_findings(
    spec: SmolServeSpec,
    reports: Mapping[str, PodReport],
    previous: list[dict[str, Any]] | None,
    now: str,
) -> AdapterFindings | None:
    """The adapters' status, or None when the spec loads none at run time (static mode, or no
    adapters): then ``status.adapters`` and ``AdaptersReady`` are absent."""
    if not spec.lora.dynamic:
        return None
    before = {a.get("name"): a for a in previous or [] if isinstance(a, dict)}
    admitted, over = admitted_adapters(spec)
    lines = []
    for adapter in admitted:
        state, loaded, ready, error = _aggregate(adapter.name, adapter.source, reports)
        lines.append((adapter, state, loaded, ready, error))
    ready_pods = sum(1 for r in reports.values() if r.ready)
    lines += [(a, FAILED, 0, ready_pods, over_limit_message(spec)) for a in over]
    adapters = []
    for adapter, state, loaded, ready, error in lines:
        old = before.get(adapter.name) or {}
        unchanged = old.get("state") == state and old.get("source") == adapter.source
        since = (
            old.get("lastTransitionTime") if unchanged and old.get("lastTransitionTime") else now
        )
        adapters.append(
            AdapterStatus(adapter.name, adapter.source, state, loaded, ready, error, since)
        )
    result = tuple(adapters)
    return AdapterFindings(result, _condition(result), tuple(_events(result, before)))
