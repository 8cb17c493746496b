"""The agent's parts in the desired state: the sidecar, its token (the agent's only), its Role
(two ConfigMaps by name), its ConfigMaps, and the pod-template hash rollouts are judged by."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate

from smolserve import labels
from smolserve.agent.report import read_config
from smolserve.manifests import OperatorConfig, ServedTemplate, desired_state, template_inputs_hash
from smolserve.manifests.agent import TOKEN_DIR, pod_template_hash, smoke_gated
from smolserve.spec import load_spec

CONFIG = OperatorConfig(job_image="example.org/smolserve-job:test")
TEMPLATE = ServedTemplate("smol-chat-template-1234abcd", "1234abcd")


def desired(spec: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    s = load_spec({"metadata": {"name": "smol", "namespace": "ai", "uid": "u"}, "spec": spec or {}})
    state = desired_state(
        s, CONFIG, inputs_hash=template_inputs_hash(s, CONFIG), template=TEMPLATE, publishing=False
    )
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in state.objects()}


def pod_spec(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objects["Deployment/smol"]["spec"]["template"]["spec"]


def test_the_sidecar_alone_holds_the_agents_token() -> None:
    pod = pod_spec(desired())
    vllm, agent = pod["containers"]
    assert (vllm["name"], agent["name"]) == ("vllm", "agent")
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "smol-agent"
    token = next(v for v in pod["volumes"] if v["name"] == "agent-token")
    sources = token["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["expirationSeconds"] == 3600
    assert agent["volumeMounts"] == [
        {"name": "agent-token", "mountPath": TOKEN_DIR, "readOnly": True}
    ]
    assert all(m["name"] != "agent-token" for m in vllm["volumeMounts"])
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    assert agent["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not any("secretKeyRef" in json.dumps(e) for e in agent["env"])  # no Secret for smoke


def test_readiness_is_the_agents_and_its_port_is_not_the_services() -> None:
    objects = desired()
    agent = pod_spec(objects)["containers"][1]
    assert agent["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "agent"}
    assert agent["ports"] == [{"name": "agent", "containerPort": 8081, "protocol": "TCP"}]
    assert agent["args"][:2] == ["agent", "run"] and "--smoke" in agent["args"]
    assert "--vllm-url" in agent["args"] and "http://127.0.0.1:8000" in agent["args"]
    service_ports = objects["Service/smol"]["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]
    # vLLM keeps its own probes on /health.
    vllm = pod_spec(objects)["containers"][0]
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"


def test_the_agents_role_names_its_two_configmaps_only() -> None:
    objects = desired()
    role = objects["Role/smol-agent"]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["smol-agent-config"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["smol-agent-status"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = objects["RoleBinding/smol-agent"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "smol-agent", "namespace": "ai"}
    ]
    assert objects["ServiceAccount/smol-agent"]["automountServiceAccountToken"] is False


def test_the_config_carries_the_timeout_and_adapters_and_the_status_no_data() -> None:
    adapters = [{"name": "sql", "source": "pvc://adapters/sql"}]
    static = {"adapters": adapters, "mode": "static"}  # the battery checks the pod's adapters
    objects = desired({"rollout": {"smokeTimeout": "90s"}, "lora": static})
    config = read_config(objects["ConfigMap/smol-agent-config"]["data"])
    assert config.smoke is not None and config.smoke.timeout_seconds == 90
    assert [(a.name, a.source) for a in config.adapters] == [("sql", "pvc://adapters/sql")]
    assert config.lora is None
    assert "data" not in objects["ConfigMap/smol-agent-status"]  # the agents' to write
    # Dynamic mode: the agents load them (config.lora), each checked by its loading instead.
    dynamic = read_config(
        desired({"lora": {"adapters": adapters}})["ConfigMap/smol-agent-config"]["data"]
    )
    assert dynamic.adapters == () and [a.name for a in dynamic.lora.adapters] == ["sql"]


def test_the_pod_template_hash_follows_the_pod_template_only() -> None:
    first = desired()["Deployment/smol"]["spec"]["template"]
    assert first["metadata"]["annotations"][labels.POD_TEMPLATE_HASH] == pod_template_hash(first)
    assert smoke_gated(first)
    # Not in the pod template: same hash. In it: a new one.
    timeout = desired({"rollout": {"smokeTimeout": "5m"}, "replicas": 3})["Deployment/smol"]
    env = desired({"engine": {"env": [{"name": "X", "value": "1"}]}})["Deployment/smol"]
    hash_of = lambda d: d["spec"]["template"]["metadata"]["annotations"][labels.POD_TEMPLATE_HASH]  # noqa: E731
    assert hash_of(timeout) == pod_template_hash(first)
    assert hash_of(env) != pod_template_hash(first)


def test_smoke_off_is_todays_pod() -> None:
    objects = desired({"rollout": {"smoke": False}})
    pod = pod_spec(objects)
    assert [c["name"] for c in pod["containers"]] == ["vllm"]
    assert "serviceAccountName" not in pod
    assert (
        labels.POD_TEMPLATE_HASH
        not in objects["Deployment/smol"]["spec"]["template"]["metadata"]["annotations"]
    )
    assert not [k for k in objects if "agent" in k]


def test_the_agents_objects_are_valid_kubernetes() -> None:
    objects = desired()
    for key in ("Deployment/smol", "Role/smol-agent", "ServiceAccount/smol-agent"):
        kubernetes_validate.validate(objects[key], "1.30.0", strict=True)
