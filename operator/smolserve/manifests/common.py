"""What every builder shares: operator configuration, names, labels, owner references, hashes."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from smolserve import __version__, labels
from smolserve.spec import SmolServeSpec

PARSER_PLUGIN_FILE = "smollm3_reasoning_parser.py"

# Mount points (docs/architecture.md): tests replace these prefixes with local directories.
TEMPLATE_DIR = "/etc/smolserve/template"
TEMPLATE_KEY = "chat_template.jinja"
TEMPLATE_PATH = f"{TEMPLATE_DIR}/{TEMPLATE_KEY}"
PARSERS_DIR = "/etc/smolserve/parsers"
SOURCE_TEMPLATE_DIR = "/etc/smolserve/source"  # the user's configMap template, in the Job
MODELS_DIR = "/models"
ADAPTERS_DIR = "/adapters"
CACHE_DIR = "/cache"  # writable emptyDir: HOME and the hub cache (the root filesystem is not ours)

HTTP_PORT = 8000
TEMPLATE_SHA256_ANNOTATION = f"{labels.GROUP}/template-sha256"
INLINE_TEMPLATE_ENV = "SMOLSERVE_TEMPLATE_INLINE"

# Components (app.kubernetes.io/component).
SERVER = "server"
TEMPLATE = "template"
PARSERS = "parsers"


ADAPTER_GUARD_FILE = "adapter_guard.py"


def _read_plugin(filename: str) -> str:
    return resources.files("smolserve.plugins").joinpath(filename).read_text(encoding="utf-8")


def _read_parser_plugin() -> str:
    return _read_plugin(PARSER_PLUGIN_FILE)


def _read_adapter_guard() -> str:
    return _read_plugin(ADAPTER_GUARD_FILE)


@dataclass(frozen=True)
class OperatorConfig:
    """Settings that are the operator's, not any one SmolServe's.

    ``parser_plugin`` and ``adapter_guard`` are the vLLM plugins' source texts, read once here
    so the builders stay pure.
    """

    job_image: str = f"ghcr.io/smolserve/template-job:{__version__}"
    job_backoff_limit: int = 1
    job_ttl_seconds: int = 3600
    job_active_deadline_seconds: int = 1800
    parser_plugin: str = field(default_factory=_read_parser_plugin, repr=False)
    adapter_guard: str = field(default_factory=_read_adapter_guard, repr=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        env = os.environ if environ is None else environ
        image = env.get("SMOLSERVE_TEMPLATE_JOB_IMAGE")
        return cls(job_image=image) if image else cls()


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def stable_hash(value: Any) -> str:
    """sha256 of a JSON value with sorted keys: equal inputs, equal hash, on any machine."""
    return sha256_hex(json.dumps(value, sort_keys=True, separators=(",", ":")))


def selector_labels(serve: str, component: str = SERVER) -> dict[str, str]:
    """The labels a Deployment selects its pods by (immutable once created: keep it small)."""
    return {
        labels.NAME: labels.APP_NAME,
        labels.INSTANCE: serve,
        labels.COMPONENT: component,
    }


def selector_string(serve: str) -> str:
    """The server pods' selector as a string, for the scale subresource (``status.selector``)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(serve).items()))


def standard_labels(serve: str, component: str) -> dict[str, str]:
    """The labels on every child of the SmolServe ``serve``."""
    return {
        **selector_labels(serve, component),
        labels.MANAGED_BY: labels.MANAGER,
        labels.PART_OF: labels.APP_NAME,
        labels.SERVE: serve,
    }


def owner_references(serve: str, uid: str | None) -> list[dict[str, Any]]:
    """The SmolServe as controller owner; empty when its uid is unknown (``smolserve render``)."""
    if not uid:
        return []
    return [
        {
            "apiVersion": labels.API_VERSION,
            "kind": labels.KIND,
            "name": serve,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def metadata(
    serve: str,
    namespace: str | None,
    uid: str | None,
    name: str,
    component: str,
    *,
    extra_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A child's metadata: name, namespace, standard labels and the owner reference."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**standard_labels(serve, component), **(extra_labels or {})}
    if annotations:
        meta["annotations"] = annotations
    refs = owner_references(serve, uid)
    if refs:
        meta["ownerReferences"] = refs
    return meta


def child_metadata(spec: SmolServeSpec, name: str, component: str, **kwargs: Any) -> dict[str, Any]:
    return metadata(spec.name, spec.namespace, spec.uid, name, component, **kwargs)


def restricted_container_security() -> dict[str, Any]:
    """Pod Security Standard 'restricted', container level."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def hub_token_env(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """HF_TOKEN from the Secret (huggingface_hub reads it); never an argument, never logged."""
    ref = spec.model.token_secret_ref
    if ref is None:
        return []
    return [
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    ]


def namespaced_rbac(
    spec: SmolServeSpec,
    name: str,
    component: str,
    rules: list[dict[str, Any]],
    *,
    automount_token: bool = True,
) -> list[dict[str, Any]]:
    """A ServiceAccount, a Role with ``rules`` and the RoleBinding between them, all named
    ``name`` in the SmolServe's namespace."""
    sa: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": child_metadata(spec, name, component),
    }
    if not automount_token:
        sa["automountServiceAccountToken"] = False
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": child_metadata(spec, name, component),
        "rules": rules,
    }
    subject: dict[str, Any] = {"kind": "ServiceAccount", "name": name}
    if spec.namespace:
        subject["namespace"] = spec.namespace
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": child_metadata(spec, name, component),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject],
    }
    return [sa, role, binding]
