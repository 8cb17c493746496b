"""The template Job, its least-privilege RBAC, and the ConfigMap the Job publishes.

The operator never writes the chat template itself: a Job, named after the hash of its inputs,
loads the tokenizer, generates (or reads) the template, verifies it and creates the immutable,
content-addressed ConfigMap ``<name>-chat-template-<sha8>``. Same inputs → same Job name → no
new Job; a new template → a new ConfigMap name → the Deployment's pods roll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smolserve import labels
from smolserve.manifests.common import (
    INLINE_TEMPLATE_ENV,
    MODELS_DIR,
    SOURCE_TEMPLATE_DIR,
    TEMPLATE,
    TEMPLATE_KEY,
    TEMPLATE_SHA256_ANNOTATION,
    OperatorConfig,
    child_metadata,
    hub_token_env,
    metadata,
    namespaced_rbac,
    restricted_container_security,
    restricted_pod_security,
    sha256_hex,
    stable_hash,
    standard_labels,
)
from smolserve.spec import SmolServeSpec

JOB_UID = 65532  # the template-job image's non-root user
# How many inputs hashes a template ConfigMap remembers (annotation size stays tiny).
INPUTS_HISTORY_LIMIT = 16
# Variants chosen for their known defects (to compare against): published even when they fail
# verification, with the report in the Job's log. (seed passes when judged by its own
# generation prompts, which publish-template does.)
UNVERIFIED_VARIANTS = ("stock",)


def template_inputs_hash(
    spec: SmolServeSpec, config: OperatorConfig, *, source_sha256: str | None = None
) -> str:
    """sha256 (hex) of everything the template Job consumes.

    ``source_sha256`` is the sha256 of the user's template text for ``source: configMap``: the
    operator reads that ConfigMap and passes it so an edit to it yields a new Job. The Job image
    is an input because the generator's code is.
    """
    model = spec.model
    template = spec.template
    inputs = {
        "tokenizer": {
            "id": model.id if model.pvc is None else None,
            "revision": model.revision,
            "pvc": None if model.pvc is None else [model.pvc.claim_name, model.pvc.path],
        },
        "template": {
            "source": template.source,
            "variant": template.variant,
            "closeSystemTurn": template.close_system_turn,
            "configMapRef": None
            if template.config_map_ref is None
            else [template.config_map_ref.name, template.config_map_ref.key],
            "inlineSha256": None if template.inline is None else sha256_hex(template.inline),
            "sourceSha256": source_sha256,
        },
        "image": config.job_image,
    }
    return stable_hash(inputs)


def template_job_name(spec: SmolServeSpec, inputs_hash: str) -> str:
    return f"{spec.name}-template-{inputs_hash[:8]}"


def template_rbac_name(serve: str) -> str:
    return f"{serve}-template"


def template_configmap_name(serve: str, template_sha256: str) -> str:
    return f"{serve}-chat-template-{template_sha256[:8]}"


def published_inputs(
    labels_: Mapping[str, str] | None, annotations: Mapping[str, str] | None
) -> list[str]:
    """The inputs hashes (8 hex, oldest first) a template ConfigMap was published for."""
    history = (annotations or {}).get(labels.INPUTS_HISTORY, "").split()
    current = (labels_ or {}).get(labels.INPUTS_HASH)
    return [*history, current] if current and current not in history else history


def with_published_inputs(history: list[str], inputs_hash: str) -> list[str]:
    """``history`` with ``inputs_hash`` (8 hex) last, bounded to ``INPUTS_HISTORY_LIMIT``."""
    return [*(h for h in history if h != inputs_hash), inputs_hash][-INPUTS_HISTORY_LIMIT:]


def build_template_configmap(
    *, serve: str, namespace: str | None, owner_uid: str | None, text: str, inputs_hash: str
) -> dict[str, Any]:
    """The immutable ConfigMap holding a verified template (created by the Job's pod)."""
    sha = sha256_hex(text)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            serve,
            namespace,
            owner_uid,
            template_configmap_name(serve, sha),
            TEMPLATE,
            extra_labels={labels.INPUTS_HASH: inputs_hash[:8], labels.TEMPLATE_HASH: sha[:8]},
            annotations={
                TEMPLATE_SHA256_ANNOTATION: sha,
                labels.INPUTS_HASH: inputs_hash,
                labels.INPUTS_HISTORY: inputs_hash[:8],
            },
        ),
        "immutable": True,
        "data": {TEMPLATE_KEY: text},
    }


def publish_template_args(spec: SmolServeSpec, inputs_hash: str) -> list[str]:
    """The ``smolserve`` arguments of the template Job's container.

    Everything the command needs is here or in the container's env, so a test can run it
    in-process with ``smolserve.cli.main(args)`` after swapping ``/models/`` and
    ``/etc/smolserve/source/`` for local directories.
    """
    model = spec.model
    args = ["job", "publish-template", "--serve", spec.name, "--inputs-hash", inputs_hash]
    if spec.namespace:
        args += ["--namespace", spec.namespace]
    if spec.uid:
        args += ["--owner-uid", spec.uid]
    if model.pvc is not None:
        args += ["--tokenizer", _join(MODELS_DIR, model.pvc.path)]
    else:
        args += ["--tokenizer", model.id]
        if model.revision:
            args += ["--revision", model.revision]
    template = spec.template
    if template.source == "generate":
        args += ["--variant", template.variant or "fixed"]
        args += ["--close-system-turn" if template.close_system_turn else "--no-close-system-turn"]
        if template.variant in UNVERIFIED_VARIANTS:
            args.append("--allow-unverified")
    elif template.source == "configMap":
        assert template.config_map_ref is not None
        args += ["--template-file", f"{SOURCE_TEMPLATE_DIR}/{template.config_map_ref.key}"]
    else:
        args += ["--template-env", INLINE_TEMPLATE_ENV]
    return args


def _join(root: str, path: str) -> str:
    return f"{root}/{path}" if path else root


def build_template_job(
    spec: SmolServeSpec,
    config: OperatorConfig,
    *,
    inputs_hash: str | None = None,
) -> dict[str, Any]:
    """The Job ``<name>-template-<inputs8>`` that publishes the verified template ConfigMap.

    ``inputs_hash`` defaults to ``template_inputs_hash(spec, config)``; the operator passes its
    own when it hashed a configMap source's text in.
    """
    inputs_hash = inputs_hash or template_inputs_hash(spec, config)
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/tmp/huggingface"},
        {
            "name": "SMOLSERVE_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        *hub_token_env(spec),
    ]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.model.pvc is not None:
        volumes.append(
            {
                "name": "model",
                "persistentVolumeClaim": {"claimName": spec.model.pvc.claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": "model", "mountPath": MODELS_DIR, "readOnly": True})
    template = spec.template
    if template.source == "configMap":
        assert template.config_map_ref is not None
        volumes.append(
            {
                "name": "source",
                "configMap": {
                    "name": template.config_map_ref.name,
                    "items": [
                        {"key": template.config_map_ref.key, "path": template.config_map_ref.key}
                    ],
                },
            }
        )
        mounts.append({"name": "source", "mountPath": SOURCE_TEMPLATE_DIR, "readOnly": True})
    elif template.source == "inline":
        env.append({"name": INLINE_TEMPLATE_ENV, "value": template.inline})
    container = {
        "name": "publish-template",
        "image": config.job_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["smolserve"],
        "args": publish_template_args(spec, inputs_hash),
        "env": env,
        "volumeMounts": mounts,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": {**restricted_container_security(), "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_labels = {**standard_labels(spec.name, TEMPLATE), labels.INPUTS_HASH: inputs_hash[:8]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(
            spec,
            template_job_name(spec, inputs_hash),
            TEMPLATE,
            extra_labels={labels.INPUTS_HASH: inputs_hash[:8]},
            annotations={labels.INPUTS_HASH: inputs_hash},
        ),
        "spec": {
            "backoffLimit": config.job_backoff_limit,
            "ttlSecondsAfterFinished": config.job_ttl_seconds,
            "activeDeadlineSeconds": config.job_active_deadline_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": template_rbac_name(spec.name),
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(JOB_UID),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def build_template_rbac(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """ServiceAccount, Role (configmaps get/create/patch, this namespace only) and RoleBinding."""
    # patch: to move an existing ConfigMap's inputs-hash label to new inputs (same text).
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]}]
    return namespaced_rbac(spec, template_rbac_name(spec.name), TEMPLATE, rules)
