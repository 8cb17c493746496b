"""A SmolServe's spec as typed, defaulted, checked data.

The CRD (``smolserve/crd/smolserve.yaml``, package data; ``crds/`` and the chart carry copies)
is the only statement of field names, types, enums, bounds and defaults. The API server applies
them, but the Kubernetes emulator used in tests and ``smolserve render`` see objects that were
never defaulted or validated, so ``load_spec`` does what the server does with the same schema:
it applies the schema's defaults, validates the result (openapi-schema-validator), and checks
the CRD's CEL cross-field rules, which only a real API server evaluates, in code.
``SmolServeSpec.to_dict`` gives the spec back in the CRD's camelCase shape, every default filled in.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from smolserve.errors import UsageError

CRD_RESOURCE = ("crd", "smolserve.yaml")

# The longest SmolServe name whose children's names stay valid: the template Job
# `<name>-template-<hash8>` must fit a 63-character label value (job-name label).
MAX_NAME_LENGTH = 45
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Flags the builders own; overriding them in extraArgs would break the wiring to the mounts,
# the probes and the Service.
RESERVED_ARGS = ("--model", "--chat-template", "--host", "--port", "--served-model-name")
# Environment variables the builders set on the vLLM container.
RESERVED_ENV = ("HF_TOKEN", "HOME", "HF_HOME")
# The CRD cannot default a field for one source only: these apply with source generate.
GENERATE_DEFAULTS = {"variant": "fixed", "closeSystemTurn": True}
# An error message quoting a value longer than this is replaced by the rule it breaks.
_MAX_MESSAGE = 200

_HF_SOURCE_RE = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<revision>[A-Za-z0-9._/-]+)$"
)
_PVC_SOURCE_RE = re.compile(
    r"^pvc://(?P<claim>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?P<path>(/[^/]+)*)/?$"
)


class SpecError(UsageError):
    """A SmolServe the operator cannot act on; the message says which field and why."""


@functools.cache
def crd() -> dict[str, Any]:
    """The SmolServe CustomResourceDefinition, read from the package."""
    text = resources.files("smolserve").joinpath(*CRD_RESOURCE).read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def crd_schema() -> dict[str, Any]:
    """The CRD's ``openAPIV3Schema``."""
    (version,) = crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def _spec_schema() -> dict[str, Any]:
    return crd_schema()["properties"]["spec"]


_ADAPTER_NAME = _spec_schema()["properties"]["lora"]["properties"]["adapters"]["items"][
    "properties"
]["name"]
ADAPTER_NAME_RE = re.compile(_ADAPTER_NAME["pattern"])
MAX_ADAPTER_NAME_LENGTH: int = _ADAPTER_NAME["maxLength"]


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
    adapters: tuple[LoraAdapter, ...]  # sorted by name
    max_rank: int
    max_loras: int

    @property
    def enabled(self) -> bool:
        return bool(self.adapters)


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


@dataclass(frozen=True)
class ServiceSpec:
    type: str
    port: int
    annotations: tuple[tuple[str, str], ...]


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


# --- what the API server does with the schema ---------------------------------------------------


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's ``default``s applied as the API server applies them.

    An absent field gets its default; then the fields of every object that exists (given or
    defaulted) get theirs, so a parent's ``default: {}`` is filled in. Like the server, null
    fields are dropped first (no field of this CRD is nullable).
    """
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for name, child in (node.get("properties") or {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default(child, value[name])
        if isinstance(node.get("additionalProperties"), dict):
            for item in value.values():
                _default(node["additionalProperties"], item)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _default(node["items"], item)


def openapi_schema(node: dict[str, Any], *, closed: bool) -> dict[str, Any]:
    """The CRD schema as plain OpenAPI 3.0, for openapi-schema-validator.

    Kubernetes extensions are dropped (an object that preserves unknown fields gets
    ``additionalProperties: true``). With ``closed``, every other object with ``properties``
    refuses fields it does not name: the API server would prune them, ``load_spec`` refuses
    them so that a misspelt field is not silently ignored.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            value = {name: openapi_schema(child, closed=closed) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = openapi_schema(value, closed=closed)
        elif key == "anyOf":
            value = [openapi_schema(child, closed=closed) for child in value]
        out[key] = value
    if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") == "object":
        out.setdefault("additionalProperties", True)
    elif closed and "properties" in node:
        out.setdefault("additionalProperties", False)
    return out


@functools.cache
def _validator() -> Any:
    from openapi_schema_validator import OAS30Validator

    return OAS30Validator(openapi_schema(_spec_schema(), closed=True))


def _schema_error(spec: dict[str, Any]) -> str | None:
    """One line naming the field for the most relevant schema violation, or ``None``."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(spec))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties") or {}
        unknown = sorted(set(error.instance) - set(known))
        return f"spec{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})"
    message = error.message
    if len(message) > _MAX_MESSAGE or "\n" in message:
        message = f"breaks {error.validator}: {error.validator_value!r}"
    return f"spec{where}: {message}"


# --- the CRD's CEL rules (x-kubernetes-validations), each with the CRD's message -------------


def _model_rules(m: dict[str, Any]) -> list[str]:
    if "pvc" in m and "revision" in m:
        return ["spec.model: revision applies to hub downloads; with pvc, leave it unset"]
    return []


def _template_rules(t: dict[str, Any]) -> list[str]:
    path, source, failed = "spec.template", t["source"], []
    if (source == "configMap") != ("configMapRef" in t):
        failed.append(f"{path}: configMapRef is required with, and only with, source configMap")
    inline_ok = bool(t.get("inline")) if source == "inline" else "inline" not in t
    if not inline_ok:
        failed.append(f"{path}: a non-empty inline is required with, and only with, source inline")
    if source != "generate" and ("variant" in t or "closeSystemTurn" in t):
        failed.append(f"{path}: variant and closeSystemTurn apply only to source generate")
    return failed


def _parsers_rules(p: dict[str, Any]) -> list[str]:
    if p["autoToolChoice"] and p["toolCall"] == "none":
        return ["spec.parsers: autoToolChoice needs a toolCall parser"]
    return []


def _lora_rules(lo: dict[str, Any]) -> list[str]:
    path, failed = "spec.lora.adapters", []
    names = [a["name"] for a in lo["adapters"]]
    if len(set(names)) != len(names):
        failed.append(f"{path}: adapter names must be unique")
    for i, adapter in enumerate(lo["adapters"]):
        source = adapter["source"]
        if not (_HF_SOURCE_RE.match(source) or _PVC_SOURCE_RE.match(source)):
            failed.append(
                f"{path}[{i}].source: source must be hf://org/repo@revision or pvc://claim/path"
            )
        if ".." in source:
            failed.append(f"{path}[{i}].source: source must not contain '..'")
    return failed


def _engine_rules(e: dict[str, Any]) -> list[str]:
    failed = []
    if any(a == f or a.startswith(f + "=") for a in e["extraArgs"] for f in RESERVED_ARGS):
        failed.append(
            "spec.engine.extraArgs: --model, --chat-template, --host, --port and "
            "--served-model-name are set by smolserve from the spec"
        )
    if any(var["name"] in RESERVED_ENV for var in e["env"]):
        failed.append("spec.engine.env: HF_TOKEN, HOME and HF_HOME are set by smolserve")
    return failed


_INT_OR_PERCENT = re.compile(r"^[0-9]+%$")
_ZERO = re.compile(r"^0+%?$")


def _rollout_rules(r: dict[str, Any]) -> list[str]:
    failed = [
        f"spec.rollout.{key}: must be a non-negative integer or a percentage like 25%"
        for key in ("maxSurge", "maxUnavailable")
        if (r[key] < 0 if isinstance(r[key], int) else not _INT_OR_PERCENT.match(r[key]))
    ]
    if _ZERO.match(str(r["maxSurge"])) and _ZERO.match(str(r["maxUnavailable"])):
        failed.append("spec.rollout: maxSurge and maxUnavailable cannot both be 0")
    return failed


def cel_failures(spec: dict[str, Any]) -> list[str]:
    """The CRD's cross-field rules that a defaulted, schema-valid spec breaks (one line each)."""
    return [
        *_model_rules(spec["model"]),
        *_template_rules(spec["template"]),
        *_parsers_rules(spec["parsers"]),
        *_lora_rules(spec["lora"]),
        *_engine_rules(spec["engine"]),
        *_rollout_rules(spec["rollout"]),
    ]


# --- load_spec -----------------------------------------------------------------------------------


def _check_name(meta: Any) -> str:
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
    return name


def load_spec(obj: dict[str, Any]) -> SmolServeSpec:
    """Read a SmolServe object (dict, as the API returns it) into a defaulted ``SmolServeSpec``.

    Raises ``SpecError`` with one line naming the field for anything the operator cannot act
    on: what the CRD's schema refuses, unknown fields, and the CRD's CEL cross-field rules.
    """
    if not isinstance(obj, dict):
        raise SpecError("a SmolServe must be a mapping")
    meta = {} if obj.get("metadata") is None else obj["metadata"]
    name = _check_name(meta)
    raw = {} if obj.get("spec") is None else obj["spec"]
    if not isinstance(raw, dict):
        raise SpecError("spec must be an object")
    spec = apply_defaults(_spec_schema(), raw)
    problem = _schema_error(spec)
    if problem is None:
        problem = next(iter(cel_failures(spec)), None)
    if problem is not None:
        raise SpecError(problem)
    return _build(spec, name, meta)


def _name(adapter: LoraAdapter) -> str:
    return adapter.name


def _build(s: dict[str, Any], name: str, meta: dict[str, Any]) -> SmolServeSpec:
    """The dataclasses of a defaulted, valid spec."""
    m, t, p, lo, e = s["model"], s["template"], s["parsers"], s["lora"], s["engine"]
    r, ro, sv = s["resources"], s["rollout"], s["service"]
    pvc, token, cm = m.get("pvc"), m.get("tokenSecretRef"), t.get("configMapRef")
    adapters = sorted((LoraAdapter(a["name"], a["source"]) for a in lo["adapters"]), key=_name)
    generate = GENERATE_DEFAULTS if t["source"] == "generate" else {}
    return SmolServeSpec(
        name=name,
        namespace=meta.get("namespace"),
        uid=meta.get("uid"),
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
        rollout=RolloutSpec(ro["maxSurge"], ro["maxUnavailable"]),
        service=ServiceSpec(sv["type"], sv["port"], tuple(sorted(sv["annotations"].items()))),
    )
