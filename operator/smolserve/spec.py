"""A SmolServe's spec as typed, defaulted, checked data.

The CRD (``crds/smolserve.yaml``) is the authority on field names, defaults and rules. The API
server applies them, but the Kubernetes emulator used in tests and ``smolserve render`` see
objects that were never defaulted or validated, so ``load_spec`` applies the same defaults and
re-checks the types, enums and CEL cross-field rules the operator relies on (tests derive the
CRD's defaults and enums from the file and compare). ``SmolServeSpec.to_dict`` gives the spec
back in the CRD's camelCase shape, with every default filled in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from smolserve.errors import UsageError
from smolserve.template.generate import VARIANTS as TEMPLATE_VARIANTS

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM3-3B"
DEFAULT_IMAGE = "vllm/vllm-openai:v0.32.0"

TEMPLATE_SOURCES = ("generate", "configMap", "inline")
REASONING_PARSERS = ("deepseek_r1", "qwen3", "smollm3", "none")
CONTENT_FORMATS = ("string", "openai")
THINKING_MODES = ("think", "noThink")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
DTYPES = ("auto", "bfloat16", "float16", "float32")

# The longest SmolServe name whose children's names stay valid: the template Job
# `<name>-template-<hash8>` must fit a 63-character label value (job-name label).
MAX_NAME_LENGTH = 45
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_ADAPTER_NAME_LENGTH = 50

# The fields of each object load_spec reads, as the CRD names them (a test compares them with the
# CRD). The API server prunes anything else; render and the emulator would silently ignore a
# misspelt field, so load_spec refuses it instead.
FIELDS: dict[str, frozenset[str]] = {
    path: frozenset(names.split())
    for path, names in {
        "spec": "model servedModelName template parsers thinking lora engine resources "
        "nodeSelector tolerations affinity runtimeClassName replicas rollout service",
        "spec.model": "id revision pvc tokenSecretRef",
        "spec.model.pvc": "claimName path",
        "spec.model.tokenSecretRef": "name key",
        "spec.template": "source variant closeSystemTurn configMapRef inline",
        "spec.template.configMapRef": "name key",
        "spec.parsers": "toolCall reasoning autoToolChoice contentFormat",
        "spec.thinking": "default",
        "spec.lora": "adapters maxRank maxLoras",
        "spec.lora.adapters[]": "name source",
        "spec.engine": "image maxModelLen gpuMemoryUtilization dtype extraArgs env",
        "spec.resources": "gpus gpuResourceName cpu memory",
        "spec.rollout": "maxSurge maxUnavailable",
        "spec.service": "type port annotations",
    }.items()
}
ADAPTER_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Flags the builders own; overriding them in extraArgs would break the wiring to the mounts,
# the probes and the Service.
RESERVED_ARGS = ("--model", "--chat-template", "--host", "--port", "--served-model-name")
# Environment variables the builders set on the vLLM container.
RESERVED_ENV = ("HF_TOKEN", "HOME", "HF_HOME")

_HF_SOURCE_RE = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<revision>[A-Za-z0-9._/-]+)$"
)
_PVC_SOURCE_RE = re.compile(
    r"^pvc://(?P<claim>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?P<path>(/[^/]+)*)/?$"
)


class SpecError(UsageError):
    """A SmolServe the operator cannot act on; the message says which field and why."""


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str = "token"


@dataclass(frozen=True)
class PvcRef:
    claim_name: str
    path: str = ""


@dataclass(frozen=True)
class ModelSpec:
    id: str = DEFAULT_MODEL_ID
    revision: str | None = None
    pvc: PvcRef | None = None
    token_secret_ref: SecretKeyRef | None = None


@dataclass(frozen=True)
class ConfigMapKeyRef:
    name: str
    key: str = "chat_template.jinja"


@dataclass(frozen=True)
class TemplateSpec:
    source: str = "generate"
    variant: str | None = "fixed"  # set only for source: generate
    close_system_turn: bool | None = True  # set only for source: generate
    config_map_ref: ConfigMapKeyRef | None = None
    inline: str | None = None


@dataclass(frozen=True)
class ParsersSpec:
    tool_call: str = "hermes"
    reasoning: str = "smollm3"
    auto_tool_choice: bool = True
    content_format: str = "string"


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
        match = _HF_SOURCE_RE.match(self.source)
        if not match:
            raise SpecError(f"lora adapter {self.name!r}: {self.source!r} is not hf://repo@rev")
        return match["repo"], match["revision"]

    @property
    def pvc(self) -> PvcRef:
        """(claim, path inside it) of a ``pvc://claim/path`` source."""
        match = _PVC_SOURCE_RE.match(self.source)
        if not match:
            raise SpecError(f"lora adapter {self.name!r}: {self.source!r} is not pvc://claim/path")
        return PvcRef(match["claim"], match["path"].strip("/"))


@dataclass(frozen=True)
class LoraSpec:
    adapters: tuple[LoraAdapter, ...] = ()  # sorted by name
    max_rank: int = 16
    max_loras: int = 1

    @property
    def enabled(self) -> bool:
        return bool(self.adapters)


@dataclass(frozen=True)
class EngineSpec:
    image: str = DEFAULT_IMAGE
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    extra_args: tuple[str, ...] = ()
    env: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ResourcesSpec:
    gpus: int = 1
    gpu_resource_name: str = "nvidia.com/gpu"
    cpu: str = "4"
    memory: str = "24Gi"


@dataclass(frozen=True)
class RolloutSpec:
    max_surge: int | str = 1
    max_unavailable: int | str = 0


@dataclass(frozen=True)
class ServiceSpec:
    type: str = "ClusterIP"
    port: int = 8000
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SmolServeSpec:
    """A SmolServe with defaults applied. ``name``/``namespace``/``uid`` identify the owner."""

    name: str
    namespace: str | None = None
    uid: str | None = None
    model: ModelSpec = field(default_factory=ModelSpec)
    served_model_name: str = "smollm3"
    template: TemplateSpec = field(default_factory=TemplateSpec)
    parsers: ParsersSpec = field(default_factory=ParsersSpec)
    thinking_default: str = "think"
    lora: LoraSpec = field(default_factory=LoraSpec)
    engine: EngineSpec = field(default_factory=EngineSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] | None = None
    runtime_class_name: str | None = None
    replicas: int = 1
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    service: ServiceSpec = field(default_factory=ServiceSpec)

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
                "adapters": [{"name": a.name, "source": a.source} for a in self.lora.adapters],
                "maxRank": self.lora.max_rank,
                "maxLoras": self.lora.max_loras,
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
            },
            "service": {
                "type": self.service.type,
                "port": self.service.port,
                "annotations": dict(self.service.annotations),
            },
        }
        if self.affinity is not None:
            out["affinity"] = self.affinity
        if self.runtime_class_name is not None:
            out["runtimeClassName"] = self.runtime_class_name
        return out


def _known_fields(obj: dict[str, Any], path: str, shown: str | None = None) -> dict[str, Any]:
    """``obj`` if it holds only the fields ``FIELDS[path]`` names; ``SpecError`` otherwise."""
    unknown = sorted(set(obj) - FIELDS[path])
    if unknown:
        raise SpecError(
            f"{shown or path}: unknown field {unknown[0]!r} "
            f"(known: {', '.join(sorted(FIELDS[path]))})"
        )
    return obj


def _section(spec: dict[str, Any], key: str) -> dict[str, Any]:
    value = spec.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"spec.{key} must be an object, got {type(value).__name__}")
    return _known_fields(value, f"spec.{key}")


def _typed(
    section: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, path: str
):
    value = section.get(key, default)
    if value is None:
        return default
    # bool is an int subclass: never accept it where a number is meant.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise SpecError(f"{path}.{key} must be {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise SpecError(f"{path}.{key} must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _choice(value: str, allowed: tuple[str, ...], path: str) -> str:
    if value not in allowed:
        raise SpecError(f"{path} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _int_or_percent(value: Any, path: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(f"{path} must be an integer or a percentage like '25%'")
    if isinstance(value, str) and not re.fullmatch(r"[0-9]+%", value):
        raise SpecError(f"{path} must be an integer or a percentage like '25%'; got {value!r}")
    if isinstance(value, int) and value < 0:
        raise SpecError(f"{path} must not be negative")
    return value


def _is_zero(value: int | str) -> bool:
    return value == 0 or (isinstance(value, str) and int(value.rstrip("%")) == 0)


def load_spec(obj: dict[str, Any]) -> SmolServeSpec:
    """Read a SmolServe object (dict, as the API returns it) into a defaulted ``SmolServeSpec``.

    Raises ``SpecError`` with one line naming the field for anything the operator cannot act
    on, including the cross-field rules the CRD also checks with CEL (the emulator and
    ``smolserve render`` never ran them).
    """
    if not isinstance(obj, dict):
        raise SpecError("a SmolServe must be a mapping")
    meta = {} if obj.get("metadata") is None else obj["metadata"]
    if not isinstance(meta, dict):
        raise SpecError("metadata must be an object")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.name is required")
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.match(name):
        raise SpecError(
            f"metadata.name {name!r} must be a DNS label starting with a letter and at most "
            f"{MAX_NAME_LENGTH} characters (children's names add suffixes)"
        )
    spec = {} if obj.get("spec") is None else obj["spec"]
    if not isinstance(spec, dict):
        raise SpecError("spec must be an object")
    _known_fields(spec, "spec")
    return SmolServeSpec(
        name=name,
        namespace=meta.get("namespace"),
        uid=meta.get("uid"),
        model=_load_model(_section(spec, "model")),
        served_model_name=_typed(
            spec, "servedModelName", str, SmolServeSpec.served_model_name, "spec"
        ),
        template=_load_template(_section(spec, "template")),
        parsers=_load_parsers(_section(spec, "parsers")),
        thinking_default=_choice(
            _typed(
                _section(spec, "thinking"),
                "default",
                str,
                SmolServeSpec.thinking_default,
                "spec.thinking",
            ),
            THINKING_MODES,
            "spec.thinking.default",
        ),
        lora=_load_lora(_section(spec, "lora")),
        engine=_load_engine(_section(spec, "engine")),
        resources=_load_resources(_section(spec, "resources")),
        node_selector=tuple(sorted(_typed(spec, "nodeSelector", dict, {}, "spec").items())),
        tolerations=tuple(_typed(spec, "tolerations", list, [], "spec")),
        affinity=_typed(spec, "affinity", dict, None, "spec"),
        runtime_class_name=_typed(spec, "runtimeClassName", str, None, "spec"),
        replicas=_load_replicas(spec),
        rollout=_load_rollout(_section(spec, "rollout")),
        service=_load_service(_section(spec, "service")),
    )


def _load_model(m: dict[str, Any]) -> ModelSpec:
    path = "spec.model"
    pvc = None
    if m.get("pvc") is not None:
        raw = _known_fields(_typed(m, "pvc", dict, None, path), f"{path}.pvc")
        claim = _typed(raw, "claimName", str, "", f"{path}.pvc")
        if not claim:
            raise SpecError(f"{path}.pvc.claimName is required")
        pvc = PvcRef(claim, _typed(raw, "path", str, PvcRef.path, f"{path}.pvc").strip("/"))
    revision = _typed(m, "revision", str, None, path)
    if pvc is not None and revision is not None:
        raise SpecError(f"{path}: revision applies to hub downloads; with pvc, leave it unset")
    token = None
    if m.get("tokenSecretRef") is not None:
        raw = _known_fields(_typed(m, "tokenSecretRef", dict, None, path), f"{path}.tokenSecretRef")
        token_name = _typed(raw, "name", str, "", f"{path}.tokenSecretRef")
        if not token_name:
            raise SpecError(f"{path}.tokenSecretRef.name is required")
        token = SecretKeyRef(
            token_name, _typed(raw, "key", str, SecretKeyRef.key, f"{path}.tokenSecretRef")
        )
    return ModelSpec(
        id=_typed(m, "id", str, ModelSpec.id, path),
        revision=revision,
        pvc=pvc,
        token_secret_ref=token,
    )


def _load_template(t: dict[str, Any]) -> TemplateSpec:
    path = "spec.template"
    source = _choice(
        _typed(t, "source", str, TemplateSpec.source, path), TEMPLATE_SOURCES, f"{path}.source"
    )
    variant = _typed(t, "variant", str, None, path)
    close = _typed(t, "closeSystemTurn", bool, None, path)
    if source == "generate":
        variant = _choice(variant or TemplateSpec.variant, TEMPLATE_VARIANTS, f"{path}.variant")
        close = TemplateSpec.close_system_turn if close is None else close
    elif variant is not None or close is not None:
        raise SpecError(f"{path}: variant and closeSystemTurn apply only to source: generate")
    cm_ref = None
    if t.get("configMapRef") is not None:
        raw = _known_fields(_typed(t, "configMapRef", dict, None, path), f"{path}.configMapRef")
        cm_name = _typed(raw, "name", str, "", f"{path}.configMapRef")
        if not cm_name:
            raise SpecError(f"{path}.configMapRef.name is required")
        cm_ref = ConfigMapKeyRef(
            cm_name, _typed(raw, "key", str, ConfigMapKeyRef.key, f"{path}.configMapRef")
        )
    inline = _typed(t, "inline", str, None, path)
    if (source == "configMap") != (cm_ref is not None):
        raise SpecError(f"{path}: configMapRef is required with, and only with, source: configMap")
    if (source == "inline") != bool(inline):
        raise SpecError(
            f"{path}: a non-empty inline is required with, and only with, source: inline"
        )
    return TemplateSpec(source, variant, close, cm_ref, inline)


def _load_parsers(p: dict[str, Any]) -> ParsersSpec:
    path = "spec.parsers"
    parsers = ParsersSpec(
        tool_call=_typed(p, "toolCall", str, ParsersSpec.tool_call, path),
        reasoning=_choice(
            _typed(p, "reasoning", str, ParsersSpec.reasoning, path),
            REASONING_PARSERS,
            f"{path}.reasoning",
        ),
        auto_tool_choice=_typed(p, "autoToolChoice", bool, ParsersSpec.auto_tool_choice, path),
        content_format=_choice(
            _typed(p, "contentFormat", str, ParsersSpec.content_format, path),
            CONTENT_FORMATS,
            f"{path}.contentFormat",
        ),
    )
    if parsers.auto_tool_choice and parsers.tool_call == "none":
        raise SpecError(f"{path}: autoToolChoice needs a toolCall parser")
    return parsers


def _load_lora(lo: dict[str, Any]) -> LoraSpec:
    path = "spec.lora"
    adapters = []
    for i, raw in enumerate(_typed(lo, "adapters", list, [], path)):
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("source"):
            raise SpecError(f"{path}.adapters[{i}] needs a name and a source")
        _known_fields(raw, f"{path}.adapters[]", f"{path}.adapters[{i}]")
        adapter = LoraAdapter(str(raw["name"]), str(raw["source"]))
        # The name becomes a path (/adapters/<name>) and a volume name: the CRD's pattern.
        if len(adapter.name) > MAX_ADAPTER_NAME_LENGTH or not ADAPTER_NAME_RE.match(adapter.name):
            raise SpecError(
                f"{path}.adapters[{i}].name {adapter.name!r} must be a DNS label of at most "
                f"{MAX_ADAPTER_NAME_LENGTH} characters"
            )
        if not (_HF_SOURCE_RE.match(adapter.source) or _PVC_SOURCE_RE.match(adapter.source)):
            raise SpecError(
                f"{path}.adapters[{i}].source {adapter.source!r} must be hf://org/repo@revision "
                "or pvc://claim/path"
            )
        if ".." in adapter.source:
            raise SpecError(f"{path}.adapters[{i}].source must not contain '..'")
        adapters.append(adapter)
    names = [a.name for a in adapters]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"{path}.adapters: duplicate names {', '.join(duplicates)}")
    max_rank = _typed(lo, "maxRank", int, LoraSpec.max_rank, path)
    if max_rank not in LORA_RANKS:
        raise SpecError(f"{path}.maxRank must be one of {', '.join(map(str, LORA_RANKS))}")
    max_loras = _typed(lo, "maxLoras", int, LoraSpec.max_loras, path)
    if max_loras < 1:
        raise SpecError(f"{path}.maxLoras must be at least 1")
    return LoraSpec(tuple(sorted(adapters, key=lambda a: a.name)), max_rank, max_loras)


def _load_engine(e: dict[str, Any]) -> EngineSpec:
    path = "spec.engine"
    extra = _typed(e, "extraArgs", list, [], path)
    if not all(isinstance(a, str) for a in extra):
        raise SpecError(f"{path}.extraArgs must be a list of strings")
    for arg in extra:
        flag = arg.split("=", 1)[0]
        if flag in RESERVED_ARGS:
            raise SpecError(f"{path}.extraArgs: {flag} is set by smolserve from the spec")
    env = _typed(e, "env", list, [], path)
    for i, var in enumerate(env):
        if not isinstance(var, dict) or not isinstance(var.get("name"), str):
            raise SpecError(f"{path}.env[{i}] needs a name")
        if var["name"] in RESERVED_ENV:
            raise SpecError(f"{path}.env: {var['name']} is set by smolserve")
    utilization = _typed(
        e, "gpuMemoryUtilization", (int, float), EngineSpec.gpu_memory_utilization, path
    )
    if not 0 < utilization <= 1:
        raise SpecError(f"{path}.gpuMemoryUtilization must be in (0, 1]")
    max_len = _typed(e, "maxModelLen", int, EngineSpec.max_model_len, path)
    if max_len < 1:
        raise SpecError(f"{path}.maxModelLen must be positive")
    return EngineSpec(
        image=_typed(e, "image", str, EngineSpec.image, path),
        max_model_len=max_len,
        gpu_memory_utilization=float(utilization),
        dtype=_choice(_typed(e, "dtype", str, EngineSpec.dtype, path), DTYPES, f"{path}.dtype"),
        extra_args=tuple(extra),
        env=tuple(env),
    )


def _quantity(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(f"{path} must be a quantity like '4' or '24Gi'")
    return str(value)


def _load_resources(r: dict[str, Any]) -> ResourcesSpec:
    path = "spec.resources"
    gpus = _typed(r, "gpus", int, ResourcesSpec.gpus, path)
    if gpus < 0:
        raise SpecError(f"{path}.gpus must not be negative")
    return ResourcesSpec(
        gpus=gpus,
        gpu_resource_name=_typed(r, "gpuResourceName", str, ResourcesSpec.gpu_resource_name, path),
        cpu=_quantity(r.get("cpu", ResourcesSpec.cpu), f"{path}.cpu"),
        memory=_quantity(r.get("memory", ResourcesSpec.memory), f"{path}.memory"),
    )


def _load_replicas(spec: dict[str, Any]) -> int:
    replicas = _typed(spec, "replicas", int, SmolServeSpec.replicas, "spec")
    if replicas < 0:
        raise SpecError("spec.replicas must not be negative")
    return replicas


def _load_rollout(r: dict[str, Any]) -> RolloutSpec:
    path = "spec.rollout"
    surge = _int_or_percent(r.get("maxSurge", RolloutSpec.max_surge), f"{path}.maxSurge")
    unavailable = _int_or_percent(
        r.get("maxUnavailable", RolloutSpec.max_unavailable), f"{path}.maxUnavailable"
    )
    if _is_zero(surge) and _is_zero(unavailable):
        raise SpecError(f"{path}: maxSurge and maxUnavailable cannot both be 0")
    return RolloutSpec(surge, unavailable)


def _load_service(s: dict[str, Any]) -> ServiceSpec:
    path = "spec.service"
    port = _typed(s, "port", int, ServiceSpec.port, path)
    if not 1 <= port <= 65535:
        raise SpecError(f"{path}.port must be in 1..65535")
    return ServiceSpec(
        type=_choice(_typed(s, "type", str, ServiceSpec.type, path), SERVICE_TYPES, f"{path}.type"),
        port=port,
        annotations=tuple(sorted(_typed(s, "annotations", dict, {}, path).items())),
    )
