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
from smolserve.manifests.common import OperatorConfig
from smolserve.manifests.lora import build_guard_configmap
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
    configMap source that does not exist). ``deployment``: only with a verified template
    (never before one exists). ``children``: the rest, always.
    """

    job: dict[str, Any] | None
    children: tuple[dict[str, Any], ...]
    deployment: dict[str, Any] | None

    def objects(self) -> list[dict[str, Any]]:
        """Everything, in creation order (RBAC before the Job that needs it, Deployment last)."""
        found = [*self.children, *(o for o in (self.job, self.deployment) if o is not None)]
        return sorted(found, key=lambda obj: creation_order(obj["kind"]))


def desired_state(
    spec: SmolServeSpec,
    config: OperatorConfig,
    *,
    inputs_hash: str | None,
    template: ServedTemplate | None,
) -> DesiredState:
    """The desired objects of ``spec``.

    ``inputs_hash``: ``template_inputs_hash`` of the current inputs (with the configMap
    source's text hashed in), or None when a configMap source is missing. ``template``: the
    verified template to serve, if one is known.
    """
    children = [*build_template_rbac(spec)]
    if uses_agent(spec):
        children += [*build_agent_rbac(spec), *build_agent_configmaps(spec)]
    if uses_parser_plugin(spec):
        children.append(build_parser_configmap(spec, config))
    if spec.lora.dynamic:
        children.append(build_guard_configmap(spec, config))
    children.append(build_service(spec))
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
    return DesiredState(job=job, children=tuple(children), deployment=deployment)
