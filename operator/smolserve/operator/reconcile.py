"""The reconcile planner: what the operator sees → what it must write. Pure.

Given a SmolServe, its observed children and the clock, ``plan`` returns the objects to create,
the merge patches to send, the objects to delete, the new status (or None when the live one
is already right) and the Events to post. The I/O shell in ``handlers`` gathers the inputs
and carries the plan out.

Template rules:
- the template for the current inputs is ready when a ConfigMap published for that inputs hash
  exists (label or inputs-history annotation; made by that inputs' Job, or kept from before:
  a revert reuses it with no Job);
- otherwise a Job for these inputs is created (one name per inputs hash: never twice);
- the Deployment is created or changed only with a ready template; while none is ready, the
  live Deployment stays exactly as it is (a failed Job rolls nothing);
- the last ``KEEP_TEMPLATES`` template ConfigMaps are kept (the one in use always), older
  ones are deleted, and so are finished Jobs of other inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smolserve import labels
from smolserve.manifests import (
    OperatorConfig,
    build_deployment,
    build_parser_configmap,
    build_service,
    build_template_job,
    build_template_rbac,
    selector_string,
    template_inputs_hash,
    template_job_name,
    uses_parser_plugin,
)
from smolserve.manifests.common import TEMPLATE
from smolserve.manifests.template import published_inputs
from smolserve.operator import status as st
from smolserve.operator.apply import merge_patch_for, with_last_applied
from smolserve.operator.kube import Ref
from smolserve.spec import SpecError, load_spec

KEEP_TEMPLATES = 3
TEMPLATE_VOLUME = "template"


@dataclass(frozen=True)
class Observed:
    """A SmolServe and everything of it the operator can see (from its watch caches)."""

    serve: dict[str, Any]
    children: list[dict[str, Any]]  # every object labelled smolserve.dev/serve=<name>
    source_sha256: str | None = None  # sha256 of the configMap source's text, if it exists
    job_messages: dict[str, str] = field(default_factory=dict)  # failed Job → its pod's message
    # The API server refused this plan's writes for good (400/403/422): its own message.
    apply_error: str | None = None


@dataclass
class Plan:
    create: list[dict[str, Any]] = field(default_factory=list)
    patch: list[tuple[Ref, dict[str, Any]]] = field(default_factory=list)
    delete: list[Ref] = field(default_factory=list)
    status: dict[str, Any] | None = None
    events: list[st.Event] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return len(self.create) + len(self.patch) + len(self.delete) + (self.status is not None)


def _of_kind(children: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in children if c.get("kind") == kind]


def _published_inputs(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata", {})
    return published_inputs(meta.get("labels"), meta.get("annotations"))


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _age_key(obj: dict[str, Any]) -> tuple[str, int]:
    meta = obj["metadata"]
    version = meta.get("resourceVersion", "0")
    return meta.get("creationTimestamp", ""), int(version) if version.isdigit() else 0


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
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}".rstrip(": ")
    return "the template Job failed"


def template_in_use(deployment: dict[str, Any] | None) -> str | None:
    """The template ConfigMap the live Deployment mounts."""
    if deployment is None:
        return None
    volumes = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []
    for volume in volumes:
        if volume.get("name") == TEMPLATE_VOLUME:
            return (volume.get("configMap") or {}).get("name")
    return None


def deployed_template_hash(deployment: dict[str, Any] | None) -> str | None:
    """The template hash (8 hex) on the live Deployment's pod template."""
    if deployment is None:
        return None
    meta = deployment.get("spec", {}).get("template", {}).get("metadata", {})
    return (meta.get("annotations") or {}).get(labels.TEMPLATE_HASH)


def _ensure(plan: Plan, desired: dict[str, Any], live: dict[str, Any] | None) -> None:
    if live is None:
        plan.create.append(with_last_applied(desired))
        return
    patch = merge_patch_for(desired, live)
    if patch is not None:
        plan.patch.append((Ref.of(desired), patch))


def _named(objs: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((o for o in objs if o["metadata"]["name"] == name), None)


def plan(observed: Observed, config: OperatorConfig, now: str) -> Plan:
    """Everything to write for one SmolServe (see the module docstring for the rules)."""
    serve, children = observed.serve, observed.children
    meta = serve["metadata"]
    generation = meta.get("generation", 0)
    previous = serve.get("status") or {}
    deployments = _of_kind(children, "Deployment")
    deployment = deployments[0] if deployments else None
    in_use = template_in_use(deployment)
    result = Plan()
    try:
        spec = load_spec(serve)
    except SpecError as exc:
        bad = st.Condition(st.DEGRADED, True, st.INVALID_SPEC, str(exc))
        findings = st.Findings(
            template=st.Condition(st.TEMPLATE_READY, False, st.INVALID_SPEC, str(exc)),
            degraded=bad,
            deployment=deployment,
            desired_replicas=(deployment or {}).get("spec", {}).get("replicas", 0),
            template_hash=deployed_template_hash(deployment),
            template_configmap=in_use,
            endpoint=previous.get("endpoint"),
            selector=previous.get("selector"),
            model_revision=previous.get("modelRevision"),
        )
        return _with_status(result, findings, previous, generation, now)

    configmaps = _of_kind(children, "ConfigMap")
    templates = sorted(
        (c for c in configmaps if _labels(c).get(labels.COMPONENT) == TEMPLATE), key=_age_key
    )
    jobs = _of_kind(children, "Job")
    degraded: st.Condition | None = None

    # The template for the current inputs.
    ready: dict[str, Any] | None = None
    inputs: str | None = None
    if spec.template.source == "configMap" and observed.source_sha256 is None:
        ref = spec.template.config_map_ref
        message = (
            f"ConfigMap {ref.name!r} with key {ref.key!r} not found" if ref else "no configMapRef"
        )
        template_cond = st.Condition(st.TEMPLATE_READY, False, st.SOURCE_CONFIGMAP_MISSING, message)
        degraded = st.Condition(st.DEGRADED, True, st.SOURCE_CONFIGMAP_MISSING, message)
    else:
        inputs = template_inputs_hash(spec, config, source_sha256=observed.source_sha256)
        matching = [c for c in templates if inputs[:8] in _published_inputs(c)]
        ready = matching[-1] if matching else None
        job = _named(jobs, template_job_name(spec, inputs))
        if ready is not None:
            template_cond = st.Condition(
                st.TEMPLATE_READY,
                True,
                st.TEMPLATE_VERIFIED,
                f"verified template in ConfigMap {ready['metadata']['name']}",
            )
        elif job is None:
            result.create.append(build_template_job(spec, config, inputs_hash=inputs))
            template_cond = st.Condition(
                st.TEMPLATE_READY,
                False,
                st.TEMPLATE_JOB_RUNNING,
                f"Job {template_job_name(spec, inputs)} is generating and verifying the template",
            )
        elif job_state(job) == "failed":
            name = job["metadata"]["name"]
            message = observed.job_messages.get(name) or job_failure(job)
            text = f"Job {name} failed: {message}"
            template_cond = st.Condition(st.TEMPLATE_READY, False, st.TEMPLATE_JOB_FAILED, text)
            degraded = st.Condition(st.DEGRADED, True, st.TEMPLATE_JOB_FAILED, text)
        elif job_state(job) == "succeeded":
            template_cond = st.Condition(
                st.TEMPLATE_READY,
                False,
                st.TEMPLATE_JOB_RUNNING,
                f"Job {job['metadata']['name']} completed; waiting for its ConfigMap "
                f"(label {labels.INPUTS_HASH}={inputs[:8]})",
            )
        else:
            template_cond = st.Condition(
                st.TEMPLATE_READY,
                False,
                st.TEMPLATE_JOB_RUNNING,
                f"Job {job['metadata']['name']} is generating and verifying the template",
            )

    # The children that do not depend on the template.
    for desired in build_template_rbac(spec):
        _ensure(
            result,
            desired,
            _named(_of_kind(children, desired["kind"]), desired["metadata"]["name"]),
        )
    if uses_parser_plugin(spec):
        parsers = build_parser_configmap(spec, config)
        if _named(configmaps, parsers["metadata"]["name"]) is None:
            result.create.append(parsers)
    # Jobs go first among creations: the RBAC they need is created just before them.
    result.create.sort(key=lambda obj: obj["kind"] == "Job")
    service = build_service(spec)
    live_service = _named(_of_kind(children, "Service"), service["metadata"]["name"])
    _ensure(result, service, live_service)

    # The Deployment: only ever with a verified template.
    template_name, template_hash = in_use, deployed_template_hash(deployment)
    if ready is not None:
        template_name = ready["metadata"]["name"]
        template_hash = _labels(ready).get(labels.TEMPLATE_HASH, "")
        desired = build_deployment(
            spec, config, template_configmap=template_name, template_hash=template_hash
        )
        writes = len(result.create) + len(result.patch)
        _ensure(result, desired, deployment)
        if len(result.create) + len(result.patch) > writes:
            deployment = _projected(desired, deployment, result)

    # Pruning: keep the newest templates (the one in use and the ready one always), and
    # delete the finished Jobs of other inputs.
    keep = {n for n in (in_use, template_name) if n}
    for cm in reversed(templates):
        if len(keep) >= KEEP_TEMPLATES:
            break
        keep.add(cm["metadata"]["name"])
    result.delete += [Ref.of(cm) for cm in templates if cm["metadata"]["name"] not in keep]
    result.delete += [
        Ref.of(job)
        for job in jobs
        if inputs is not None
        and _labels(job).get(labels.INPUTS_HASH) != inputs[:8]
        and job_state(job) != "running"
    ]

    if observed.apply_error is not None:
        degraded = degraded or st.Condition(
            st.DEGRADED, True, st.APPLY_FAILED, observed.apply_error
        )
        result = Plan()  # the status only: the writes were just refused
    findings = st.Findings(
        template=template_cond,
        degraded=degraded,
        deployment=deployment,
        desired_replicas=spec.replicas,
        template_hash=template_hash,
        template_configmap=template_name,
        endpoint=f"http://{spec.name}.{spec.namespace}.svc:{spec.service.port}/v1",
        selector=selector_string(spec.name),
        model_revision=spec.model.revision,
    )
    return _with_status(result, findings, previous, generation, now)


def _projected(
    desired: dict[str, Any], live: dict[str, Any] | None, result: Plan
) -> dict[str, Any]:
    """The Deployment as it will be once this plan's write lands (for the status to say so)."""
    if live is None:
        return {**desired, "metadata": {**desired["metadata"], "generation": 1}}
    generation = live["metadata"].get("generation", 0)
    if "spec" in result.patch[-1][1]:
        generation += 1
    return {**live, "metadata": {**live["metadata"], "generation": generation}}


def _with_status(
    result: Plan, findings: st.Findings, previous: dict[str, Any], generation: int, now: str
) -> Plan:
    status, events = st.build_status(findings, previous, generation, now)
    if st.status_changed(status, previous):
        result.status = status
    result.events = events
    return result
