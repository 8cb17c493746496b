"""The serving side: vLLM's arguments, the Deployment, the Service, the parser-plugin ConfigMap.

Security: the pods meet the Pod Security Standard "restricted" (non-root uid, no privilege
escalation, all capabilities dropped, RuntimeDefault seccomp). What cannot be restricted with
the stock ``vllm/vllm-openai`` image: its root filesystem stays writable (vLLM, torch and
triton write caches and compiled kernels to paths that vary between releases), and its default
user is root, so the pod sets uid 10001 and points HOME and the hub cache at an emptyDir.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from smolserve import labels
from smolserve.manifests import lora
from smolserve.manifests.autoscaling import enabled_autoscaling
from smolserve.manifests.common import (
    ADAPTERS_DIR,
    CACHE_DIR,
    HTTP_PORT,
    MODELS_DIR,
    PARSER_PLUGIN_FILE,
    PARSERS,
    PARSERS_DIR,
    SERVER,
    TEMPLATE_DIR,
    TEMPLATE_KEY,
    TEMPLATE_PATH,
    OperatorConfig,
    child_metadata,
    hub_token_env,
    restricted_container_security,
    restricted_pod_security,
    selector_labels,
    sha256_hex,
    standard_labels,
)
from smolserve.spec import SmolServeSpec

SERVER_UID = 10001  # a high uid: no clash with a host user (checkov CKV_K8S_40)
# The startup probe allows this long for the model download and load before liveness starts.
STARTUP_PERIOD_SECONDS = 10
STARTUP_FAILURE_THRESHOLD = 360  # 360 x 10 s = 1 h
PLUGIN_PATH = f"{PARSERS_DIR}/{PARSER_PLUGIN_FILE}"
# Volume names the operator reads back from a live Deployment (see ``mounted_configmaps``).
TEMPLATE_VOLUME = "template"
PARSERS_VOLUME = "parsers"
# The Deployment's revisionHistoryLimit and the number of template ConfigMaps the operator
# keeps are one number: `kubectl rollout undo` can then never go back to a pod template whose
# ConfigMap is gone.
TEMPLATE_HISTORY = 3


def uses_parser_plugin(spec: SmolServeSpec) -> bool:
    return spec.parsers.reasoning == "smollm3"


def parser_configmap_name(spec: SmolServeSpec, config: OperatorConfig) -> str:
    return f"{spec.name}-parsers-{sha256_hex(config.parser_plugin)[:8]}"


def build_parser_configmap(spec: SmolServeSpec, config: OperatorConfig) -> dict[str, Any]:
    """Immutable ConfigMap ``<name>-parsers-<sha8>`` with the SmolLM3 reasoning-parser plugin."""
    sha = sha256_hex(config.parser_plugin)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(
            spec,
            parser_configmap_name(spec, config),
            PARSERS,
            extra_labels={labels.PARSERS_HASH: sha[:8]},
        ),
        "immutable": True,
        "data": {PARSER_PLUGIN_FILE: config.parser_plugin},
    }


def adapter_path(name: str) -> str:
    return f"{ADAPTERS_DIR}/{name}"


def vllm_args(spec: SmolServeSpec) -> list[str]:
    """vLLM's command-line arguments, exactly; the pod mounts what the paths point at."""
    model = spec.model
    args = ["--model", f"{MODELS_DIR}/{model.pvc.path}".rstrip("/") if model.pvc else model.id]
    if model.pvc is None and model.revision:
        args += ["--revision", model.revision]
    args += [
        "--served-model-name", spec.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(HTTP_PORT),
        "--chat-template", TEMPLATE_PATH,
        "--chat-template-content-format", spec.parsers.content_format,
    ]  # fmt: skip
    parsers = spec.parsers
    if parsers.auto_tool_choice:
        args.append("--enable-auto-tool-choice")
    if parsers.tool_call != "none":
        args += ["--tool-call-parser", parsers.tool_call]
    if parsers.reasoning != "none":
        args += ["--reasoning-parser", parsers.reasoning]
        if uses_parser_plugin(spec):
            args += ["--reasoning-parser-plugin", PLUGIN_PATH]
    if spec.thinking_default == "noThink":
        args += ["--default-chat-template-kwargs", json.dumps({"enable_thinking": False})]
    if spec.lora.dynamic:
        args += lora.dynamic_vllm_args(spec)
    if spec.lora.static:
        args += [
            "--enable-lora",
            "--max-lora-rank", str(spec.lora.max_rank),
            "--max-loras", str(spec.lora.max_loras),
            "--lora-modules",
        ]  # fmt: skip
        args += [
            json.dumps(
                {
                    "name": a.name,
                    "path": adapter_path(a.name),
                    "base_model_name": spec.served_model_name,
                }
            )
            for a in spec.lora.adapters  # sorted by name in load_spec
        ]
    engine = spec.engine
    args += [
        "--max-model-len", str(engine.max_model_len),
        "--gpu-memory-utilization", str(engine.gpu_memory_utilization),
        "--dtype", engine.dtype,
    ]  # fmt: skip
    if spec.resources.gpus > 1:  # one server spans the pod's GPUs
        args += ["--tensor-parallel-size", str(spec.resources.gpus)]
    return args + list(engine.extra_args)  # last, so a user's flag wins


def _resources(spec: SmolServeSpec) -> dict[str, Any]:
    res = spec.resources
    limits: dict[str, Any] = {"memory": res.memory}
    if res.gpus > 0:
        # A string, as the API server returns quantities: a re-read Deployment compares equal.
        limits[res.gpu_resource_name] = str(res.gpus)
    return {"requests": {"cpu": res.cpu, "memory": res.memory}, "limits": limits}


def _probe(path: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def _adapter_volumes(spec: SmolServeSpec) -> tuple[list[dict], list[dict], list[str]]:
    """Volumes, vLLM mounts, and the ``name=hf://…`` arguments for the fetch init container
    (static mode; ``lora.dynamic_volumes`` has dynamic mode's)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    fetch: list[str] = []
    for adapter in spec.lora.adapters if spec.lora.static else ():
        if adapter.kind == "hf":
            fetch.append(f"{adapter.name}={adapter.source}")
        else:
            pvc = adapter.pvc
            volume = f"lora-{adapter.name}"
            volumes.append(
                {
                    "name": volume,
                    "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": True},
                }
            )
            mount = {"name": volume, "mountPath": adapter_path(adapter.name), "readOnly": True}
            if pvc.path:
                mount["subPath"] = pvc.path
            mounts.append(mount)
    if fetch:
        volumes.insert(0, {"name": "adapters", "emptyDir": {}})
        mounts.insert(0, {"name": "adapters", "mountPath": ADAPTERS_DIR, "readOnly": True})
    return volumes, mounts, fetch


def build_deployment(
    spec: SmolServeSpec,
    config: OperatorConfig,
    *,
    template_configmap: str,
    template_hash: str,
) -> dict[str, Any]:
    """The vLLM Deployment ``<name>``, serving the template in ConfigMap ``template_configmap``.

    ``template_hash`` (the ConfigMap's ``smolserve.dev/template-hash`` label, 8 hex) goes into a
    pod-template annotation: a new template is a new ConfigMap and a new hash, hence a rollout
    with the spec's surge/unavailable. Adapters are sorted by name, so reordering them in the
    spec leaves the pod template unchanged.
    """
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": CACHE_DIR},
        {"name": "HF_HOME", "value": f"{CACHE_DIR}/huggingface"},
        *hub_token_env(spec),
        *(lora.dynamic_vllm_env() if spec.lora.dynamic else []),
        *copy.deepcopy(list(spec.engine.env)),  # last: the user's value wins where allowed
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": TEMPLATE_VOLUME,
            "configMap": {
                "name": template_configmap,
                "items": [{"key": TEMPLATE_KEY, "path": TEMPLATE_KEY}],
            },
        },
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "cache", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": TEMPLATE_VOLUME, "mountPath": TEMPLATE_DIR, "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "cache", "mountPath": CACHE_DIR},
    ]
    annotations = {labels.TEMPLATE_HASH: template_hash}
    if uses_parser_plugin(spec):
        volumes.append(
            {"name": PARSERS_VOLUME, "configMap": {"name": parser_configmap_name(spec, config)}}
        )
        mounts.append({"name": PARSERS_VOLUME, "mountPath": PARSERS_DIR, "readOnly": True})
        annotations[labels.PARSERS_HASH] = sha256_hex(config.parser_plugin)[:8]
    if spec.model.pvc is not None:
        volumes.append(
            {
                "name": "model",
                "persistentVolumeClaim": {"claimName": spec.model.pvc.claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": "model", "mountPath": MODELS_DIR, "readOnly": True})
    adapter_volumes, adapter_mounts, fetch = _adapter_volumes(spec)
    volumes += adapter_volumes
    mounts += adapter_mounts
    if spec.lora.dynamic:
        volumes += lora.dynamic_volumes(spec, config)
        mounts += lora.vllm_mounts(spec)

    container = {
        "name": "vllm",
        "image": spec.engine.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": vllm_args(spec),
        "env": env,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": _resources(spec),
        "volumeMounts": mounts,
        "startupProbe": _probe("/health", STARTUP_PERIOD_SECONDS, STARTUP_FAILURE_THRESHOLD),
        "readinessProbe": _probe("/health", 5, 3),
        "livenessProbe": _probe("/health", 10, 6, timeout=10),
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "securityContext": restricted_pod_security(SERVER_UID),
        "automountServiceAccountToken": False,
        # Service links would inject e.g. VLLM_PORT=tcp://… for a Service named vllm, which
        # vLLM reads as its own setting and refuses.
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": volumes,
    }
    if fetch:
        pod_spec["initContainers"] = [
            {
                "name": "fetch-adapters",
                "image": config.job_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["smolserve"],
                "args": ["job", "fetch-adapters", "--dest", ADAPTERS_DIR, *fetch],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"memory": "1Gi"},
                },
                "env": [
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "HF_HOME", "value": "/tmp/huggingface"},
                    *hub_token_env(spec),
                ],
                "volumeMounts": [
                    {"name": "adapters", "mountPath": ADAPTERS_DIR},
                    {"name": "cache", "mountPath": "/tmp"},
                ],
                "securityContext": {
                    **restricted_container_security(),
                    "readOnlyRootFilesystem": True,
                },
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ]
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    # Copies: the manifests never share a mutable value with the spec (or with each other).
    if spec.tolerations:
        pod_spec["tolerations"] = copy.deepcopy(list(spec.tolerations))
    if spec.affinity:
        pod_spec["affinity"] = copy.deepcopy(spec.affinity)
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name

    # Under an autoscaler the replicas are its own: the Deployment's spec leaves them out.
    replicas = {} if enabled_autoscaling(spec) else {"replicas": spec.replicas}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(spec, spec.name, SERVER),
        "spec": {
            **replicas,
            "revisionHistoryLimit": TEMPLATE_HISTORY,
            "selector": {"matchLabels": selector_labels(spec.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": spec.rollout.max_surge,
                    "maxUnavailable": spec.rollout.max_unavailable,
                },
            },
            "template": {
                "metadata": {
                    "labels": standard_labels(spec.name, SERVER),
                    "annotations": annotations,
                },
                "spec": pod_spec,
            },
        },
    }


def build_service(spec: SmolServeSpec) -> dict[str, Any]:
    """The Service ``<name>``: the OpenAI-compatible API on a port named ``http``."""
    meta = child_metadata(
        spec,
        spec.name,
        SERVER,
        annotations=dict(spec.service.annotations) or None,
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": spec.service.type,
            "selector": selector_labels(spec.name),
            "ports": [
                {
                    "name": "http",
                    "port": spec.service.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


# --- reading back what the builders wrote (the operator's view of a live Deployment) ----------


def _pod_spec(deployment: dict[str, Any] | None) -> dict[str, Any]:
    return ((deployment or {}).get("spec") or {}).get("template", {}).get("spec") or {}


def mounted_template(deployment: dict[str, Any] | None) -> str | None:
    """The template ConfigMap a Deployment built by ``build_deployment`` mounts."""
    for volume in _pod_spec(deployment).get("volumes") or []:
        if volume.get("name") == TEMPLATE_VOLUME:
            return (volume.get("configMap") or {}).get("name")
    return None


def mounted_configmaps(deployment: dict[str, Any] | None) -> set[str]:
    """Every ConfigMap a Deployment mounts (the operator never deletes one of these)."""
    volumes = _pod_spec(deployment).get("volumes") or []
    return {v["configMap"]["name"] for v in volumes if (v.get("configMap") or {}).get("name")}


def served_template_hash(deployment: dict[str, Any] | None) -> str | None:
    """The template hash (8 hex) on a Deployment's pod template."""
    meta = ((deployment or {}).get("spec") or {}).get("template", {}).get("metadata") or {}
    return (meta.get("annotations") or {}).get(labels.TEMPLATE_HASH)
