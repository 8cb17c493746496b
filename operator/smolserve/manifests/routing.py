"""Routing: the Gateway API Inference Extension ``InferencePool`` over the vLLM pods.

An ``InferencePool`` (``inference.networking.k8s.io/v1``) names a set of model-server pods and
the endpoint picker (EPP) a gateway asks which of them should take a request; an HTTPRoute then
sends traffic to the pool instead of a Service. The pool selects exactly the pods the
SmolServe's Deployment selects (its immutable selector labels: this SmolServe's server pods,
not its template Job's), on vLLM's port; Kubernetes readiness decides which of them are
endpoints. The models the pods serve (the base model's name and every adapter's) are listed in
the annotation ``smolserve.dev/models``, for routes that match on the model name; the picker
itself learns which adapters each pod has loaded from vLLM's metrics.
"""

from __future__ import annotations

from typing import Any

from smolserve import labels
from smolserve.manifests.common import HTTP_PORT, child_metadata, selector_labels
from smolserve.spec import SmolServeSpec

ROUTING = "routing"  # app.kubernetes.io/component
MODELS_ANNOTATION = f"{labels.GROUP}/models"


def served_models(spec: SmolServeSpec) -> list[str]:
    """The model names clients can send: the base model's, then each adapter's (sorted)."""
    return [spec.served_model_name, *(adapter.name for adapter in spec.lora.adapters)]


def build_inference_pool(spec: SmolServeSpec) -> dict[str, Any] | None:
    """``InferencePool`` ``<name>``, or None when ``spec.inferencePool`` is absent or off."""
    pool = spec.inference_pool
    if pool is None or not pool.enabled:
        return None
    picker = pool.endpoint_picker
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": child_metadata(
            spec,
            spec.name,
            ROUTING,
            annotations={MODELS_ANNOTATION: ",".join(served_models(spec))},
        ),
        "spec": {
            "selector": {"matchLabels": selector_labels(spec.name)},
            "targetPorts": [{"number": HTTP_PORT}],
            "endpointPickerRef": {
                "name": picker.name,
                "port": {"number": picker.port},
                "failureMode": picker.failure_mode,
            },
        },
    }
