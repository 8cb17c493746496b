"""The CRD's CEL rules (``x-kubernetes-validations``), re-checked in code with the CRD's messages.

Only a real API server evaluates CEL; the emulator and ``smolserve render`` do not, so
``load_spec`` checks the same cross-field rules here on the defaulted, schema-valid spec.
``tests/crd`` evaluates the CRD's own rules with cel-python on the same inputs and checks that
both agree.
"""

from __future__ import annotations

import re
from typing import Any

from smolserve.spec.types import HF_SOURCE_RE, PVC_SOURCE_RE, SpecError

# The longest SmolServe name whose children's names stay valid: the template Job
# `<name>-template-<hash8>` must fit a 63-character label value (job-name label).
MAX_NAME_LENGTH = 45
# The patterns of this module and of the CRD are RE2's, whose `$` matches only at the very end;
# Python's also matches before a final newline, so they are applied with ``fullmatch``.
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAMESPACE_LENGTH = 63
# Flags the builders own; overriding them in extraArgs would break the wiring to the mounts,
# the probes and the Service.
RESERVED_ARGS = ("--model", "--chat-template", "--host", "--port", "--served-model-name")
# Environment variables the builders set on the vLLM container. PYTHONPATH finds the adapter
# guard; VLLM_ALLOW_RUNTIME_LORA_UPDATING set by hand would open vLLM's adapter routes unguarded.
RESERVED_ENV = ("HF_TOKEN", "HOME", "HF_HOME", "PYTHONPATH", "VLLM_ALLOW_RUNTIME_LORA_UPDATING")

_INT_OR_PERCENT = re.compile(r"^[0-9]+%$")
_ZERO = re.compile(r"^0+%?$")


def check_name(meta: Any) -> str:
    """``metadata.name``, if it is one the children's names can be built from."""
    if not isinstance(meta, dict):
        raise SpecError("metadata must be an object")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.name is required")
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise SpecError(
            f"metadata.name {name!r} must be a DNS label starting with a letter and at most "
            f"{MAX_NAME_LENGTH} characters (children's names add suffixes)"
        )
    return name


def check_identity(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """``metadata.namespace`` (a DNS label) and ``metadata.uid``, which the children carry."""
    namespace, uid = meta.get("namespace"), meta.get("uid")
    if namespace is not None and not (
        isinstance(namespace, str)
        and len(namespace) <= MAX_NAMESPACE_LENGTH
        and _NAMESPACE_RE.fullmatch(namespace)
    ):
        raise SpecError(
            f"metadata.namespace {namespace!r} must be a DNS label of at most "
            f"{MAX_NAMESPACE_LENGTH} characters"
        )
    if uid is not None and not (isinstance(uid, str) and uid):
        raise SpecError(f"metadata.uid {uid!r} must be a non-empty string")
    return namespace, uid


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
        if not (HF_SOURCE_RE.fullmatch(source) or PVC_SOURCE_RE.fullmatch(source)):
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
        failed.append(
            "spec.engine.env: HF_TOKEN, HOME, HF_HOME, PYTHONPATH and "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING are set by smolserve"
        )
    return failed


def _rollout_rules(r: dict[str, Any]) -> list[str]:
    failed = [
        f"spec.rollout.{key}: must be a non-negative integer or a percentage like 25%"
        for key in ("maxSurge", "maxUnavailable")
        if (r[key] < 0 if isinstance(r[key], int) else not _INT_OR_PERCENT.fullmatch(r[key]))
    ]
    if _ZERO.fullmatch(str(r["maxSurge"])) and _ZERO.fullmatch(str(r["maxUnavailable"])):
        failed.append("spec.rollout: maxSurge and maxUnavailable cannot both be 0")
    return failed


def _autoscaling_rules(a: dict[str, Any] | None) -> list[str]:
    if a is None:
        return []
    path, failed = "spec.autoscaling", []
    if a["minReplicas"] > a["maxReplicas"]:
        failed.append(f"{path}: minReplicas must not be more than maxReplicas")
    if a["minReplicas"] == 0 and a["engine"] != "keda":
        failed.append(
            f"{path}: minReplicas 0 (scale to zero) needs engine keda: a "
            "HorizontalPodAutoscaler keeps at least one pod"
        )
    if a["metric"] == "kvCacheUsage" and a["target"] > 1:
        failed.append(
            f"{path}: with metric kvCacheUsage, target is the fraction of the KV cache in use "
            "per pod (at most 1, e.g. 0.8)"
        )
    if a["engine"] == "keda" and "serverAddress" not in (a.get("prometheus") or {}):
        failed.append(
            f"{path}: engine keda needs prometheus.serverAddress (the Prometheus that scrapes "
            "vLLM's /metrics)"
        )
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
        *_autoscaling_rules(spec.get("autoscaling")),
    ]
