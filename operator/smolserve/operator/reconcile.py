"""The reconcile planner: what the operator sees → what it must write. Pure.

``plan`` takes one SmolServe as observed (its loaded spec, the children it owns, what else
carries its label, its template source) and returns the objects to create, the merge patches
to send, the objects to delete, the new status (None when the live one is already right) and
the Events to post. It runs in named steps:

1. **template**: the hash of the template Job's inputs; the template is ready when a ConfigMap
   published for those inputs exists (label or inputs-history annotation; a revert reuses a
   kept one with no Job); otherwise the Job for these inputs runs (one name per inputs hash:
   never twice);
2. **children**: ``desired_state`` (the same function ``smolserve render`` prints) gives every
   object the SmolServe should have; missing ones are created, drifted ones patched. Immutable
   objects (the parser-plugin ConfigMap, the Job) are only ever created;
3. **deployment**: created or changed only with a ready template; while none is ready the live
   Deployment stays exactly as it is (a failed Job rolls nothing);
4. **prune**: the newest ``TEMPLATE_HISTORY`` template ConfigMaps are kept (the one in use and
   the ready one always), finished Jobs of other inputs and children no longer desired are
   deleted, and nothing the live Deployment mounts is ever deleted;
5. **status**: conditions and Events from what the steps found (``status.Findings``, built once);
   the autoscaler's and the InferencePool's from ``fleet.fleet_findings``.

Kinds of other projects that the cluster does not serve (``Observed.unserved``: KEDA's
ScaledObject, the InferencePool) are never written; their condition says so.

Only children whose controller ownerReference is this SmolServe's uid are acted on. Objects
that carry its label but belong to someone else (typically the children of a deleted SmolServe
of the same name, which the garbage collector has not removed yet) are never patched or
deleted: a desired object whose name they hold waits for them to go.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from smolserve import labels
from smolserve.agent.report import agent_status_name
from smolserve.kinds import Ref, creation_order
from smolserve.manifests import (
    TEMPLATE_HISTORY,
    DesiredState,
    OperatorConfig,
    ServedTemplate,
    desired_state,
    mounted_configmaps,
    mounted_template,
    selector_string,
    served_template_hash,
    template_inputs_hash,
    template_job_name,
)
from smolserve.manifests.agent import AGENT, has_agent
from smolserve.manifests.autoscaling import AUTOSCALER, enabled_autoscaling
from smolserve.manifests.common import PARSERS, TEMPLATE
from smolserve.manifests.lora import GUARD_COMPONENT
from smolserve.manifests.routing import ROUTING
from smolserve.manifests.template import published_inputs
from smolserve.operator import agents, rollout
from smolserve.operator import status as st
from smolserve.operator.adapters import adapter_findings
from smolserve.operator.apply import merge_patch_for, with_last_applied
from smolserve.operator.fleet import fleet_findings
from smolserve.spec import SmolServeSpec, SpecError, load_spec

# A template Job that succeeded this long ago while its ConfigMap does not exist: the
# ConfigMap was deleted (not merely late in the watch), so the Job runs again.
REPUBLISH_AFTER_SECONDS = 30


@dataclass(frozen=True)
class SourceState:
    """A ``template.source: configMap`` source as the operator found it."""

    sha256: str | None  # of the text under the key; None when there is none to use
    problem: str | None = None  # why not, in words (missing ConfigMap or key, not labelled)


@dataclass(frozen=True)
class Observed:
    """A SmolServe and everything of it the operator can see (from its watch caches)."""

    serve: dict[str, Any]
    spec: SmolServeSpec | SpecError  # loaded once, by the caller
    children: list[dict[str, Any]]  # labelled for it and owned by it (controller uid)
    foreign: list[dict[str, Any]] = field(default_factory=list)  # labelled, owned by another
    source: SourceState | None = None  # only with template.source configMap
    job_messages: dict[str, str] = field(default_factory=dict)  # failed Job → its pod's message
    pods: list[dict[str, Any]] = field(default_factory=list)  # server pods (agents.pod_projection)
    # Kinds of other projects (``kinds.OPTIONAL_CHILDREN``) this cluster does not serve.
    unserved: frozenset[str] = frozenset()


@dataclass
class Plan:
    create: list[dict[str, Any]] = field(default_factory=list)
    patch: list[tuple[Ref, dict[str, Any]]] = field(default_factory=list)
    delete: list[Ref] = field(default_factory=list)
    findings: st.Findings | None = None
    status: dict[str, Any] | None = None
    events: list[st.Event] = field(default_factory=list)
    recheck_after: float | None = None  # plan again in this many seconds (a deadline falls due)

    @property
    def writes(self) -> int:
        return len(self.create) + len(self.patch) + len(self.delete) + (self.status is not None)


class Live:
    """The owned children, by kind and name."""

    def __init__(self, children: Iterable[dict[str, Any]]) -> None:
        self.by_ref = {Ref.of(c): c for c in children}

    def get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        return self.by_ref.get(Ref.of(obj))

    def of_kind(self, kind: str, component: str | None = None) -> list[dict[str, Any]]:
        found = [c for ref, c in self.by_ref.items() if ref.kind == kind]
        if component is not None:
            found = [c for c in found if _labels(c).get(labels.COMPONENT) == component]
        return sorted(found, key=_age_key)

    @property
    def deployment(self) -> dict[str, Any] | None:
        deployments = self.of_kind("Deployment")
        return deployments[0] if deployments else None


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _age_key(obj: dict[str, Any]) -> tuple[str, int]:
    meta = obj["metadata"]
    version = str(meta.get("resourceVersion", "0"))
    return meta.get("creationTimestamp", ""), int(version) if version.isdigit() else 0


def controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid of the object's controller (its managing owner), if it has one."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def read_spec(serve: dict[str, Any]) -> SmolServeSpec | SpecError:
    """The SmolServe's spec, loaded once per reconcile, or why it cannot be acted on."""
    try:
        return load_spec(serve)
    except SpecError as exc:
        return exc


def split_owned(
    children: Iterable[dict[str, Any]], uid: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(owned, foreign): the labelled objects whose controller is the SmolServe ``uid``, and
    the others (a deleted predecessor's, or objects nobody handed to this SmolServe)."""
    owned: list[dict[str, Any]] = []
    foreign: list[dict[str, Any]] = []
    for obj in children:
        (owned if uid and controller_uid(obj) == uid else foreign).append(obj)
    return owned, foreign


def job_state(job: dict[str, Any]) -> str:
    """``running``, ``succeeded`` or ``failed``, from the Job's conditions."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return "failed"
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
    return "running"


def job_failure(job: dict[str, Any]) -> str:
    """The Job's own reason for failing, when its pod left no message."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            return f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}".rstrip(": ")
    return "the template Job failed"


def _seconds_since(stamp: str | None, now: str) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        current = datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (current - then).total_seconds()


# --- 1. template ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateFindings:
    inputs: str | None  # the current inputs hash (None: a configMap source is unusable)
    ready: dict[str, Any] | None  # the template ConfigMap published for those inputs
    condition: st.Condition  # TemplateReady
    degraded: st.Condition | None = None
    rerun: dict[str, Any] | None = None  # a succeeded Job whose ConfigMap is gone

    @property
    def served(self) -> ServedTemplate | None:
        if self.ready is None:
            return None
        meta = self.ready["metadata"]
        return ServedTemplate(meta["name"], _labels(self.ready).get(labels.TEMPLATE_HASH, ""))


def _template(
    spec: SmolServeSpec, observed: Observed, live: Live, config: OperatorConfig, now: str
) -> TemplateFindings:
    if spec.template.source == "configMap":
        source = observed.source or SourceState(None, "not read yet")
        if source.sha256 is None:
            message = source.problem or "the template source ConfigMap is missing"
            return TemplateFindings(
                None,
                None,
                st.Condition(st.TEMPLATE_READY, False, st.SOURCE_CONFIGMAP_MISSING, message),
                st.Condition(st.DEGRADED, True, st.SOURCE_CONFIGMAP_MISSING, message),
            )
        inputs = template_inputs_hash(spec, config, source_sha256=source.sha256)
    else:
        inputs = template_inputs_hash(spec, config)
    matching = [
        cm
        for cm in live.of_kind("ConfigMap", TEMPLATE)
        if inputs[:8] in published_inputs(_labels(cm), cm["metadata"].get("annotations"))
    ]
    if matching:
        ready = matching[-1]
        message = f"verified template in ConfigMap {ready['metadata']['name']}"
        return TemplateFindings(
            inputs, ready, st.Condition(st.TEMPLATE_READY, True, st.TEMPLATE_VERIFIED, message)
        )
    name = template_job_name(spec, inputs)
    job = next((j for j in live.of_kind("Job") if j["metadata"]["name"] == name), None)
    running = st.Condition(
        st.TEMPLATE_READY,
        False,
        st.TEMPLATE_JOB_RUNNING,
        f"Job {name} is generating and verifying the template",
    )
    if job is None or job_state(job) == "running":
        return TemplateFindings(inputs, None, running)
    if job_state(job) == "failed":
        text = f"Job {name} failed: {observed.job_messages.get(name) or job_failure(job)}"
        return TemplateFindings(
            inputs,
            None,
            st.Condition(st.TEMPLATE_READY, False, st.TEMPLATE_JOB_FAILED, text),
            st.Condition(st.DEGRADED, True, st.TEMPLATE_JOB_FAILED, text),
        )
    waited = _seconds_since((job.get("status") or {}).get("completionTime"), now)
    if waited is not None and waited >= REPUBLISH_AFTER_SECONDS:
        message = (
            f"Job {name} completed but its ConfigMap (label {labels.INPUTS_HASH}={inputs[:8]}) "
            "does not exist: running the Job again"
        )
        return TemplateFindings(
            inputs,
            None,
            st.Condition(st.TEMPLATE_READY, False, st.TEMPLATE_JOB_RUNNING, message),
            rerun=job,
        )
    message = f"Job {name} completed; waiting for its ConfigMap ({labels.INPUTS_HASH}={inputs[:8]})"
    return TemplateFindings(
        inputs, None, st.Condition(st.TEMPLATE_READY, False, st.TEMPLATE_JOB_RUNNING, message)
    )


# --- 2. children, 3. deployment ------------------------------------------------------------------


def _ensure(plan: Plan, desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Create or patch one object; True when a write was planned. Immutable objects (and
    Jobs, whose pod template is) are only created."""
    if live is None:
        plan.create.append(with_last_applied(desired))
        return True
    if desired.get("immutable") or desired["kind"] == "Job":
        return False
    patch = merge_patch_for(desired, live)
    if patch is None:
        return False
    plan.patch.append((Ref.of(desired), patch))
    return True


def _blocking(desired: DesiredState, foreign: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of someone else that hold the name of a desired object."""
    held = {Ref.of(obj): obj for obj in foreign}
    return [held[Ref.of(obj)] for obj in desired.objects() if Ref.of(obj) in held]


def _children(
    result: Plan,
    desired: DesiredState,
    live: Live,
    template: TemplateFindings,
    blocked: set[Ref],
    annotations: Mapping[str, str | None] | None = None,
    unserved: frozenset[str] = frozenset(),
) -> dict[str, Any] | None:
    """Steps 2 and 3: every desired object; returns the Deployment as it will be."""
    for obj in (*desired.job_rbac, *desired.children):
        if Ref.of(obj) not in blocked and obj["kind"] not in unserved:
            _ensure(result, obj, live.get(obj))
    job = desired.job
    if job is not None and template.ready is None and Ref.of(job) not in blocked:
        if template.rerun is not None:
            result.delete.append(Ref.of(template.rerun))  # its ConfigMap is gone: run it anew
        elif live.get(job) is None:
            result.create.append(with_last_applied(job))
    deployment = live.deployment
    wanted = desired.deployment
    if wanted is not None and Ref.of(wanted) not in blocked:
        if _ensure(result, wanted, deployment):
            deployment = _projected(wanted, deployment, result)
        _annotate(result, wanted, deployment, annotations or {})
    result.create.sort(key=lambda obj: creation_order(obj["kind"]))
    return deployment


def _annotate(
    result: Plan,
    wanted: dict[str, Any],
    deployment: dict[str, Any] | None,
    annotations: Mapping[str, str | None],
) -> None:
    """Write the rollout's Deployment annotations (outside the last-applied record, so the
    pod template it remembers is not stored twice), in the same write as the rest if any."""
    live = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    changes = {k: v for k, v in annotations.items() if live.get(k) != v}
    if not changes:
        return
    ref = Ref.of(wanted)
    for obj in result.create:
        if Ref.of(obj) == ref:
            meta = obj["metadata"]
            added = {k: v for k, v in changes.items() if v is not None}
            meta["annotations"] = {**(meta.get("annotations") or {}), **added}
            return
    for index, (patched, body) in enumerate(result.patch):
        if patched == ref:
            meta = body.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **changes}
            result.patch[index] = (patched, body)
            return
    result.patch.append((ref, {"metadata": {"annotations": dict(changes)}}))


def _projected(
    desired: dict[str, Any], live: dict[str, Any] | None, result: Plan
) -> dict[str, Any]:
    """The Deployment as it will be once this plan's write lands (for the status to say so)."""
    if live is None:
        return {**desired, "metadata": {**desired["metadata"], "generation": 1}}
    generation = live["metadata"].get("generation", 0)
    if "spec" not in next(body for ref, body in result.patch if ref == Ref.of(desired)):
        return live
    spec = desired["spec"]
    if "replicas" not in spec and "replicas" in (live.get("spec") or {}):
        spec = {**spec, "replicas": live["spec"]["replicas"]}  # the autoscaler's, kept
    return {
        **live,
        "spec": spec,
        "metadata": {**live["metadata"], "generation": generation + 1},
    }


# --- 4. prune ------------------------------------------------------------------------------------

# Kinds whose owned objects go as soon as the desired state no longer lists them.
PRUNED_WHEN_UNWANTED = ("ServiceAccount", "Role", "RoleBinding")


# The autoscaler and the pool: one of each kind at most, deleted when no longer desired.
_FLEET_KINDS = (
    ("HorizontalPodAutoscaler", AUTOSCALER),
    ("ScaledObject", AUTOSCALER),
    ("InferencePool", ROUTING),
)


def _prune(
    result: Plan,
    desired: DesiredState,
    live: Live,
    template: TemplateFindings,
    deployment: dict[str, Any] | None,
    keep: frozenset[str] = frozenset(),
) -> None:
    mounted = mounted_configmaps(live.deployment) | mounted_configmaps(deployment) | keep
    wanted = {Ref.of(obj) for obj in desired.objects()}
    templates = live.of_kind("ConfigMap", TEMPLATE)
    # The templates in use (before and after this plan) and the ready one, then the newest.
    ready = template.ready["metadata"]["name"] if template.ready else None
    in_use = (mounted_template(live.deployment), mounted_template(deployment), ready)
    keep = {name for name in in_use if name}
    for cm in reversed(templates):
        if len(keep) >= TEMPLATE_HISTORY:
            break
        keep.add(cm["metadata"]["name"])
    result.delete += [
        Ref.of(cm) for cm in templates if cm["metadata"]["name"] not in keep | mounted
    ]
    # Plugin ConfigMaps (parser, adapter guard) of another version, or of a spec that needs
    # none; the template Job's RBAC once no Job has to publish a template.
    unwanted = [
        *live.of_kind("ConfigMap", PARSERS),
        *live.of_kind("ConfigMap", GUARD_COMPONENT),
        *(obj for kind in PRUNED_WHEN_UNWANTED for obj in live.of_kind(kind, TEMPLATE)),
    ]
    result.delete += [
        Ref.of(obj)
        for obj in unwanted
        if Ref.of(obj) not in wanted and obj["metadata"]["name"] not in mounted
    ]
    # The agent's ConfigMaps and RBAC, once no pod template of the Deployment has the agent
    # (a pod rolling away from it still reads its config and writes its report).
    if not any(has_agent(d) for d in (live.deployment, deployment)):
        result.delete += [
            Ref.of(obj)
            for kind in ("ConfigMap", *PRUNED_WHEN_UNWANTED)
            for obj in live.of_kind(kind, AGENT)
            if Ref.of(obj) not in wanted
        ]
    if template.inputs is not None:
        result.delete += [
            Ref.of(job)
            for job in live.of_kind("Job")
            if _labels(job).get(labels.INPUTS_HASH) != template.inputs[:8]
            and job_state(job) != "running"
        ]
    # An autoscaler or pool the spec no longer asks for (turned off, another engine).
    result.delete += [
        Ref.of(obj)
        for kind, component in _FLEET_KINDS
        for obj in live.of_kind(kind, component)
        if Ref.of(obj) not in wanted
    ]


# --- 5. status -----------------------------------------------------------------------------------


def _waiting(blocking: list[dict[str, Any]], serve: dict[str, Any]) -> st.Condition | None:
    """Why desired objects cannot be written: a predecessor's leftovers, or a name clash."""
    if not blocking:
        return None
    names = ", ".join(str(Ref.of(obj)) for obj in blocking[:4])
    more = f" and {len(blocking) - 4} more" if len(blocking) > 4 else ""
    predecessor = all(
        any(
            ref.get("kind") == labels.KIND and ref.get("name") == serve["metadata"]["name"]
            for ref in obj["metadata"].get("ownerReferences") or []
        )
        for obj in blocking
    )
    if predecessor:
        return st.Condition(
            st.PROGRESSING,
            True,
            st.WAITING_FOR_PREDECESSOR,
            f"{names}{more} still belong to a deleted SmolServe of this name: waiting for "
            "the garbage collector to remove them",
        )
    return st.Condition(
        st.DEGRADED,
        True,
        st.NAME_CONFLICT,
        f"{names}{more} exist but do not belong to this SmolServe: the operator leaves them "
        "alone; delete or rename them",
    )


def _missing_template(
    deployment: dict[str, Any] | None, live: Live, ready: dict[str, Any] | None
) -> st.Condition | None:
    """The template ConfigMap the Deployment serves, if it does not exist."""
    name = mounted_template(deployment)
    if name is None or (ready is not None and ready["metadata"]["name"] == name):
        return None
    if any(cm["metadata"]["name"] == name for cm in live.of_kind("ConfigMap", TEMPLATE)):
        return None
    return st.Condition(
        st.DEGRADED,
        True,
        st.TEMPLATE_CONFIGMAP_MISSING,
        f"the Deployment serves the template in ConfigMap {name}, which does not exist: "
        "running pods keep it, new pods cannot start until a template is published again",
    )


def _status(result: Plan, previous: dict[str, Any], generation: int, now: str) -> Plan:
    assert result.findings is not None
    status, events = st.build_status(result.findings, previous, generation, now)
    result.status = status if st.status_changed(status, previous) else None
    result.events = events
    return result


def plan(observed: Observed, config: OperatorConfig, now: str) -> Plan:
    """Everything to write for one SmolServe (see the module docstring for the steps)."""
    serve = observed.serve
    previous = serve.get("status") or {}
    generation = serve["metadata"].get("generation", 0)
    live = Live(observed.children)
    result = Plan()
    if isinstance(observed.spec, SpecError):
        message = str(observed.spec)
        deployment = live.deployment
        result.findings = st.Findings(
            template=st.Condition(st.TEMPLATE_READY, False, st.INVALID_SPEC, message),
            degraded=st.Condition(st.DEGRADED, True, st.INVALID_SPEC, message),
            deployment=deployment,
            desired_replicas=(deployment or {}).get("spec", {}).get("replicas", 0),
            template_hash=served_template_hash(deployment),
            template_configmap=mounted_template(deployment),
            endpoint=previous.get("endpoint"),
            selector=previous.get("selector"),
            model_revision=previous.get("modelRevision"),
            adapters=previous.get("adapters"),
        )
        return _status(result, previous, generation, now)

    spec = observed.spec
    template = _template(spec, observed, live, config, now)
    desired = desired_state(
        spec,
        config,
        inputs_hash=template.inputs,
        template=template.served,
        publishing=template.ready is None,
    )
    status_cm = next(
        (
            cm
            for cm in live.of_kind("ConfigMap", AGENT)
            if cm["metadata"]["name"] == agent_status_name(spec.name)
        ),
        None,
    )
    found = agents.read_agent_reports(status_cm, observed.pods, now)
    lora = adapter_findings(spec, found.reports, previous.get("adapters"), now)
    decision = rollout.decide(spec, desired.deployment, live.deployment, found, now)
    desired = rollout.with_template(desired, decision.template)
    blocking = _blocking(desired, observed.foreign)
    blocked = {Ref.of(o) for o in blocking}
    deployment = _children(
        result, desired, live, template, blocked, decision.annotations, observed.unserved
    )
    _prune(result, desired, live, template, deployment, decision.keep)
    cleanup = agents.cleanup(status_cm, found)
    if cleanup is not None:
        result.patch.append(cleanup)
    result.recheck_after = _soonest(found.recheck_after, decision.recheck_after)
    waiting = _waiting(blocking, serve)
    fleet = fleet_findings(spec, observed.children, observed.unserved)
    degraded = (
        template.degraded
        or (waiting if waiting is not None and waiting.type == st.DEGRADED else None)
        or _missing_template(deployment, live, template.ready)
        or decision.degraded
        or fleet.degraded
    )
    autoscaling = enabled_autoscaling(spec)
    result.findings = st.Findings(
        template=template.condition,
        degraded=degraded,
        deployment=deployment,
        desired_replicas=spec.replicas,
        template_hash=served_template_hash(deployment),
        template_configmap=mounted_template(deployment),
        endpoint=f"http://{spec.name}.{spec.namespace}.svc:{spec.service.port}/v1",
        selector=selector_string(spec.name),
        model_revision=spec.model.revision,
        waiting=waiting if waiting is not None and waiting.type == st.PROGRESSING else None,
        autoscaler_min=autoscaling.min_replicas if autoscaling is not None else None,
        fleet=fleet.conditions,
        smoke=decision.smoke,
        rollout=decision.status,
        adapters_ready=lora.condition if lora is not None else None,
        adapters=lora.status() if lora is not None else None,
        adapter_events=lora.events if lora is not None else (),
    )
    return _status(result, previous, generation, now)


def _soonest(*delays: float | None) -> float | None:
    known = [d for d in delays if d is not None]
    return min(known) if known else None


def refused(result: Plan, error: str, serve: dict[str, Any], now: str) -> Plan:
    """The plan after the API server refused its writes for good: no writes, the status says
    ``ApplyFailed`` with the API's own message (nothing is retried until something changes)."""
    assert result.findings is not None
    findings = replace(
        result.findings,
        degraded=result.findings.degraded
        or st.Condition(st.DEGRADED, True, st.APPLY_FAILED, error),
    )
    previous = serve.get("status") or {}
    generation = serve["metadata"].get("generation", 0)
    return _status(Plan(findings=findings), previous, generation, now)
