"""The objects a SmolServe should have: the one desired state the operator and ``render`` share.

``smolserve render`` prints ``desired_state(...).objects()``; the operator's planner diffs the
same value against the live children. The template ConfigMap itself is not in it: the
template Job publishes that one, never the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolserve.kinds import creation_order
from smolserve.manifests.agent import (
    build_agent_configmaps,
    build_agent_rbac,
    uses_agent,
    with_agent,
)
from smolserve.manifests.autoscaling import build_autoscaler
from smolserve.manifests.common import OperatorConfig
from smolserve.manifests.lora import build_guard_configmap
from smolserve.manifests.routing import build_inference_pool
from smolserve.manifests.server import (
    build_deployment,
    build_parser_configmap,
    build_service,
    uses_parser_plugin,
)
from smolserve.manifests.template import (
    build_template_job,
    build_template_rbac,
    template_configmap_name,
)
from smolserve.spec import SmolServeSpec


@dataclass(frozen=True)
class ServedTemplate:
    """A verified template ConfigMap the Deployment should serve."""

    configmap: str  # <name>-chat-template-<sha8>
    hash: str  # its smolserve.dev/template-hash label (8 hex)

    @classmethod
    def for_text(cls, serve: str, sha256: str) -> ServedTemplate:
        """The ConfigMap the template Job publishes for a template whose sha256 is known."""
        return cls(template_configmap_name(serve, sha256), sha256[:8])


@dataclass(frozen=True)
class DesiredState:
    """What a SmolServe should have, given what is known about its template.

    ``job``: the template Job for the current inputs (None when they cannot be known: a
    configMap source that does not exist). ``job_rbac``: the Job's ServiceAccount, Role and
    RoleBinding, wanted only while a template must be published (least privilege: no standing
    account that may write ConfigMaps once the template exists). ``deployment``: only with a
    verified template (never before one exists). ``children``: the rest, always (the
    autoscaler and the InferencePool included, when the spec asks for them; the planner
    writes only the kinds the cluster serves).
    """

    job: dict[str, Any] | None
    job_rbac: tuple[dict[str, Any], ...]
    children: tuple[dict[str, Any], ...]
    deployment: dict[str, Any] | None

    def objects(self) -> list[dict[str, Any]]:
        """Everything, in creation order (RBAC before the Job that needs it, Deployment last)."""
        optional = (o for o in (self.job, self.deployment) if o is not None)
        found = [*self.job_rbac, *self.children, *optional]
        return sorted(found, key=lambda obj: creation_order(obj["kind"]))


def desired_state(
    spec: SmolServeSpec,
    config: OperatorConfig,
    *,
    inputs_hash: str | None,
    template: ServedTemplate | None,
    publishing: bool,
) -> DesiredState:
    """The desired objects of ``spec``.

    ``inputs_hash``: ``template_inputs_hash`` of the current inputs (with the configMap
    source's text hashed in), or None when a configMap source is missing. ``template``: the
    verified template to serve, if one is known. ``publishing``: a template Job has to run
    (or is running) for these inputs, so its RBAC is wanted.
    """
    children = []
    if uses_agent(spec):
        children += [*build_agent_rbac(spec), *build_agent_configmaps(spec)]
    if uses_parser_plugin(spec):
        children.append(build_parser_configmap(spec, config))
    if spec.lora.dynamic:
        children.append(build_guard_configmap(spec, config))
    children.append(build_service(spec))
    # The autoscaler and the pool, whether or not the Deployment exists yet: both wait for it.
    children += [obj for obj in (build_autoscaler(spec), build_inference_pool(spec)) if obj]
    job = (
        build_template_job(spec, config, inputs_hash=inputs_hash)
        if inputs_hash is not None
        else None
    )
    deployment = (
        build_deployment(
            spec, config, template_configmap=template.configmap, template_hash=template.hash
        )
        if template is not None
        else None
    )
    if deployment is not None and uses_agent(spec):
        deployment = with_agent(deployment, spec, config)
    rbac = tuple(build_template_rbac(spec)) if publishing and job is not None else ()
    return DesiredState(job=job, job_rbac=rbac, children=tuple(children), deployment=deployment)
