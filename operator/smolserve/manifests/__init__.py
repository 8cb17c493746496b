"""Pure builders: a SmolServe's spec → the Kubernetes objects the operator creates.

Shared by the operator and ``smolserve render``. Builders take a ``SmolServeSpec`` (from
``smolserve.spec.load_spec``, which also records the owner's name, namespace and uid) and an
``OperatorConfig``, and return plain dicts. They do no I/O.
"""

from __future__ import annotations

from typing import Any

from smolserve.manifests.common import (
    TEMPLATE_PATH,
    TEMPLATE_SHA256_ANNOTATION,
    OperatorConfig,
    owner_references,
    selector_labels,
    selector_string,
    standard_labels,
)
from smolserve.manifests.server import (
    build_deployment,
    build_parser_configmap,
    build_service,
    parser_configmap_name,
    uses_parser_plugin,
    vllm_args,
)
from smolserve.manifests.template import (
    build_template_configmap,
    build_template_job,
    build_template_rbac,
    publish_template_args,
    template_configmap_name,
    template_inputs_hash,
    template_job_name,
    template_rbac_name,
)
from smolserve.spec import SmolServeSpec

__all__ = [
    "TEMPLATE_PATH",
    "TEMPLATE_SHA256_ANNOTATION",
    "OperatorConfig",
    "build_children",
    "build_deployment",
    "build_parser_configmap",
    "build_service",
    "build_template_configmap",
    "build_template_job",
    "build_template_rbac",
    "owner_references",
    "parser_configmap_name",
    "publish_template_args",
    "selector_labels",
    "selector_string",
    "standard_labels",
    "template_configmap_name",
    "template_inputs_hash",
    "template_job_name",
    "template_rbac_name",
    "uses_parser_plugin",
    "vllm_args",
]


def build_children(
    spec: SmolServeSpec,
    config: OperatorConfig,
    *,
    inputs_hash: str | None = None,
    template_configmap: str | None = None,
    template_hash: str | None = None,
) -> list[dict[str, Any]]:
    """Every child but the template ConfigMap (the Job makes it), in creation order.

    The Deployment is included only when a verified template is known (``template_configmap``
    and its ``template_hash``): it is never created before one exists.
    """
    children = [
        *build_template_rbac(spec),
        build_template_job(spec, config, inputs_hash=inputs_hash),
    ]
    if uses_parser_plugin(spec):
        children.append(build_parser_configmap(spec, config))
    if template_configmap and template_hash:
        children.append(
            build_deployment(
                spec, config, template_configmap=template_configmap, template_hash=template_hash
            )
        )
    children.append(build_service(spec))
    return children
