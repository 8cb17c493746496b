"""What the serving agents report, as the operator reads it. Pure.

Every vLLM pod's agent writes one key of ``<name>-agent-status`` (``smolserve.agent.report``).
The operator also watches the SmolServe's server pods, keeping a small projection of each
(``pod_projection``: name, uid, the pod-template hash, readiness; never the full body), so it
knows which reports belong to pods that exist. A report whose pod is gone is removed, once it
is older than ``REPORT_GRACE_SECONDS`` (a new pod's first report may arrive before the pod's
own watch event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smolserve import labels
from smolserve.agent.report import PodReport, read_reports, removal_patch, seconds_between
from smolserve.kinds import Ref

REPORT_GRACE_SECONDS = 30.0


def pod_projection(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a server pod (pod-shaped, so ``Ref.of`` reads it)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    kept_meta: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
        "creationTimestamp": meta.get("creationTimestamp"),
    }
    template_hash = (meta.get("annotations") or {}).get(labels.POD_TEMPLATE_HASH)
    if template_hash:
        kept_meta["annotations"] = {labels.POD_TEMPLATE_HASH: template_hash}
    if meta.get("deletionTimestamp"):
        kept_meta["deletionTimestamp"] = meta["deletionTimestamp"]
    return {
        "kind": "Pod",
        "metadata": kept_meta,
        "status": {"phase": status.get("phase"), "ready": ready},
    }


@dataclass(frozen=True)
class PodView:
    name: str
    uid: str | None
    pod_template_hash: str | None
    ready: bool
    deleting: bool

    @classmethod
    def of(cls, projection: Mapping[str, Any]) -> PodView:
        meta = projection.get("metadata") or {}
        return cls(
            name=meta.get("name") or "",
            uid=meta.get("uid"),
            pod_template_hash=(meta.get("annotations") or {}).get(labels.POD_TEMPLATE_HASH),
            ready=bool((projection.get("status") or {}).get("ready")),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass(frozen=True)
class AgentReports:
    """The reports of pods that exist (by pod name), the keys to remove, and when the next
    report of a vanished pod becomes old enough to remove (seconds from now; None: none)."""

    reports: dict[str, PodReport]
    pods: dict[str, PodView]
    stale: tuple[str, ...] = ()
    recheck_after: float | None = None

    def of_template(self, pod_template_hash: str | None) -> list[PodReport]:
        """The reports of the existing pods that run this pod template."""
        return [
            r
            for name, r in sorted(self.reports.items())
            if self.pods[name].pod_template_hash == pod_template_hash
        ]


def read_agent_reports(
    status_configmap: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]], now: str
) -> AgentReports:
    """The agents' reports matched to the live pods (by name and uid)."""
    views = {v.name: v for v in map(PodView.of, pods)}
    reports, unreadable = read_reports((status_configmap or {}).get("data"))
    current: dict[str, PodReport] = {}
    stale = list(unreadable)
    soonest: float | None = None
    for name, report in reports.items():
        pod = views.get(name)
        if pod is not None and (report.uid is None or pod.uid is None or report.uid == pod.uid):
            current[name] = report
            continue
        age = seconds_between(report.at, now)
        if age is None or age >= REPORT_GRACE_SECONDS:
            stale.append(name)
        else:
            wait = REPORT_GRACE_SECONDS - age
            soonest = wait if soonest is None else min(soonest, wait)
    return AgentReports(current, views, tuple(sorted(stale)), soonest)


def cleanup(
    status_configmap: Mapping[str, Any] | None, found: AgentReports
) -> tuple[Ref, dict[str, Any]] | None:
    """The merge patch that removes the stale reports, if any."""
    if status_configmap is None or not found.stale:
        return None
    return Ref.of(dict(status_configmap)), removal_patch(found.stale)
