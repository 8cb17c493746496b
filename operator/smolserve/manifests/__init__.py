"""Pure builders: a SmolServe's spec → the Kubernetes objects the operator creates.

Shared by the operator and ``smolserve render``. Builders take a ``SmolServeSpec`` (from
``smolserve.spec.load_spec``, which also records the owner's name, namespace and uid) and an
``OperatorConfig``, and return plain dicts. They do no I/O.
"""

from __future__ import annotations

from smolserve.manifests.common import (
    TEMPLATE_PATH,
    TEMPLATE_SHA256_ANNOTATION,
    OperatorConfig,
    owner_references,
    selector_labels,
    selector_string,
    standard_labels,
)
from smolserve.manifests.desired import DesiredState, ServedTemplate, desired_state
from smolserve.manifests.server import (
    TEMPLATE_HISTORY,
    build_deployment,
    build_parser_configmap,
    build_service,
    mounted_configmaps,
    mounted_template,
    parser_configmap_name,
    served_template_hash,
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

__all__ = [
    "TEMPLATE_HISTORY",
    "TEMPLATE_PATH",
    "TEMPLATE_SHA256_ANNOTATION",
    "DesiredState",
    "OperatorConfig",
    "ServedTemplate",
    "build_deployment",
    "build_parser_configmap",
    "build_service",
    "build_template_configmap",
    "build_template_job",
    "build_template_rbac",
    "desired_state",
    "mounted_configmaps",
    "mounted_template",
    "owner_references",
    "parser_configmap_name",
    "publish_template_args",
    "selector_labels",
    "selector_string",
    "served_template_hash",
    "standard_labels",
    "template_configmap_name",
    "template_inputs_hash",
    "template_job_name",
    "template_rbac_name",
    "uses_parser_plugin",
    "vllm_args",
]
