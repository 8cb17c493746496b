"""The autoscaler of the vLLM Deployment: a KEDA ``ScaledObject`` or an ``autoscaling/v2`` HPA.

Both scale on vLLM's own per-pod load, read from the series vLLM serves at ``/metrics``: the
requests waiting because the running batch is full (``vllm:num_requests_waiting``), or the
fraction of KV-cache blocks in use (``vllm:kv_cache_usage_perc``), kept at ``target`` per pod.
While an autoscaler is enabled it owns the Deployment's ``spec.replicas``: ``build_deployment``
leaves the field out, and the operator never writes it (see ``operator/apply.py``).

KEDA reads the metric from Prometheus with a query that sums it over this SmolServe's pods
(``namespace`` and ``pod`` are the target labels every Prometheus-operator scrape sets; the pod
names of a Deployment ``<name>`` are ``<name>-<template hash>-<suffix>``) and, as an
``AverageValue`` metric, divides it by the number of pods. The HPA asks the custom-metrics API
(a Prometheus adapter) for the same series per pod.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from smolserve.manifests.common import child_metadata
from smolserve.spec import AutoscalingSpec, SmolServeSpec

AUTOSCALER = "autoscaler"  # app.kubernetes.io/component

# spec.autoscaling.metric → the vLLM series it reads (vLLM 0.32; the vLLM tier checks the names).
VLLM_SERIES = {
    "waitingRequests": "vllm:num_requests_waiting",
    "kvCacheUsage": "vllm:kv_cache_usage_perc",
}
TRIGGER_NAMES = {"waitingRequests": "vllm-waiting-requests", "kvCacheUsage": "vllm-kv-cache"}
_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G"}


def enabled_autoscaling(spec: SmolServeSpec) -> AutoscalingSpec | None:
    """The spec's autoscaling when it is on (it then owns the Deployment's replicas)."""
    autoscaling = spec.autoscaling
    return autoscaling if autoscaling is not None and autoscaling.enabled else None


def _milli(value: float) -> int:
    """The target in thousandths (the CRD documents the rounding)."""
    return int((Decimal(str(value)) * 1000).to_integral_value())


def decimal_text(value: float) -> str:
    """The target as a plain decimal, as KEDA's threshold parses it ("2", "0.8")."""
    return format(Decimal(_milli(value)).scaleb(-3).normalize(), "f")


def quantity_text(value: float) -> str:
    """The target as a Kubernetes quantity in the form the API server stores ("2", "800m",
    "10k"), so that a re-read HPA compares equal and is not patched again."""
    amount, exponent = _milli(value), -3
    while amount and amount % 1000 == 0 and exponent < 9:
        amount, exponent = amount // 1000, exponent + 3
    return f"{amount}{_SUFFIXES[exponent]}" if amount else "0"


def pod_selector(spec: SmolServeSpec) -> str:
    """PromQL label matchers for this SmolServe's vLLM pods (and no other SmolServe's)."""
    pods = f'pod=~"{spec.name}-[a-z0-9]+-[a-z0-9]+"'
    return f'namespace="{spec.namespace}",{pods}' if spec.namespace else pods


def default_query(spec: SmolServeSpec, autoscaling: AutoscalingSpec) -> str:
    """The sum of the metric over this SmolServe's pods (KEDA divides it by the pods)."""
    return f"sum({VLLM_SERIES[autoscaling.metric]}{{{pod_selector(spec)}}})"


def _scale_target(spec: SmolServeSpec) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name}


def build_scaled_object(spec: SmolServeSpec, autoscaling: AutoscalingSpec) -> dict[str, Any]:
    """KEDA ``ScaledObject`` ``<name>`` (``keda.sh/v1alpha1``): one Prometheus trigger."""
    assert autoscaling.prometheus_server is not None  # the CRD's rule for engine keda
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": child_metadata(spec, spec.name, AUTOSCALER),
        "spec": {
            "scaleTargetRef": _scale_target(spec),
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            "pollingInterval": autoscaling.polling_interval,
            "cooldownPeriod": autoscaling.cooldown_period,
            "triggers": [
                {
                    "type": "prometheus",
                    "name": TRIGGER_NAMES[autoscaling.metric],
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": autoscaling.prometheus_server,
                        "query": autoscaling.prometheus_query or default_query(spec, autoscaling),
                        "threshold": decimal_text(autoscaling.target),
                    },
                }
            ],
        },
    }


def build_hpa(spec: SmolServeSpec, autoscaling: AutoscalingSpec) -> dict[str, Any]:
    """``HorizontalPodAutoscaler`` ``<name>`` (``autoscaling/v2``) on a Pods metric."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(spec, spec.name, AUTOSCALER),
        "spec": {
            "scaleTargetRef": _scale_target(spec),
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {
                            "name": autoscaling.hpa_metric_name or VLLM_SERIES[autoscaling.metric]
                        },
                        "target": {
                            "type": "AverageValue",
                            "averageValue": quantity_text(autoscaling.target),
                        },
                    },
                }
            ],
        },
    }


def build_autoscaler(spec: SmolServeSpec) -> dict[str, Any] | None:
    """The autoscaler ``spec.autoscaling`` asks for, or None when autoscaling is off."""
    autoscaling = enabled_autoscaling(spec)
    if autoscaling is None:
        return None
    if autoscaling.engine == "keda":
        return build_scaled_object(spec, autoscaling)
    return build_hpa(spec, autoscaling)
