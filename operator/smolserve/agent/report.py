"""The protocol between the operator and the serving agent (the sidecar in every vLLM pod). Pure.

Two ConfigMaps per SmolServe, both children of it:

- ``<name>-agent-config``: what the operator wants, one JSON document (``AgentConfig``) under
  the key ``agent.json``; every agent reads it and watches it for changes.
- ``<name>-agent-status``: what the pods found, one key per pod (its name), each a JSON
  ``PodReport``. An agent writes only its own key, with a merge patch (patches of different
  keys never conflict); the operator reads them all and removes the keys of pods that are gone.

A report is written on a change only (vLLM became healthy, the battery ran, an adapter
loaded), never as a heartbeat: a steady pod writes nothing. Both sides use this module, so a
test can play the agent by writing what ``report_patch`` gives.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

CONFIG_KEY = "agent.json"
# Smoke battery states: Pending (vLLM not healthy yet), Running, Passed, Failed.
PENDING, RUNNING, PASSED, FAILED = "Pending", "Running", "Passed", "Failed"
SMOKE_STATES = (PENDING, RUNNING, PASSED, FAILED)
# Adapter states (dynamic LoRA).
LOADING, READY = "Loading", "Ready"
ADAPTER_STATES = (LOADING, READY, FAILED)
# The check a battery fails when it does not pass within its timeout.
TIMEOUT_CHECK = "timeout"


class ReportError(ValueError):
    """A document that is not a report (or config) of this protocol."""


def agent_config_name(serve: str) -> str:
    return f"{serve}-agent-config"


def agent_status_name(serve: str) -> str:
    return f"{serve}-agent-status"


def format_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: str | None) -> datetime.datetime | None:
    """An RFC 3339 time (``…Z`` or with an offset); None for None or nonsense."""
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def seconds_between(earlier: str | None, later: str | None) -> float | None:
    start, end = parse_time(earlier), parse_time(later)
    return None if start is None or end is None else (end - start).total_seconds()


# --- what the operator wants -------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeConfig:
    timeout_seconds: int


@dataclass(frozen=True)
class DesiredAdapter:
    name: str
    source: str  # hf://org/repo@rev or pvc://claim/path, as the spec gives it

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DesiredAdapter:
        return cls(str(doc["name"]), str(doc["source"]))


@dataclass(frozen=True)
class LoraConfig:
    """Dynamic LoRA: the adapters the agent loads into its vLLM, and what it checks first
    (where they are in the pod is the agent's ``--adapters-dir`` layout, ``manifests/lora.py``)."""

    adapters: tuple[DesiredAdapter, ...]
    max_rank: int
    base_model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapters": [a.to_dict() for a in self.adapters],
            "maxRank": self.max_rank,
            "baseModel": self.base_model,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LoraConfig:
        return cls(
            adapters=tuple(DesiredAdapter.from_dict(a) for a in doc.get("adapters") or []),
            max_rank=int(doc["maxRank"]),
            base_model=str(doc["baseModel"]),
        )


@dataclass(frozen=True)
class AgentConfig:
    """``smoke``: run the battery (None: no battery); ``adapters``: the adapters the battery
    checks (each answers one request: the spec's, in static mode); ``lora``: the adapters a
    dynamic-LoRA agent loads (None: static mode or none), each checked by the loading itself."""

    smoke: SmokeConfig | None
    adapters: tuple[DesiredAdapter, ...] = ()
    lora: LoraConfig | None = None

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "smoke": None if self.smoke is None else {"timeoutSeconds": self.smoke.timeout_seconds},
            "adapters": [a.to_dict() for a in self.adapters],
        }
        if self.lora is not None:
            doc["lora"] = self.lora.to_dict()
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        doc = _object(text, "agent config")
        smoke = doc.get("smoke")
        adapters = doc.get("adapters") or []
        lora = doc.get("lora")
        try:
            return cls(
                smoke=None if smoke is None else SmokeConfig(int(smoke["timeoutSeconds"])),
                adapters=tuple(DesiredAdapter.from_dict(a) for a in adapters),
                lora=None if lora is None else LoraConfig.from_dict(lora),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"agent config: {exc!r}") from exc


def config_data(config: AgentConfig) -> dict[str, str]:
    """The ``data`` of ``<name>-agent-config``."""
    return {CONFIG_KEY: config.to_json()}


def read_config(data: Mapping[str, str] | None) -> AgentConfig:
    text = (data or {}).get(CONFIG_KEY)
    if text is None:
        raise ReportError(f"agent config: no key {CONFIG_KEY!r}")
    return AgentConfig.from_json(text)


# --- what a pod reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeReport:
    """The battery on one pod. ``check``/``observed``: the first failing check and what the
    server returned; ``failed``: every failing check; ``seconds``: the battery's wall time."""

    state: str
    check: str | None = None
    observed: str | None = None
    failed: tuple[str, ...] = ()
    at: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        for key in ("check", "observed", "at", "seconds"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.failed:
            out["failed"] = list(self.failed)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SmokeReport:
        state = doc.get("state")
        if state not in SMOKE_STATES:
            raise ReportError(f"smoke state {state!r} (known: {', '.join(SMOKE_STATES)})")
        seconds = doc.get("seconds")
        return cls(
            state=state,
            check=doc.get("check"),
            observed=doc.get("observed"),
            failed=tuple(doc.get("failed") or ()),
            at=doc.get("at"),
            seconds=float(seconds) if seconds is not None else None,
        )


@dataclass(frozen=True)
class AdapterReport:
    source: str
    state: str
    error: str | None = None
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "state": self.state}
        out |= {k: getattr(self, k) for k in ("error", "at") if getattr(self, k) is not None}
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AdapterReport:
        state = doc.get("state")
        if state not in ADAPTER_STATES:
            raise ReportError(f"adapter state {state!r} (known: {', '.join(ADAPTER_STATES)})")
        return cls(str(doc.get("source", "")), state, doc.get("error"), doc.get("at"))


@dataclass(frozen=True)
class PodReport:
    """One pod's report. ``pod_template_hash``: the pod's ``smolserve.dev/pod-template-hash``
    annotation (the operator's hash of the pod template, what rollouts are judged by);
    ``replicaset_hash``: its ``pod-template-hash`` label (the Deployment controller's);
    ``healthy_since``: when its vLLM last became healthy (None: not healthy now)."""

    pod: str
    uid: str | None = None
    pod_template_hash: str | None = None
    replicaset_hash: str | None = None
    ready: bool = False
    healthy_since: str | None = None
    smoke: SmokeReport | None = None
    adapters: Mapping[str, AdapterReport] = field(default_factory=dict)
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pod": self.pod, "ready": self.ready}
        optional = {
            "uid": self.uid,
            "podTemplateHash": self.pod_template_hash,
            "replicaSetHash": self.replicaset_hash,
            "healthySince": self.healthy_since,
            "at": self.at,
        }
        out |= {k: v for k, v in optional.items() if v is not None}
        if self.smoke is not None:
            out["smoke"] = self.smoke.to_dict()
        if self.adapters:
            out["adapters"] = {n: a.to_dict() for n, a in sorted(self.adapters.items())}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PodReport:
        doc = _object(text, "pod report")
        if not isinstance(doc.get("pod"), str):
            raise ReportError("pod report: no pod name")
        smoke = doc.get("smoke")
        adapters = doc.get("adapters") or {}
        if not isinstance(adapters, dict) or not (smoke is None or isinstance(smoke, dict)):
            raise ReportError("pod report: smoke or adapters is not an object")
        return cls(
            pod=doc["pod"],
            uid=doc.get("uid"),
            pod_template_hash=doc.get("podTemplateHash"),
            replicaset_hash=doc.get("replicaSetHash"),
            ready=bool(doc.get("ready")),
            healthy_since=doc.get("healthySince"),
            smoke=None if smoke is None else SmokeReport.from_dict(smoke),
            adapters={n: AdapterReport.from_dict(a) for n, a in adapters.items()},
            at=doc.get("at"),
        )

    def but(self, **changes: Any) -> PodReport:
        return replace(self, **changes)


def report_patch(report: PodReport) -> dict[str, Any]:
    """The merge patch of ``<name>-agent-status`` that writes this pod's report."""
    return {"data": {report.pod: report.to_json()}}


def removal_patch(pods: Iterable[str]) -> dict[str, Any]:
    """The merge patch that removes these pods' reports."""
    return {"data": dict.fromkeys(sorted(pods))}


def read_reports(data: Mapping[str, str] | None) -> tuple[dict[str, PodReport], list[str]]:
    """The reports in ``<name>-agent-status``'s data, and the keys that hold no report."""
    reports: dict[str, PodReport] = {}
    unreadable: list[str] = []
    for key, text in (data or {}).items():
        try:
            report = PodReport.from_json(text)
        except ReportError:
            unreadable.append(key)
            continue
        if report.pod != key:
            unreadable.append(key)
        else:
            reports[key] = report
    return reports, sorted(unreadable)


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ReportError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ReportError(f"{what}: not a JSON object")
    return doc
