"""The typed SmolServe: frozen dataclasses of a defaulted, valid spec, and ``SpecError``.

``SmolServeSpec.to_dict`` gives the spec back in the CRD's camelCase shape, every default filled
in. The dataclasses are built only by ``load_spec``, after the schema and the rules have passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from smolserve.errors import UsageError

# The two forms of a LoRA adapter source (the CRD's rule; ``LoraAdapter`` takes them apart).
HF_SOURCE_RE = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<revision>[A-Za-z0-9._/-]+)$"
)
PVC_SOURCE_RE = re.compile(
    r"^pvc://(?P<claim>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?P<path>(/[^/]+)*)/?$"
)


class SpecError(UsageError):
    """A SmolServe the operator cannot act on; the message says which field and why."""


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class PvcRef:
    claim_name: str
    path: str


@dataclass(frozen=True)
class ModelSpec:
    id: str
    revision: str | None
    pvc: PvcRef | None
    token_secret_ref: SecretKeyRef | None


@dataclass(frozen=True)
class ConfigMapKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class TemplateSpec:
    source: str
    variant: str | None  # set only for source: generate
    close_system_turn: bool | None  # set only for source: generate
    config_map_ref: ConfigMapKeyRef | None
    inline: str | None


@dataclass(frozen=True)
class ParsersSpec:
    tool_call: str
    reasoning: str
    auto_tool_choice: bool
    content_format: str


@dataclass(frozen=True)
class LoraAdapter:
    name: str
    source: str

    @property
    def kind(self) -> str:
        """``hf`` or ``pvc``."""
        return self.source.split("://", 1)[0]

    @property
    def hf_repo(self) -> tuple[str, str]:
        """(repo id, revision) of an ``hf://repo@rev`` source."""
        match = HF_SOURCE_RE.fullmatch(self.source)
        if not match:
            raise SpecError(f"lora adapter {self.name!r}: {self.source!r} is not hf://repo@rev")
        return match["repo"], match["revision"]

    @property
    def pvc(self) -> PvcRef:
        """(claim, path inside it) of a ``pvc://claim/path`` source."""
        match = PVC_SOURCE_RE.fullmatch(self.source)
        if not match:
            raise SpecError(f"lora adapter {self.name!r}: {self.source!r} is not pvc://claim/path")
        return PvcRef(match["claim"], match["path"].strip("/"))


@dataclass(frozen=True)
class LoraSpec:
    adapters: tuple[LoraAdapter, ...]  # sorted by name
    max_rank: int
    max_loras: int
    mode: str = "dynamic"  # dynamic | static
    listed: tuple[str, ...] = ()  # the adapters' names in the order the spec lists them

    @property
    def enabled(self) -> bool:
        return bool(self.adapters)

    def in_listed_order(self) -> tuple[LoraAdapter, ...]:
        """The adapters as the spec lists them (``adapters`` is sorted by name)."""
        by_name = {a.name: a for a in self.adapters}
        return tuple(by_name[name] for name in self.listed) if self.listed else self.adapters

    @property
    def dynamic(self) -> bool:
        """LoRA on, the adapters loaded at run time by the pods' agents."""
        return self.enabled and self.mode == "dynamic"

    @property
    def static(self) -> bool:
        """LoRA on, the adapters passed to vLLM as start-up flags."""
        return self.enabled and self.mode == "static"


@dataclass(frozen=True)
class EngineSpec:
    image: str
    max_model_len: int
    gpu_memory_utilization: float
    dtype: str
    extra_args: tuple[str, ...]
    env: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ResourcesSpec:
    gpus: int
    gpu_resource_name: str
    cpu: str
    memory: str


@dataclass(frozen=True)
class RolloutSpec:
    max_surge: int | str
    max_unavailable: int | str
    smoke: bool = True
    smoke_timeout: str = "3m"  # the CRD's pattern: 1-4 digits, then s or m

    @property
    def smoke_timeout_seconds(self) -> int:
        value, unit = int(self.smoke_timeout[:-1]), self.smoke_timeout[-1]
        return value * 60 if unit == "m" else value


@dataclass(frozen=True)
class ServiceSpec:
    type: str
    port: int
    annotations: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AutoscalingSpec:
    """``spec.autoscaling``: the autoscaler that owns the Deployment's replicas when enabled."""

    enabled: bool
    engine: str  # keda | hpa
    min_replicas: int
    max_replicas: int
    metric: str  # waitingRequests | kvCacheUsage
    target: int | float
    prometheus_server: str | None
    prometheus_query: str | None
    polling_interval: int
    cooldown_period: int
    hpa_metric_name: str | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "engine": self.engine,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "metric": self.metric,
            "target": self.target,
            "keda": {
                "pollingInterval": self.polling_interval,
                "cooldownPeriod": self.cooldown_period,
            },
        }
        prometheus = {
            key: value
            for key, value in (
                ("serverAddress", self.prometheus_server),
                ("query", self.prometheus_query),
            )
            if value is not None
        }
        if prometheus:
            out["prometheus"] = prometheus
        if self.hpa_metric_name is not None:
            out["hpa"] = {"metricName": self.hpa_metric_name}
        return out


@dataclass(frozen=True)
class EndpointPickerRef:
    name: str
    port: int
    failure_mode: str


@dataclass(frozen=True)
class InferencePoolSpec:
    """``spec.inferencePool``: an InferencePool over the vLLM pods when enabled."""

    enabled: bool
    endpoint_picker: EndpointPickerRef

    def to_dict(self) -> dict[str, Any]:
        ref = self.endpoint_picker
        return {
            "enabled": self.enabled,
            "endpointPickerRef": {
                "name": ref.name,
                "port": ref.port,
                "failureMode": ref.failure_mode,
            },
        }


@dataclass(frozen=True)
class SmolServeSpec:
    """A SmolServe with defaults applied. ``name``/``namespace``/``uid`` identify the owner."""

    name: str
    namespace: str | None
    uid: str | None
    model: ModelSpec
    served_model_name: str
    template: TemplateSpec
    parsers: ParsersSpec
    thinking_default: str
    lora: LoraSpec
    engine: EngineSpec
    resources: ResourcesSpec
    node_selector: tuple[tuple[str, str], ...]
    tolerations: tuple[dict[str, Any], ...]
    affinity: dict[str, Any] | None
    runtime_class_name: str | None
    replicas: int
    rollout: RolloutSpec
    service: ServiceSpec
    autoscaling: AutoscalingSpec | None = None  # absent: spec.replicas pods
    inference_pool: InferencePoolSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec in the CRD's shape (camelCase), every default filled in."""
        model: dict[str, Any] = {"id": self.model.id}
        if self.model.revision is not None:
            model["revision"] = self.model.revision
        if self.model.pvc is not None:
            model["pvc"] = {"claimName": self.model.pvc.claim_name, "path": self.model.pvc.path}
        if self.model.token_secret_ref is not None:
            ref = self.model.token_secret_ref
            model["tokenSecretRef"] = {"name": ref.name, "key": ref.key}
        template: dict[str, Any] = {"source": self.template.source}
        if self.template.variant is not None:
            template["variant"] = self.template.variant
        if self.template.close_system_turn is not None:
            template["closeSystemTurn"] = self.template.close_system_turn
        if self.template.config_map_ref is not None:
            cm = self.template.config_map_ref
            template["configMapRef"] = {"name": cm.name, "key": cm.key}
        if self.template.inline is not None:
            template["inline"] = self.template.inline
        out: dict[str, Any] = {
            "model": model,
            "servedModelName": self.served_model_name,
            "template": template,
            "parsers": {
                "toolCall": self.parsers.tool_call,
                "reasoning": self.parsers.reasoning,
                "autoToolChoice": self.parsers.auto_tool_choice,
                "contentFormat": self.parsers.content_format,
            },
            "thinking": {"default": self.thinking_default},
            "lora": {
                "adapters": [
                    {"name": a.name, "source": a.source} for a in self.lora.in_listed_order()
                ],
                "maxRank": self.lora.max_rank,
                "maxLoras": self.lora.max_loras,
                "mode": self.lora.mode,
            },
            "engine": {
                "image": self.engine.image,
                "maxModelLen": self.engine.max_model_len,
                "gpuMemoryUtilization": self.engine.gpu_memory_utilization,
                "dtype": self.engine.dtype,
                "extraArgs": list(self.engine.extra_args),
                "env": [dict(e) for e in self.engine.env],
            },
            "resources": {
                "gpus": self.resources.gpus,
                "gpuResourceName": self.resources.gpu_resource_name,
                "cpu": self.resources.cpu,
                "memory": self.resources.memory,
            },
            "nodeSelector": dict(self.node_selector),
            "tolerations": [dict(t) for t in self.tolerations],
            "replicas": self.replicas,
            "rollout": {
                "maxSurge": self.rollout.max_surge,
                "maxUnavailable": self.rollout.max_unavailable,
                "smoke": self.rollout.smoke,
                "smokeTimeout": self.rollout.smoke_timeout,
            },
            "service": {
                "type": self.service.type,
                "port": self.service.port,
                "annotations": dict(self.service.annotations),
            },
        }
        if self.autoscaling is not None:
            out["autoscaling"] = self.autoscaling.to_dict()
        if self.inference_pool is not None:
            out["inferencePool"] = self.inference_pool.to_dict()
        if self.affinity is not None:
            out["affinity"] = self.affinity
        if self.runtime_class_name is not None:
            out["runtimeClassName"] = self.runtime_class_name
        return out
