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
# Only while the spec turns the feature on (operator/fleet.py).
AUTOSCALER_READY = "AutoscalerReady"
INFERENCE_POOL_READY = "InferencePoolReady"
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
API_NOT_SERVED = "APINotServed"
AUTOSCALER_ACTIVE = "AutoscalerActive"
WAITING_FOR_AUTOSCALER = "WaitingForAutoscaler"
AUTOSCALER_FAILING = "AutoscalerFailing"
POOL_READY = "InferencePoolAccepted"
WAITING_FOR_POOL = "WaitingForInferencePool"
POOL_NOT_ACCEPTED = "InferencePoolNotAccepted"
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
    # With an autoscaler: its minimum (the replicas are then the Deployment's own, and a
    # scale-up is not a rollout). None: the spec's replicas.
    autoscaler_min: int | None = None
    # AutoscalerReady, InferencePoolReady: the conditions of the features the spec turns on.
    fleet: tuple[Condition, ...] = ()
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
    deployment: dict[str, Any] | None, desired_replicas: int, autoscaler_min: int | None = None
) -> tuple[Condition, Condition | None]:
    """Available and Progressing as the Deployment reports them (None: no rollout under way).

    Under an autoscaler the Deployment's own replicas are the desired ones; it is available
    with the autoscaler's minimum ready (or its current replicas, when scaled below that, to
    zero included), and a scale-up is no rollout: only a new pod template is.
    """
    if deployment is None:
        return Condition(
            AVAILABLE, False, NO_DEPLOYMENT, "no Deployment yet: waiting for a verified template"
        ), None
    status = deployment.get("status") or {}
    ready = status.get("readyReplicas") or 0
    reported = {c.get("type"): c for c in status.get("conditions") or []}
    scaled = autoscaler_min is not None
    if scaled:
        desired_replicas = (deployment.get("spec") or {}).get("replicas", 1)
        needed = min(autoscaler_min, desired_replicas)
        counts = f"{ready}/{desired_replicas} replicas ready (the autoscaler's count)"
    else:
        needed = desired_replicas
        counts = f"{ready}/{desired_replicas} replicas ready"
    if ready >= needed:  # 0 of 0 is available, as the Deployment controller says
        available = Condition(AVAILABLE, True, DEPLOYMENT_AVAILABLE, counts)
    else:
        available = Condition(AVAILABLE, False, DEPLOYMENT_UNAVAILABLE, counts)
    progress = reported.get("Progressing") or {}
    if progress.get("reason") == ROLLOUT_STALLED:
        return available, Condition(
            PROGRESSING, False, ROLLOUT_STALLED, progress.get("message", "")
        )
    generation = deployment.get("metadata", {}).get("generation", 0)
    updated = status.get("updatedReplicas") or 0
    observed = status.get("observedGeneration", 0) >= generation
    if scaled:  # no pod of an older template left, and the minimum ready
        settled = observed and updated >= (status.get("replicas") or 0) and ready >= needed
    else:
        settled = (
            observed
            and updated >= desired_replicas
            and ready >= desired_replicas
            and (status.get("replicas") or 0) <= desired_replicas
        )
    if settled:
        return available, None
    message = f"rolling out: {updated}/{desired_replicas} updated, {ready} ready"
    return available, Condition(PROGRESSING, True, ROLLING_OUT, message)


def conditions_for(findings: Findings) -> list[Condition]:
    available, rollout = _deployment_conditions(
        findings.deployment, findings.desired_replicas, findings.autoscaler_min
    )
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
    return [*conditions, *(c for c in optional if c is not None), *findings.fleet]


def phase_of(conditions: list[Condition], has_deployment: bool) -> str:
    by_type = {c.type: c for c in conditions}
    if by_type[DEGRADED].status:
        return DEGRADED_PHASE
    if not has_deployment:
        return PENDING
    if by_type[PROGRESSING].status or not by_type[AVAILABLE].status:
        return PROGRESSING_PHASE
    return READY


_TEMPLATE_PROBLEMS = (TEMPLATE_JOB_FAILED, INVALID_SPEC, SOURCE_CONFIGMAP_MISSING)


def _event_for(cond: Condition, old: dict[str, Any], findings: Findings) -> Event | None:
    """The Event a condition's change is worth, if any.

    Warnings for every new problem: a degradation (or a new reason for one), a template that
    failed or cannot be made, lost availability. Normal ones for what follows a change: a
    template a Job verified, a rollout of a changed Deployment completed, availability back
    on a changed Deployment, a problem resolved. Bringing up a new SmolServe whose steps all
    go well posts none (its conditions say it): the first rollout's transitions resolve by
    themselves, and an Event for each would cost writes without telling anyone anything.
    """
    status = "True" if cond.status else "False"
    message = f"{cond.type}={status}: {cond.message}"
    flipped = bool(old) and old.get("status") != status
    new_reason = old.get("reason") != cond.reason
    changed_deployment = ((findings.deployment or {}).get("metadata") or {}).get(
        "generation", 0
    ) > 1
    if cond.type == DEGRADED:
        if cond.status and (new_reason or flipped):
            return Event("Warning", cond.reason, message)
        return Event("Normal", cond.reason, message) if flipped else None
    if cond.type == TEMPLATE_READY:
        if cond.reason in _TEMPLATE_PROBLEMS and new_reason:
            return Event("Warning", cond.reason, message)
        if cond.status and flipped and old.get("reason") == TEMPLATE_JOB_RUNNING:
            return Event("Normal", cond.reason, message)  # a Job verified a new template
        if cond.reason == TEMPLATE_JOB_RUNNING and flipped:
            return Event("Normal", cond.reason, message)  # a change needs a new template
        return None
    if cond.type == AVAILABLE and flipped:
        if not cond.status:
            return Event("Warning", cond.reason, message)
        return Event("Normal", cond.reason, message) if changed_deployment else None
    if cond.type == PROGRESSING and flipped and not cond.status and changed_deployment:
        return Event("Normal", cond.reason, message)  # a change rolled out
    if cond.type == SMOKE_TESTED:
        if cond.reason == SMOKE_TEST_FAILED and new_reason:
            return Event("Warning", cond.reason, message)
        return Event("Normal", cond.reason, message) if cond.status and flipped else None
    if cond.type == ADAPTERS_READY:
        if cond.reason == ADAPTER_FAILED and new_reason:
            return Event("Warning", cond.reason, message)
        return Event("Normal", cond.reason, message) if cond.status and flipped else None
    if cond.type in (AUTOSCALER_READY, INFERENCE_POOL_READY):
        waiting = cond.reason in (WAITING_FOR_AUTOSCALER, WAITING_FOR_POOL)
        if not cond.status and not waiting and new_reason:
            return Event("Warning", cond.reason, message)
        return Event("Normal", cond.reason, message) if cond.status and flipped else None
    return None


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
        event = _event_for(cond, old, findings)
        if event is not None:
            events.append(event)
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
