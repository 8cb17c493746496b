"""``load_spec``: a SmolServe object, as the API returns it, into a defaulted ``SmolServeSpec``."""

from __future__ import annotations

from typing import Any

from smolserve.spec.rules import cel_failures, check_identity, check_name
from smolserve.spec.schema import (
    GENERATE_DEFAULTS,
    apply_defaults,
    schema_error,
    spec_schema,
    structure_error,
    unknown_field_error,
)
from smolserve.spec.types import (
    AutoscalingSpec,
    ConfigMapKeyRef,
    EndpointPickerRef,
    EngineSpec,
    InferencePoolSpec,
    LoraAdapter,
    LoraSpec,
    ModelSpec,
    ParsersSpec,
    PvcRef,
    ResourcesSpec,
    RolloutSpec,
    SecretKeyRef,
    ServiceSpec,
    SmolServeSpec,
    SpecError,
    TemplateSpec,
)


def load_spec(obj: dict[str, Any]) -> SmolServeSpec:
    """Read a SmolServe object (dict, as the API returns it) into a defaulted ``SmolServeSpec``.

    Raises ``SpecError`` with one line naming the field for anything the operator cannot act
    on: unknown fields anywhere (top level, ``metadata``, ``spec``; as ``kubectl apply
    --validate=strict`` refuses them), what the CRD's schema refuses, and the CRD's CEL
    cross-field rules. ``status`` is the operator's and is not read.
    """
    if not isinstance(obj, dict):
        raise SpecError("a SmolServe must be a mapping")
    problem = structure_error(obj) or unknown_field_error(obj)
    if problem is not None:
        raise SpecError(problem)
    meta = {} if obj.get("metadata") is None else obj["metadata"]
    name = check_name(meta)
    namespace, uid = check_identity(meta)
    raw = {} if obj.get("spec") is None else obj["spec"]
    if not isinstance(raw, dict):
        raise SpecError("spec must be an object")
    spec = apply_defaults(spec_schema(), raw)
    problem = schema_error(spec)
    if problem is None:
        problem = next(iter(cel_failures(spec)), None)
    if problem is not None:
        raise SpecError(problem)
    return _build(spec, name, namespace, uid)


def _name(adapter: LoraAdapter) -> str:
    return adapter.name


def _build(s: dict[str, Any], name: str, namespace: str | None, uid: str | None) -> SmolServeSpec:
    """The dataclasses of a defaulted, valid spec."""
    m, t, p, lo, e = s["model"], s["template"], s["parsers"], s["lora"], s["engine"]
    r, ro, sv = s["resources"], s["rollout"], s["service"]
    pvc, token, cm = m.get("pvc"), m.get("tokenSecretRef"), t.get("configMapRef")
    adapters = sorted((LoraAdapter(a["name"], a["source"]) for a in lo["adapters"]), key=_name)
    generate = GENERATE_DEFAULTS if t["source"] == "generate" else {}
    return SmolServeSpec(
        name=name,
        namespace=namespace,
        uid=uid,
        model=ModelSpec(
            id=m["id"],
            revision=m.get("revision"),
            pvc=PvcRef(pvc["claimName"], pvc["path"].strip("/")) if pvc else None,
            token_secret_ref=SecretKeyRef(token["name"], token["key"]) if token else None,
        ),
        served_model_name=s["servedModelName"],
        template=TemplateSpec(
            source=t["source"],
            variant=t.get("variant", generate.get("variant")),
            close_system_turn=t.get("closeSystemTurn", generate.get("closeSystemTurn")),
            config_map_ref=ConfigMapKeyRef(cm["name"], cm["key"]) if cm else None,
            inline=t.get("inline"),
        ),
        parsers=ParsersSpec(p["toolCall"], p["reasoning"], p["autoToolChoice"], p["contentFormat"]),
        thinking_default=s["thinking"]["default"],
        lora=LoraSpec(
            tuple(adapters),
            lo["maxRank"],
            lo["maxLoras"],
            mode=lo["mode"],
            listed=tuple(a["name"] for a in lo["adapters"]),
        ),
        engine=EngineSpec(
            image=e["image"],
            max_model_len=e["maxModelLen"],
            gpu_memory_utilization=float(e["gpuMemoryUtilization"]),
            dtype=e["dtype"],
            extra_args=tuple(e["extraArgs"]),
            env=tuple(e["env"]),
        ),
        resources=ResourcesSpec(r["gpus"], r["gpuResourceName"], str(r["cpu"]), str(r["memory"])),
        node_selector=tuple(sorted(s["nodeSelector"].items())),
        tolerations=tuple(s["tolerations"]),
        affinity=s.get("affinity"),
        runtime_class_name=s.get("runtimeClassName"),
        replicas=s["replicas"],
        rollout=RolloutSpec(ro["maxSurge"], ro["maxUnavailable"], ro["smoke"], ro["smokeTimeout"]),
        service=ServiceSpec(sv["type"], sv["port"], tuple(sorted(sv["annotations"].items()))),
        autoscaling=_autoscaling(s.get("autoscaling")),
        inference_pool=_inference_pool(s.get("inferencePool")),
    )


def _autoscaling(a: dict[str, Any] | None) -> AutoscalingSpec | None:
    if a is None:
        return None
    prometheus, keda = a.get("prometheus") or {}, a["keda"]
    return AutoscalingSpec(
        enabled=a["enabled"],
        engine=a["engine"],
        min_replicas=a["minReplicas"],
        max_replicas=a["maxReplicas"],
        metric=a["metric"],
        target=a["target"],
        prometheus_server=prometheus.get("serverAddress"),
        prometheus_query=prometheus.get("query"),
        polling_interval=keda["pollingInterval"],
        cooldown_period=keda["cooldownPeriod"],
        hpa_metric_name=(a.get("hpa") or {}).get("metricName"),
    )


def _inference_pool(p: dict[str, Any] | None) -> InferencePoolSpec | None:
    if p is None:
        return None
    ref = p["endpointPickerRef"]
    return InferencePoolSpec(
        enabled=p["enabled"],
        endpoint_picker=EndpointPickerRef(ref["name"], ref["port"], ref["failureMode"]),
    )
