"""A SmolServe's status: conditions with reasons, the phase, and the Events their changes raise.

Pure: the reconcile planner says what it found (``Findings``); this module turns that into
the status object and, by comparing with the previous status, the Events to post. A
condition's ``lastTransitionTime`` moves only when its ``status`` changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Condition types.
TEMPLATE_READY = "TemplateReady"
AVAILABLE = "Available"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
SMOKE_TESTED = "SmokeTested"  # only with rollout.smoke (operator/rollout.py)
ADAPTERS_READY = "AdaptersReady"  # only with dynamic LoRA adapters (operator/adapters.py)

# Reasons (docs/operator.md has the table: reason → meaning → fix).
TEMPLATE_VERIFIED = "TemplateVerified"
TEMPLATE_JOB_RUNNING = "TemplateJobRunning"
TEMPLATE_JOB_FAILED = "TemplateJobFailed"
SOURCE_CONFIGMAP_MISSING = "SourceConfigMapMissing"
TEMPLATE_CONFIGMAP_MISSING = "TemplateConfigMapMissing"
WAITING_FOR_PREDECESSOR = "WaitingForPredecessor"
NAME_CONFLICT = "NameConflict"
INVALID_SPEC = "InvalidSpec"
APPLY_FAILED = "ApplyFailed"
DEPLOYMENT_AVAILABLE = "MinimumReplicasAvailable"
DEPLOYMENT_UNAVAILABLE = "MinimumReplicasUnavailable"
NO_DEPLOYMENT = "WaitingForTemplate"
ROLLING_OUT = "RollingOut"
ROLLOUT_COMPLETE = "RolloutComplete"
ROLLOUT_STALLED = "ProgressDeadlineExceeded"
AS_EXPECTED = "AsExpected"
SMOKE_TEST_PASSED = "SmokeTestPassed"
SMOKE_TEST_RUNNING = "SmokeTestRunning"
SMOKE_TEST_PENDING = "SmokeTestPending"
SMOKE_TEST_FAILED = "SmokeTestFailed"
ADAPTERS_LOADED = "AdaptersLoaded"
ADAPTERS_LOADING = "AdaptersLoading"
ADAPTER_FAILED = "AdapterFailed"

# Phases, in the order `kubectl get smol` users read them.
PENDING, PROGRESSING_PHASE, READY, DEGRADED_PHASE = "Pending", "Progressing", "Ready", "Degraded"


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Findings:
    """What a reconcile found, in the terms the status speaks."""

    template: Condition  # TemplateReady, as judged by the planner
    degraded: Condition | None  # a problem only the operator can see, or None
    deployment: dict[str, Any] | None  # the live Deployment (its status), if any
    desired_replicas: int
    template_hash: str | None  # first 8 hex of the template's sha256 (in use, or about to be)
    template_configmap: str | None
    endpoint: str | None
    selector: str | None
    model_revision: str | None = None
    # Progressing, when desired objects wait for a deleted predecessor's to be collected.
    waiting: Condition | None = None
    smoke: Condition | None = None  # SmokeTested (None: rollout.smoke is off)
    rollout: dict[str, Any] | None = None  # status.rollout (smoke-gated rollouts)
    # Dynamic LoRA (operator/adapters.py): AdaptersReady, status.adapters, per-adapter Events.
    adapters_ready: Condition | None = None
    adapters: list[dict[str, Any]] | None = None
    adapter_events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def _deployment_conditions(
    deployment: dict[str, Any] | None, desired_replicas: int
) -> tuple[Condition, Condition | None]:
    """Available and Progressing as the Deployment reports them (None: no rollout under way)."""
    if deployment is None:
        return Condition(
            AVAILABLE, False, NO_DEPLOYMENT, "no Deployment yet: waiting for a verified template"
        ), None
    status = deployment.get("status") or {}
    ready = status.get("readyReplicas") or 0
    reported = {c.get("type"): c for c in status.get("conditions") or []}
    if ready >= max(desired_replicas, 1) or (desired_replicas == 0 and "Available" in reported):
        available = Condition(
            AVAILABLE, True, DEPLOYMENT_AVAILABLE, f"{ready}/{desired_replicas} replicas ready"
        )
    else:
        available = Condition(
            AVAILABLE, False, DEPLOYMENT_UNAVAILABLE, f"{ready}/{desired_replicas} replicas ready"
        )
    progress = reported.get("Progressing") or {}
    if progress.get("reason") == ROLLOUT_STALLED:
        return available, Condition(
            PROGRESSING, False, ROLLOUT_STALLED, progress.get("message", "")
        )
    generation = deployment.get("metadata", {}).get("generation", 0)
    updated = status.get("updatedReplicas") or 0
    settled = (
        status.get("observedGeneration", 0) >= generation
        and updated >= desired_replicas
        and ready >= desired_replicas
        and (status.get("replicas") or 0) <= desired_replicas
    )
    if settled:
        return available, None
    message = f"rolling out: {updated}/{desired_replicas} updated, {ready} ready"
    return available, Condition(PROGRESSING, True, ROLLING_OUT, message)


def conditions_for(findings: Findings) -> list[Condition]:
    available, rollout = _deployment_conditions(findings.deployment, findings.desired_replicas)
    template = findings.template
    if rollout is not None:
        progressing = rollout
    elif findings.waiting is not None:
        progressing = findings.waiting
    elif template.reason == TEMPLATE_JOB_RUNNING:
        progressing = Condition(PROGRESSING, True, TEMPLATE_JOB_RUNNING, template.message)
    else:
        progressing = Condition(
            PROGRESSING, False, ROLLOUT_COMPLETE, "the Deployment is up to date"
        )
    if findings.degraded is not None:
        degraded = findings.degraded
    elif rollout is not None and rollout.reason == ROLLOUT_STALLED:
        degraded = Condition(DEGRADED, True, ROLLOUT_STALLED, rollout.message)
    else:
        degraded = Condition(DEGRADED, False, AS_EXPECTED, "no problems found")
    conditions = [template, available, progressing, degraded]
    optional = (findings.smoke, findings.adapters_ready)
    return [*conditions, *(c for c in optional if c is not None)]


def phase_of(conditions: list[Condition], has_deployment: bool) -> str:
    by_type = {c.type: c for c in conditions}
    if by_type[DEGRADED].status:
        return DEGRADED_PHASE
    if not has_deployment:
        return PENDING
    if by_type[PROGRESSING].status or not by_type[AVAILABLE].status:
        return PROGRESSING_PHASE
    return READY


def _event_type(cond: Condition, *, was_true: bool) -> str:
    """Warning for what needs a person: degradation, a failed template, lost availability."""
    if cond.type == DEGRADED and cond.status:
        return "Warning"
    if cond.type == TEMPLATE_READY and cond.reason in (
        TEMPLATE_JOB_FAILED,
        INVALID_SPEC,
        SOURCE_CONFIGMAP_MISSING,
    ):
        return "Warning"
    if cond.type == AVAILABLE and not cond.status and was_true:
        return "Warning"
    if cond.type == SMOKE_TESTED and cond.reason == SMOKE_TEST_FAILED:
        return "Warning"
    if cond.type == ADAPTERS_READY and cond.reason == ADAPTER_FAILED:
        return "Warning"
    return "Normal"


def build_status(
    findings: Findings, previous: dict[str, Any], generation: int, now: str
) -> tuple[dict[str, Any], list[Event]]:
    """The new status (without kopf's own keys) and the Events for what changed."""
    conditions = conditions_for(findings)
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    rendered, events = [], []
    for cond in conditions:
        old = before.get(cond.type) or {}
        status = "True" if cond.status else "False"
        changed = old.get("status") != status
        rendered.append(
            {
                "type": cond.type,
                "status": status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": now
                if changed or not old.get("lastTransitionTime")
                else old["lastTransitionTime"],
                "observedGeneration": generation,
            }
        )
        # An Event per transition: a status flip, a new reason for a problem, or the first
        # word on the template and on any degradation.
        first = not old and (cond.type == TEMPLATE_READY or (cond.type == DEGRADED and cond.status))
        flipped = bool(old) and changed
        new_problem = (
            bool(old)
            and cond.type in (TEMPLATE_READY, DEGRADED, SMOKE_TESTED)
            and old.get("reason") != cond.reason
        )
        if first or flipped or new_problem:
            events.append(
                Event(
                    _event_type(cond, was_true=old.get("status") == "True"),
                    cond.reason,
                    f"{cond.type}={status}: {cond.message}",
                )
            )
    deployment_status = (findings.deployment or {}).get("status") or {}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase_of(conditions, findings.deployment is not None),
        "conditions": rendered,
        "templateHash": findings.template_hash,
        "templateConfigMap": findings.template_configmap,
        "replicas": deployment_status.get("replicas") or 0,
        "readyReplicas": deployment_status.get("readyReplicas") or 0,
        "endpoint": findings.endpoint,
        "selector": findings.selector,
        "modelRevision": findings.model_revision,
    }
    if findings.rollout is not None:
        status["rollout"] = findings.rollout
    if findings.adapters is not None or previous.get("adapters") is not None:
        status["adapters"] = findings.adapters  # None removes it (static mode, no adapters)
    return status, [*events, *findings.adapter_events]


def _same(live: Any, new: Any) -> bool:
    """Equal as a merge patch sees it: in objects, a null is the same as no key."""
    if isinstance(new, dict):
        live = live if isinstance(live, dict) else {}
        return all(_same(live.get(key), value) for key, value in new.items())
    return live == new


def status_changed(new: dict[str, Any], live: dict[str, Any]) -> bool:
    """Whether writing ``new`` would change the live status (kopf's own keys aside)."""
    return any(not _same(live.get(key), value) for key, value in new.items())
