"""The autoscaler and InferencePool builders, validated against the projects' own CRDs (KEDA
v2.20.2, Gateway API Inference Extension v1.6.0; schema, defaults and CEL rules, unknown fields
refused) and the HPA against Kubernetes' schema (kubernetes-validate, strict)."""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.utils.quantity import parse_quantity

from smolserve.manifests import ServedTemplate, build_deployment, desired_state
from smolserve.manifests.autoscaling import (
    build_autoscaler,
    decimal_text,
    pod_selector,
    quantity_text,
)
from smolserve.manifests.routing import MODELS_ANNOTATION, build_inference_pool
from smolserve.operator.apply import merge_patch_for, with_last_applied
from smolserve.spec import SmolServeSpec, load_spec
from support.factories import PVC_MODEL, operator_config, smolserve
from support.patching import merge_patch
from support.thirdparty import third_party_errors

CONFIG = operator_config()
PROMETHEUS = {"serverAddress": "http://prometheus-operated.monitoring.svc:9090"}
KEDA_CASES = {
    "waiting requests": {"maxReplicas": 4, "prometheus": PROMETHEUS},
    "kv cache, to zero": {
        "minReplicas": 0,
        "maxReplicas": 8,
        "metric": "kvCacheUsage",
        "target": 0.8,
        "prometheus": PROMETHEUS,
        "keda": {"pollingInterval": 15, "cooldownPeriod": 900},
    },
    "own query": {
        "maxReplicas": 2,
        "prometheus": {**PROMETHEUS, "query": "sum(my_gateway_queue{route='smol'})"},
    },
}
HPA_CASES = {
    "waiting requests": {"engine": "hpa", "maxReplicas": 4},
    "renamed kv cache": {
        "engine": "hpa",
        "minReplicas": 2,
        "maxReplicas": 6,
        "metric": "kvCacheUsage",
        "target": 0.75,
        "hpa": {"metricName": "vllm_kv_cache_usage_perc"},
    },
}
POOL = {"endpointPickerRef": {"name": "smol-epp", "port": 9002, "failureMode": "FailOpen"}}


def spec_of(extra: dict[str, Any], name: str = "smol") -> SmolServeSpec:
    body = smolserve({"model": PVC_MODEL, **extra}, name=name, namespace="ai", uid="u-1")
    return load_spec(body)


@pytest.mark.parametrize("case", KEDA_CASES)
def test_the_scaled_object_is_valid_for_keda(case: str) -> None:
    obj = build_autoscaler(spec_of({"autoscaling": KEDA_CASES[case]}))
    assert obj is not None and obj["kind"] == "ScaledObject"
    assert third_party_errors(obj) == []


@pytest.mark.parametrize("case", HPA_CASES)
@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_the_hpa_is_valid_for_kubernetes(case: str, version: str) -> None:
    obj = build_autoscaler(spec_of({"autoscaling": HPA_CASES[case]}))
    assert obj is not None and obj["kind"] == "HorizontalPodAutoscaler"
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_inference_pool_is_valid_for_the_inference_extension() -> None:
    obj = build_inference_pool(spec_of({"inferencePool": POOL}))
    assert obj is not None
    assert third_party_errors(obj) == []


def test_the_scaled_object_scales_the_deployment_on_the_per_pod_average() -> None:
    spec = spec_of({"autoscaling": KEDA_CASES["kv cache, to zero"]})
    obj = build_autoscaler(spec)
    assert obj is not None
    assert obj["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "smol",
    }
    assert (obj["spec"]["minReplicaCount"], obj["spec"]["maxReplicaCount"]) == (0, 8)
    assert (obj["spec"]["pollingInterval"], obj["spec"]["cooldownPeriod"]) == (15, 900)
    (trigger,) = obj["spec"]["triggers"]
    assert trigger["metricType"] == "AverageValue"  # KEDA divides the sum by the pods
    assert trigger["metadata"] == {
        "serverAddress": PROMETHEUS["serverAddress"],
        "query": 'sum(vllm:kv_cache_usage_perc{namespace="ai",pod=~"smol-[a-z0-9]+-[a-z0-9]+"})',
        "threshold": "0.8",
    }
    own = build_autoscaler(spec_of({"autoscaling": KEDA_CASES["own query"]}))
    assert own is not None
    assert own["spec"]["triggers"][0]["metadata"]["query"] == "sum(my_gateway_queue{route='smol'})"


def test_the_query_selects_this_smolserves_pods_and_no_other() -> None:
    """Prometheus anchors regex matchers: the pattern must match the Deployment's pod names
    (``<name>-<template hash>-<suffix>``) and not those of a SmolServe whose name extends it."""
    (pattern,) = re.findall(r'pod=~"([^"]+)"', pod_selector(spec_of({})))
    assert re.fullmatch(pattern, "smol-7d9f8b6c5-x2x4z")
    assert re.fullmatch(pattern, "smol-6b5c4d-q9zrt")
    assert not re.fullmatch(pattern, "smol-b-7d9f8b6c5-x2x4z")  # SmolServe "smol-b"
    assert not re.fullmatch(pattern, "smol-template-1234abcd-x2x4z")  # its template Job's pod
    assert not re.fullmatch(pattern, "xsmol-7d9f8b6c5-x2x4z")


@pytest.mark.parametrize(
    ("target", "quantity", "decimal"),
    [
        (2, "2", "2"),
        (0.8, "800m", "0.8"),
        (2.5, "2500m", "2.5"),
        (0.001, "1m", "0.001"),
        (1000, "1k", "1000"),
        (10000, "10k", "10000"),
        (1500, "1500", "1500"),
        (0.0015, "2m", "0.002"),  # rounded to thousandths, as the CRD says
    ],
)
def test_targets_are_written_as_their_readers_keep_them(
    target: float, quantity: str, decimal: str
) -> None:
    """The HPA's quantity in the API server's canonical form (a re-read object compares equal,
    so it is not patched again), KEDA's threshold as a plain decimal."""
    assert quantity_text(target) == quantity
    assert decimal_text(target) == decimal
    assert parse_quantity(quantity) == Decimal(decimal)


def test_hpa_metric_names() -> None:
    plain = build_autoscaler(spec_of({"autoscaling": HPA_CASES["waiting requests"]}))
    renamed = build_autoscaler(spec_of({"autoscaling": HPA_CASES["renamed kv cache"]}))
    assert plain is not None and renamed is not None
    assert plain["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm:num_requests_waiting"
    assert renamed["spec"]["metrics"][0]["pods"] == {
        "metric": {"name": "vllm_kv_cache_usage_perc"},
        "target": {"type": "AverageValue", "averageValue": "750m"},
    }


def test_the_deployment_leaves_its_replicas_to_an_enabled_autoscaler() -> None:
    def deployment(extra: dict[str, Any]) -> dict[str, Any]:
        spec = spec_of({"replicas": 3, **extra})
        return build_deployment(spec, CONFIG, template_configmap="t", template_hash="12345678")

    assert deployment({})["spec"]["replicas"] == 3
    assert "replicas" not in deployment({"autoscaling": HPA_CASES["waiting requests"]})["spec"]
    off = {"autoscaling": {**HPA_CASES["waiting requests"], "enabled": False}}
    assert deployment(off)["spec"]["replicas"] == 3
    assert build_autoscaler(spec_of(off)) is None


def test_switching_an_autoscaler_on_never_resets_the_live_replicas() -> None:
    """The Deployment applied with replicas, then desired without them: the patch leaves the
    live value alone (a removal would reset it to 1) and only updates the record."""
    template = {"template_configmap": "t", "template_hash": "12345678"}
    before = build_deployment(spec_of({"replicas": 2}), CONFIG, **template)
    live = copy.deepcopy(with_last_applied(before))
    live["spec"]["replicas"] = 5  # an autoscaler got there first
    after = build_deployment(
        spec_of({"autoscaling": HPA_CASES["waiting requests"]}), CONFIG, **template
    )
    patch = merge_patch_for(after, live)
    assert patch is not None and set(patch) == {"metadata"}
    applied = merge_patch(live, patch)
    assert applied["spec"]["replicas"] == 5
    assert merge_patch_for(after, applied) is None
    # Off again: spec.replicas is written back.
    back = merge_patch_for(before, applied)
    assert back is not None and back["spec"] == {"replicas": 2}


def test_the_pool_selects_the_deployments_pods_and_lists_the_models() -> None:
    spec = spec_of(
        {
            "inferencePool": POOL,
            "lora": {
                "adapters": [
                    {"name": "support", "source": "pvc://adapters/support"},
                    {"name": "sql", "source": "hf://org/sql@v1"},
                ]
            },
        }
    )
    pool = build_inference_pool(spec)
    deployment = build_deployment(spec, CONFIG, template_configmap="t", template_hash="12345678")
    assert pool is not None
    assert pool["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert pool["spec"]["endpointPickerRef"] == {
        "name": "smol-epp",
        "port": {"number": 9002},
        "failureMode": "FailOpen",
    }
    assert pool["metadata"]["annotations"][MODELS_ANNOTATION] == "smollm3,sql,support"
    assert pool["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    off = spec_of({"inferencePool": {**POOL, "enabled": False}})
    assert build_inference_pool(off) is None


def test_desired_state_lists_them_after_the_deployment() -> None:
    spec = spec_of({"autoscaling": KEDA_CASES["waiting requests"], "inferencePool": POOL})
    desired = desired_state(
        spec,
        CONFIG,
        inputs_hash="a" * 64,
        template=ServedTemplate("smol-chat-template-1", "1"),
        publishing=False,
    )
    kinds = [o["kind"] for o in desired.objects()]
    assert kinds[-3:] == ["Deployment", "ScaledObject", "InferencePool"]
    before_template = desired_state(
        spec, CONFIG, inputs_hash="a" * 64, template=None, publishing=True
    )
    assert {"ScaledObject", "InferencePool"} <= {o["kind"] for o in before_template.objects()}
