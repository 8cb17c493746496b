"""Names shared by the CRD, the builders, the operator and the chart."""

GROUP = "smolserve.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "SmolServe"
PLURAL = "smolserves"

# Standard labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"

APP_NAME = "smolserve"
MANAGER = "smolserve-operator"

# Project labels and annotations.
SERVE = f"{GROUP}/serve"  # label: the SmolServe's name, on every child
INPUTS_HASH = f"{GROUP}/inputs-hash"  # label: hash of a template Job's inputs
# Annotation on template ConfigMaps: every inputs hash (8 hex, oldest first) that published
# this exact text, so a revert to any of them reuses the ConfigMap without a new Job.
INPUTS_HISTORY = f"{GROUP}/inputs-history"
TEMPLATE_HASH = f"{GROUP}/template-hash"  # label on template ConfigMaps; pod-template annotation
PARSERS_HASH = (
    f"{GROUP}/parsers-hash"  # pod-template annotation: hash of the parser plugin ConfigMap
)
# Smoke-gated rollouts (operator/rollout.py): the pod-template annotation with the operator's hash
# of the pod template (what the agent reports and rollouts are judged by), and two Deployment
# annotations: the last pod template that passed the smoke battery (JSON), and a failed one
# remembered so that it is not tried again (JSON; deleting it tries again).
POD_TEMPLATE_HASH = f"{GROUP}/pod-template-hash"
PASSED_POD_TEMPLATE = f"{GROUP}/passed-pod-template"
SMOKE_FAILED = f"{GROUP}/smoke-failed"
