"""The serving agent's parts: its sidecar in the vLLM pods, its least-privilege RBAC, its two
ConfigMaps, and the pod-template hash that rollouts are judged by.

The agent (``smolserve agent run``, from the template-job image) reaches its pod's vLLM on
loopback and answers the pod's readiness on its own port (named ``agent``, not in the
Service). Its API access is a ServiceAccount ``<name>-agent`` whose Role names exactly two
ConfigMaps (``resourceNames``): ``<name>-agent-config`` (get/list/watch: what the operator
wants) and ``<name>-agent-status`` (get/patch: what the pods report). The token is a projected
volume mounted into the agent container only; the pod keeps ``automountServiceAccountToken:
false``, so the vLLM container never holds a token.
"""

from __future__ import annotations

import copy
from typing import Any

from smolserve import labels
from smolserve.agent import DEFAULT_PORT
from smolserve.agent.report import (
    AgentConfig,
    DesiredAdapter,
    SmokeConfig,
    agent_config_name,
    agent_status_name,
    config_data,
)
from smolserve.manifests import lora
from smolserve.manifests.common import (
    HTTP_PORT,
    OperatorConfig,
    child_metadata,
    namespaced_rbac,
    restricted_container_security,
    stable_hash,
)
from smolserve.spec import SmolServeSpec

AGENT = "agent"  # component label, container name, port name
AGENT_PORT = DEFAULT_PORT
TOKEN_VOLUME = "agent-token"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # where the client looks for it
TOKEN_SECONDS = 3600  # the kubelet rotates it before it expires
POD_TEMPLATE_HASH_LENGTH = 10


def uses_agent(spec: SmolServeSpec) -> bool:
    """Whether the vLLM pods get the agent sidecar (``rollout.smoke``, or dynamic LoRA)."""
    return spec.rollout.smoke or spec.lora.dynamic


def agent_rbac_name(serve: str) -> str:
    return f"{serve}-agent"


def agent_config(spec: SmolServeSpec) -> AgentConfig:
    """What the operator asks of every agent (the ``<name>-agent-config`` document)."""
    smoke = SmokeConfig(spec.rollout.smoke_timeout_seconds) if spec.rollout.smoke else None
    # The battery checks the adapters that are part of the pod template (static mode); dynamic
    # ones are each checked by their loading, and one failing never fails a pod's battery.
    checked = spec.lora.adapters if spec.lora.static else ()
    adapters = tuple(DesiredAdapter(a.name, a.source) for a in checked)
    return AgentConfig(smoke=smoke, adapters=adapters, lora=lora.lora_config(spec))


def build_agent_rbac(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """ServiceAccount, Role (two ConfigMaps by name, nothing else) and RoleBinding."""
    rules = [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [agent_config_name(spec.name)],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [agent_status_name(spec.name)],
            "verbs": ["get", "patch"],
        },
    ]
    # No automounted token: only the projected volume carries it, into the agent alone.
    return namespaced_rbac(spec, agent_rbac_name(spec.name), AGENT, rules, automount_token=False)


def build_agent_configmaps(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """``<name>-agent-config`` (the operator's wishes) and ``<name>-agent-status`` (the pods'
    reports: the operator creates it without ``data``, so applying it never touches them)."""
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(spec, agent_config_name(spec.name), AGENT),
        "data": config_data(agent_config(spec)),
    }
    status = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(spec, agent_status_name(spec.name), AGENT),
    }
    return [config, status]


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def agent_container(spec: SmolServeSpec, config: OperatorConfig) -> dict[str, Any]:
    """The sidecar: ``smolserve agent run``; its readinessProbe is the pod's smoke gate."""
    args = ["agent", "run", "--serve", spec.name, "--vllm-url", f"http://127.0.0.1:{HTTP_PORT}"]
    args += ["--port", str(AGENT_PORT), "--smoke" if spec.rollout.smoke else "--no-smoke"]
    env = [
        _field_env("SMOLSERVE_NAMESPACE", "metadata.namespace"),
        _field_env("SMOLSERVE_POD_NAME", "metadata.name"),
        _field_env("SMOLSERVE_POD_UID", "metadata.uid"),
        _field_env(
            "SMOLSERVE_POD_TEMPLATE_HASH", f"metadata.annotations['{labels.POD_TEMPLATE_HASH}']"
        ),
        _field_env("SMOLSERVE_REPLICASET_HASH", "metadata.labels['pod-template-hash']"),
    ]
    mounts = [{"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}]
    if spec.lora.dynamic:
        args += lora.agent_args()
        env += lora.agent_env(spec)
        mounts += lora.agent_mounts(spec)
    return {
        "name": AGENT,
        "image": config.job_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["smolserve"],
        "args": args,
        "env": env,
        "ports": [{"name": AGENT, "containerPort": AGENT_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": AGENT},
            "periodSeconds": 2,
            "failureThreshold": 1,
            "timeoutSeconds": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": AGENT},
            "periodSeconds": 20,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "96Mi"},
            "limits": {"memory": "256Mi"},
        },
        "volumeMounts": mounts,
        "securityContext": {**restricted_container_security(), "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def token_volume() -> dict[str, Any]:
    """The agent's API credentials: a rotating token, the cluster's CA and the namespace."""
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }


def pod_template_hash(template: dict[str, Any]) -> str:
    """The operator's hash of a pod template (without its own hash annotation)."""
    stripped = copy.deepcopy(template)
    annotations = (stripped.get("metadata") or {}).get("annotations") or {}
    annotations.pop(labels.POD_TEMPLATE_HASH, None)
    return stable_hash(stripped)[:POD_TEMPLATE_HASH_LENGTH]


def with_agent(
    deployment: dict[str, Any], spec: SmolServeSpec, config: OperatorConfig
) -> dict[str, Any]:
    """The Deployment with the agent sidecar, its token and account, and the pod-template hash
    annotation (``smolserve.dev/pod-template-hash``) that the agent reports and rollouts use."""
    out = copy.deepcopy(deployment)
    template = out["spec"]["template"]
    pod = template["spec"]
    pod["serviceAccountName"] = agent_rbac_name(spec.name)
    pod["containers"].append(agent_container(spec, config))
    pod["volumes"].append(token_volume())
    annotations = template["metadata"].setdefault("annotations", {})
    annotations[labels.POD_TEMPLATE_HASH] = pod_template_hash(template)
    return out


# --- reading back what the builders wrote ----------------------------------------------------


def template_hash_of(template: dict[str, Any] | None) -> str | None:
    """The ``smolserve.dev/pod-template-hash`` annotation of a pod template."""
    meta = (template or {}).get("metadata") or {}
    return (meta.get("annotations") or {}).get(labels.POD_TEMPLATE_HASH)


def smoke_gated(template: dict[str, Any] | None) -> bool:
    """Whether pods of this template are ready only after the battery passed on them."""
    for container in ((template or {}).get("spec") or {}).get("containers") or []:
        if container.get("name") == AGENT and "--smoke" in (container.get("args") or []):
            return True
    return False


def has_agent(deployment: dict[str, Any] | None) -> bool:
    """Whether a Deployment's pod template runs the agent sidecar."""
    pod = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(c.get("name") == AGENT for c in pod.get("containers") or [])
