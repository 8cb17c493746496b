"""The pure builders: exact vLLM flags, stable pod templates and hashes, security, probes,
labels, owner references."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import kubernetes_validate
import pytest

from smolserve import labels
from smolserve.manifests import (
    OperatorConfig,
    ServedTemplate,
    build_deployment,
    build_parser_configmap,
    build_service,
    build_template_configmap,
    build_template_job,
    build_template_rbac,
    desired_state,
    selector_string,
    template_configmap_name,
    template_inputs_hash,
    vllm_args,
)
from smolserve.manifests.common import TEMPLATE, sha256_hex
from smolserve.spec import load_spec

CONFIG = OperatorConfig(job_image="example.org/smolserve-job:test")
UID = "0b5d6c1e-0000-4000-8000-000000000001"
CM = "smol-chat-template-1234abcd"


def spec_of(spec: dict[str, Any] | None = None, *, uid: str | None = UID, name: str = "smol"):
    meta = {"name": name, "namespace": "ai"}
    if uid:
        meta["uid"] = uid
    return load_spec({"metadata": meta, "spec": spec or {}})


def deployment(spec: dict[str, Any] | None = None, template_hash: str = "1234abcd", **kw):
    return build_deployment(
        spec_of(spec, **kw), CONFIG, template_configmap=CM, template_hash=template_hash
    )


def container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


# --- vLLM flags ----------------------------------------------------------------------------------


def test_default_flags_exactly():
    assert vllm_args(spec_of()) == [
        "--model", "HuggingFaceTB/SmolLM3-3B",
        "--served-model-name", "smollm3",
        "--host", "0.0.0.0",
        "--port", "8000",
        "--chat-template", "/etc/smolserve/template/chat_template.jinja",
        "--chat-template-content-format", "string",
        "--enable-auto-tool-choice",
        "--tool-call-parser", "hermes",
        "--reasoning-parser", "smollm3",
        "--reasoning-parser-plugin", "/etc/smolserve/parsers/smollm3_reasoning_parser.py",
        "--max-model-len", "8192",
        "--gpu-memory-utilization", "0.9",
        "--dtype", "auto",
    ]  # fmt: skip


def test_container_runs_the_api_server_module():
    c = container(deployment())
    assert c["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert c["args"] == vllm_args(spec_of())
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_revision_is_passed_for_hub_models():
    args = vllm_args(spec_of({"model": {"revision": "abc123"}}))
    assert args[:4] == ["--model", "HuggingFaceTB/SmolLM3-3B", "--revision", "abc123"]


def test_pvc_model_is_mounted_read_only_and_loaded_from_it():
    dep = deployment({"model": {"pvc": {"claimName": "models", "path": "SmolLM3-3B"}}})
    c = container(dep)
    assert c["args"][:2] == ["--model", "/models/SmolLM3-3B"]
    assert "--revision" not in c["args"]
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "model",
        "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
    } in volumes


def test_smollm3_reasoning_parser_is_mounted_as_a_plugin():
    spec = spec_of({"parsers": {"reasoning": "smollm3"}})
    args = vllm_args(spec)
    i = args.index("--reasoning-parser")
    assert args[i : i + 4] == [
        "--reasoning-parser", "smollm3",
        "--reasoning-parser-plugin", "/etc/smolserve/parsers/smollm3_reasoning_parser.py",
    ]  # fmt: skip
    dep = build_deployment(spec, CONFIG, template_configmap=CM, template_hash="1234abcd")
    parsers_cm = build_parser_configmap(spec, CONFIG)
    pod = dep["spec"]["template"]
    assert {"name": "parsers", "configMap": {"name": parsers_cm["metadata"]["name"]}} in pod[
        "spec"
    ]["volumes"]
    assert (
        pod["metadata"]["annotations"][labels.PARSERS_HASH] == sha256_hex(CONFIG.parser_plugin)[:8]
    )


@pytest.mark.parametrize("reasoning", ["deepseek_r1", "qwen3"])
def test_stock_reasoning_parsers_need_no_plugin(reasoning):
    dep = deployment({"parsers": {"reasoning": reasoning}})
    assert "--reasoning-parser-plugin" not in container(dep)["args"]
    assert labels.PARSERS_HASH not in dep["spec"]["template"]["metadata"]["annotations"]
    assert all(v["name"] != "parsers" for v in dep["spec"]["template"]["spec"]["volumes"])


def test_parser_flags_can_be_turned_off():
    args = vllm_args(
        spec_of({"parsers": {"toolCall": "none", "autoToolChoice": False, "reasoning": "none"}})
    )
    for flag in ("--enable-auto-tool-choice", "--tool-call-parser", "--reasoning-parser"):
        assert flag not in args


def test_no_think_default_sets_the_template_kwargs():
    args = vllm_args(spec_of({"thinking": {"default": "noThink"}}))
    i = args.index("--default-chat-template-kwargs")
    assert json.loads(args[i + 1]) == {"enable_thinking": False}
    assert "--default-chat-template-kwargs" not in vllm_args(spec_of())


def test_several_gpus_mean_tensor_parallelism():
    args = vllm_args(spec_of({"resources": {"gpus": 2}}))
    assert args[-2:] == ["--tensor-parallel-size", "2"]
    assert "--tensor-parallel-size" not in vllm_args(spec_of())


def test_extra_args_come_last():
    args = vllm_args(spec_of({"engine": {"extraArgs": ["--enforce-eager", "--dtype=half"]}}))
    assert args[-2:] == ["--enforce-eager", "--dtype=half"]


def test_engine_flags():
    args = vllm_args(
        spec_of({"engine": {"maxModelLen": 4096, "gpuMemoryUtilization": 0.5, "dtype": "bfloat16"}})
    )
    assert args[-6:] == [
        "--max-model-len", "4096", "--gpu-memory-utilization", "0.5", "--dtype", "bfloat16",
    ]  # fmt: skip


# --- LoRA --------------------------------------------------------------------------------------

ADAPTERS = [
    {"name": "sql", "source": "hf://org/sql-lora@v1"},
    {"name": "local", "source": "pvc://adapters/local/v2"},
    {"name": "chat", "source": "hf://org/chat-lora@0123abc"},
]


def test_static_lora_flags_exactly():
    lora = {"adapters": ADAPTERS, "maxRank": 64, "maxLoras": 2, "mode": "static"}
    args = vllm_args(spec_of({"lora": lora}))
    i = args.index("--enable-lora")
    j = args.index("--max-model-len")
    assert args[i:j] == [
        "--enable-lora",
        "--max-lora-rank", "64",
        "--max-loras", "2",
        "--lora-modules",
        '{"name": "chat", "path": "/adapters/chat", "base_model_name": "smollm3"}',
        '{"name": "local", "path": "/adapters/local", "base_model_name": "smollm3"}',
        '{"name": "sql", "path": "/adapters/sql", "base_model_name": "smollm3"}',
    ]  # fmt: skip


def test_no_adapters_no_lora_flags():
    assert "--enable-lora" not in vllm_args(spec_of({"lora": {"maxRank": 64}}))


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_reordering_adapters_leaves_the_pod_template_unchanged(mode):
    a = deployment({"lora": {"adapters": ADAPTERS, "mode": mode}})
    b = deployment({"lora": {"adapters": list(reversed(ADAPTERS)), "mode": mode}})
    assert a == b


def test_static_hf_adapters_are_fetched_by_an_init_container_and_pvc_adapters_mounted():
    dep = deployment({"lora": {"adapters": ADAPTERS, "mode": "static"}})
    pod = dep["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == CONFIG.job_image
    assert init["command"] == ["smolserve"]
    assert init["args"] == [
        "job", "fetch-adapters", "--dest", "/adapters",
        "chat=hf://org/chat-lora@0123abc", "sql=hf://org/sql-lora@v1",
    ]  # fmt: skip
    assert {"name": "adapters", "mountPath": "/adapters"} in init["volumeMounts"]
    mounts = container(dep)["volumeMounts"]
    assert {"name": "adapters", "mountPath": "/adapters", "readOnly": True} in mounts
    assert {
        "name": "lora-local",
        "mountPath": "/adapters/local",
        "readOnly": True,
        "subPath": "local/v2",
    } in mounts
    assert {
        "name": "lora-local",
        "persistentVolumeClaim": {"claimName": "adapters", "readOnly": True},
    } in pod["volumes"]


def test_static_only_pvc_adapters_need_no_init_container():
    dep = deployment({"lora": {"adapters": [ADAPTERS[1]], "mode": "static"}})
    assert "initContainers" not in dep["spec"]["template"]["spec"]


# --- template wiring and rollouts -----------------------------------------------------------------


def test_template_configmap_is_mounted_read_only_at_the_flag_path():
    dep = deployment()
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"][labels.TEMPLATE_HASH] == "1234abcd"
    assert {
        "name": "template",
        "configMap": {
            "name": CM,
            "items": [{"key": "chat_template.jinja", "path": "chat_template.jinja"}],
        },
    } in pod["spec"]["volumes"]
    mount = {"name": "template", "mountPath": "/etc/smolserve/template", "readOnly": True}
    assert mount in container(dep)["volumeMounts"]


def test_a_new_template_changes_only_the_template_parts_of_the_pod():
    old = build_deployment(spec_of(), CONFIG, template_configmap=CM, template_hash="1234abcd")
    new = build_deployment(
        spec_of(),
        CONFIG,
        template_configmap="smol-chat-template-99999999",
        template_hash="99999999",
    )
    assert old["spec"]["template"] != new["spec"]["template"]
    old["spec"]["template"]["metadata"]["annotations"][labels.TEMPLATE_HASH] = "99999999"
    old["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = (
        "smol-chat-template-99999999"
    )
    assert old == new


def test_rolling_update_uses_the_spec():
    dep = deployment({"rollout": {"maxSurge": "50%", "maxUnavailable": 1}, "replicas": 4})
    assert dep["spec"]["replicas"] == 4
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1},
    }
    default = deployment()["spec"]["strategy"]["rollingUpdate"]
    assert default == {"maxSurge": 1, "maxUnavailable": 0}


def test_inputs_hash_covers_template_inputs_only():
    base = template_inputs_hash(spec_of(), CONFIG)
    assert base == template_inputs_hash(spec_of(), CONFIG)
    same = [
        {"replicas": 3},
        {"engine": {"maxModelLen": 4096}},
        {"parsers": {"reasoning": "qwen3"}},
        {"lora": {"adapters": ADAPTERS}},
        {"model": {"tokenSecretRef": {"name": "hf"}}},
    ]
    for change in same:
        assert template_inputs_hash(spec_of(change), CONFIG) == base, change
    assert template_inputs_hash(spec_of(uid="other"), CONFIG) == base
    different = [
        {"model": {"revision": "abc"}},
        {"model": {"id": "org/other"}},
        {"model": {"pvc": {"claimName": "m"}}},
        {"template": {"variant": "stock"}},
        {"template": {"closeSystemTurn": False}},
        {"template": {"source": "inline", "inline": "a"}},
        {"template": {"source": "configMap", "configMapRef": {"name": "t"}}},
    ]
    hashes = {template_inputs_hash(spec_of(c), CONFIG) for c in different}
    assert len(hashes) == len(different) and base not in hashes
    inline_b = template_inputs_hash(
        spec_of({"template": {"source": "inline", "inline": "b"}}), CONFIG
    )
    assert inline_b not in hashes
    other_image = OperatorConfig(job_image="example.org/smolserve-job:next")
    assert template_inputs_hash(spec_of(), other_image) != base
    cm = spec_of({"template": {"source": "configMap", "configMapRef": {"name": "t"}}})
    assert template_inputs_hash(cm, CONFIG, source_sha256="a") != template_inputs_hash(
        cm, CONFIG, source_sha256="b"
    )


def test_inputs_hash_ignores_key_order():
    a = {
        "template": {"source": "generate", "variant": "seed"},
        "model": {"revision": "r", "id": "o/m"},
    }
    b = {
        "model": {"id": "o/m", "revision": "r"},
        "template": {"variant": "seed", "source": "generate"},
    }
    assert template_inputs_hash(spec_of(a), CONFIG) == template_inputs_hash(spec_of(b), CONFIG)


# --- security, probes, resources ----------------------------------------------------------------

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _pods(spec: dict[str, Any]) -> list[dict[str, Any]]:
    s = spec_of(spec)
    job = build_template_job(s, CONFIG)
    dep = build_deployment(s, CONFIG, template_configmap=CM, template_hash="1234abcd")
    return [job["spec"]["template"]["spec"], dep["spec"]["template"]["spec"]]


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_every_pod_meets_the_restricted_standard(mode):
    for pod in _pods({"lora": {"adapters": ADAPTERS, "mode": mode}}):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"] + pod.get("initContainers", []):
            assert RESTRICTED.items() <= c["securityContext"].items(), c["name"]
            assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
        for volume in pod["volumes"]:
            assert "hostPath" not in volume


def test_vllm_gets_a_writable_home_and_shared_memory():
    dep = deployment()
    c = container(dep)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HOME"] == "/cache" and env["HF_HOME"].startswith("/cache/")
    assert dep["spec"]["template"]["spec"]["enableServiceLinks"] is False
    assert {"name": "cache", "mountPath": "/cache"} in c["volumeMounts"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in dep["spec"]["template"]["spec"][
        "volumes"
    ]


def test_probes_tolerate_a_long_download():
    c = container(deployment())
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600
    assert c["readinessProbe"]["httpGet"]["path"] in ("/health", "/v1/models")
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_gpu_and_memory_resources():
    c = container(deployment({"resources": {"gpus": 2, "gpuResourceName": "amd.com/gpu"}}))
    assert c["resources"] == {
        "requests": {"cpu": "4", "memory": "24Gi"},
        "limits": {"memory": "24Gi", "amd.com/gpu": "2"},
    }
    assert (
        "nvidia.com/gpu"
        not in container(deployment({"resources": {"gpus": 0}}))["resources"]["limits"]
    )


def test_scheduling_fields_reach_the_pod():
    pod = deployment(
        {
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {}},
            "runtimeClassName": "nvidia",
        }
    )["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert pod["runtimeClassName"] == "nvidia"
    assert "affinity" in pod


def test_hub_token_is_env_from_the_secret_never_an_argument():
    ref = {"name": "hub-secret-x", "key": "secret-key-y"}
    s = spec_of({"model": {"tokenSecretRef": ref}})
    token_env = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}}
    job = build_template_job(s, CONFIG)
    dep = build_deployment(s, CONFIG, template_configmap=CM, template_hash="1234abcd")
    for c in [job["spec"]["template"]["spec"]["containers"][0], container(dep)]:
        assert token_env in c["env"]
        assert not any("secret" in a for a in c["args"])


# --- the template Job and its RBAC ----------------------------------------------------------------


def test_template_job_runs_publish_template_with_everything_in_args_or_env():
    s = spec_of({"model": {"revision": "abc"}, "template": {"variant": "fixed"}})
    inputs = template_inputs_hash(s, CONFIG)
    job = build_template_job(s, CONFIG)
    assert job["metadata"]["name"] == f"smol-template-{inputs[:8]}"
    assert job["spec"]["backoffLimit"] <= 2
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "smol-template"
    (c,) = pod["containers"]
    assert c["command"] == ["smolserve"]
    assert c["args"] == [
        "job", "publish-template", "--serve", "smol", "--inputs-hash", inputs,
        "--namespace", "ai", "--owner-uid", UID,
        "--tokenizer", "HuggingFaceTB/SmolLM3-3B", "--revision", "abc",
        "--variant", "fixed", "--close-system-turn",
    ]  # fmt: skip
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_template_job_sources():
    inline = build_template_job(spec_of({"template": {"source": "inline", "inline": "T"}}), CONFIG)
    c = inline["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][-2:] == ["--template-env", "SMOLSERVE_TEMPLATE_INLINE"]
    assert {"name": "SMOLSERVE_TEMPLATE_INLINE", "value": "T"} in c["env"]

    spec = {"template": {"source": "configMap", "configMapRef": {"name": "mine", "key": "t.j2"}}}
    job = build_template_job(spec_of(spec), CONFIG)
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"][-2:] == ["--template-file", "/etc/smolserve/source/t.j2"]
    assert {
        "name": "source",
        "configMap": {"name": "mine", "items": [{"key": "t.j2", "path": "t.j2"}]},
    } in pod["volumes"]

    pvc = build_template_job(spec_of({"model": {"pvc": {"claimName": "m", "path": "p"}}}), CONFIG)
    args = pvc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tokenizer") + 1] == "/models/p"

    stock = build_template_job(spec_of({"template": {"variant": "stock"}}), CONFIG)
    assert "--allow-unverified" in stock["spec"]["template"]["spec"]["containers"][0]["args"]
    for verified in ({}, {"template": {"variant": "seed"}}):
        job = build_template_job(spec_of(verified), CONFIG)
        assert "--allow-unverified" not in job["spec"]["template"]["spec"]["containers"][0]["args"]


def test_template_rbac_is_least_privilege():
    sa, role, binding = build_template_rbac(spec_of())
    assert (sa["kind"], role["kind"], binding["kind"]) == ("ServiceAccount", "Role", "RoleBinding")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "ai"}
    ]


def test_template_configmap_is_content_addressed_and_immutable():
    text = "{{ messages }}\n"
    sha = sha256_hex(text)
    cm = build_template_configmap(
        serve="smol", namespace="ai", owner_uid=UID, text=text, inputs_hash="f" * 64
    )
    assert (
        cm["metadata"]["name"]
        == template_configmap_name("smol", sha)
        == f"smol-chat-template-{sha[:8]}"
    )
    assert cm["immutable"] is True
    assert cm["data"] == {"chat_template.jinja": text}
    assert cm["metadata"]["labels"][labels.TEMPLATE_HASH] == sha[:8]
    assert cm["metadata"]["labels"][labels.INPUTS_HASH] == "f" * 8
    assert cm["metadata"]["annotations"]["smolserve.dev/template-sha256"] == sha
    assert cm["metadata"]["ownerReferences"][0]["uid"] == UID


def test_parser_configmap_holds_the_plugin_file():
    cm = build_parser_configmap(spec_of(), CONFIG)
    plugin = (
        resources.files("smolserve.plugins").joinpath("smollm3_reasoning_parser.py").read_text()
    )
    assert cm["data"] == {"smollm3_reasoning_parser.py": plugin}
    assert cm["metadata"]["name"] == f"smol-parsers-{sha256_hex(plugin)[:8]}"
    assert cm["immutable"] is True


# --- Service, labels, owner references, validity --------------------------------------------------


def test_service_exposes_the_http_port_of_the_server_pods():
    s = spec_of({"service": {"type": "LoadBalancer", "port": 80, "annotations": {"a": "b"}}})
    svc = build_service(s)
    dep = build_deployment(s, CONFIG, template_configmap=CM, template_hash="1234abcd")
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["metadata"]["annotations"] == {"a": "b"}
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert selector_string(s.name) == ",".join(
        f"{k}={v}" for k, v in sorted(svc["spec"]["selector"].items())
    )


def _all(spec: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    s = spec_of({"parsers": {"reasoning": "smollm3"}, **(spec or {})}, **kw)
    template = ServedTemplate(CM, "1234abcd")
    inputs = template_inputs_hash(s, CONFIG)
    children = desired_state(
        s, CONFIG, inputs_hash=inputs, template=template, publishing=True
    ).objects()
    children.append(
        build_template_configmap(
            serve=s.name, namespace=s.namespace, owner_uid=s.uid, text="x", inputs_hash="0" * 64
        )
    )
    return children


def test_every_child_has_the_standard_labels_and_a_controller_owner():
    children = _all()
    assert [c["kind"] for c in children] == [
        "ServiceAccount", "ServiceAccount", "Role", "Role", "RoleBinding", "RoleBinding", "Job",
        "ConfigMap", "ConfigMap", "ConfigMap", "Service", "Deployment", "ConfigMap",
    ]  # fmt: skip
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "ai"
        assert meta["labels"][labels.SERVE] == "smol"
        assert meta["labels"][labels.INSTANCE] == "smol"
        assert meta["labels"][labels.NAME] == "smolserve"
        assert meta["labels"][labels.MANAGED_BY] == "smolserve-operator"
        assert meta["labels"][labels.COMPONENT]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "smolserve.dev/v1alpha1",
                "kind": "SmolServe",
                "name": "smol",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_without_a_uid_there_is_no_owner_reference():
    for child in _all(uid=None):
        assert "ownerReferences" not in child["metadata"]


def test_no_deployment_before_a_template_exists():
    spec = spec_of()
    inputs = template_inputs_hash(spec, CONFIG)
    desired = desired_state(spec, CONFIG, inputs_hash=inputs, template=None, publishing=True)
    kinds = [c["kind"] for c in desired.objects()]
    assert desired.deployment is None
    assert "Deployment" not in kinds and "Job" in kinds and "Service" in kinds


def test_the_template_jobs_rbac_is_wanted_only_while_a_template_is_published():
    """Least privilege: no standing account that may write ConfigMaps once the template is
    there (the Job itself stays until pruned: render and the operator show it)."""
    spec = spec_of()
    inputs = template_inputs_hash(spec, CONFIG)
    template = ServedTemplate(CM, "1234abcd")
    done = desired_state(spec, CONFIG, inputs_hash=inputs, template=template, publishing=False)
    assert done.job_rbac == () and done.job is not None
    job_parts = [o for o in done.objects() if o["metadata"]["labels"][labels.COMPONENT] == TEMPLATE]
    kinds = {c["kind"] for c in job_parts}
    assert not kinds & {"ServiceAccount", "Role", "RoleBinding"}
    busy = desired_state(spec, CONFIG, inputs_hash=inputs, template=template, publishing=True)
    assert [o["kind"] for o in busy.job_rbac] == ["ServiceAccount", "Role", "RoleBinding"]


def test_no_job_while_the_template_inputs_cannot_be_known():
    spec = spec_of({"template": {"source": "configMap", "configMapRef": {"name": "t"}}})
    desired = desired_state(spec, CONFIG, inputs_hash=None, template=None, publishing=True)
    assert desired.job is None and desired.job_rbac == ()  # no Job: nothing needs its RBAC
    assert [c["kind"] for c in desired.objects()] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",
        "Service",
    ]  # fmt: skip (the agent's RBAC and ConfigMaps, the parser plugin's, the Service)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {
            "model": {"pvc": {"claimName": "m", "path": "p"}, "tokenSecretRef": {"name": "hf"}},
            "lora": {"adapters": ADAPTERS},
            "template": {"source": "configMap", "configMapRef": {"name": "t"}},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "rollout": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
        {"template": {"source": "inline", "inline": "{{ x }}"}, "service": {"type": "NodePort"}},
    ],
)
def test_children_are_valid_kubernetes_objects(spec):
    for child in _all(spec):
        kubernetes_validate.validate(child, "1.37.0", strict=True)


def test_long_names_stay_within_kubernetes_limits():
    """The longest name the CRD admits: names that become label values or DNS labels fit 63."""
    for child in _all(name="a" * 45):
        limit = 253 if child["kind"] == "ConfigMap" else 63
        assert len(child["metadata"]["name"]) <= limit, child["metadata"]["name"]
        kubernetes_validate.validate(child, "1.37.0", strict=True)


MUTABLE_SPEC = {
    "lora": {"adapters": ADAPTERS},
    "nodeSelector": {"gpu": "h100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "engine": {
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        ]
    },
    "service": {"annotations": {"lb": "internal"}},
}


def _scramble(node: Any) -> None:
    """Change every value inside ``node`` in place (what a caller editing a manifest does)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                _scramble(value)
            else:
                node[key] = "changed"
    elif isinstance(node, list):
        for item in node:
            _scramble(item)
        node.append("extra")


def test_builders_do_not_mutate_or_share_state():
    """Every mutable value the builders copy from the spec (affinity, env, tolerations,
    nodeSelector, service annotations) is a deep copy: editing one manifest changes neither
    the spec nor the next manifest built from it."""
    s = spec_of(MUTABLE_SPEC)
    before = copy.deepcopy(s.to_dict())
    template = ServedTemplate(CM, "1234abcd")
    for _ in range(2):
        first = desired_state(
            s, CONFIG, inputs_hash="0" * 64, template=template, publishing=False
        ).objects()
        pod = next(o for o in first if o["kind"] == "Deployment")["spec"]["template"]["spec"]
        copied = [pod["nodeSelector"], pod["tolerations"], pod["affinity"]]
        copied.append(pod["containers"][0]["env"])
        copied.append(next(o for o in first if o["kind"] == "Service")["metadata"]["annotations"])
        for value in copied:
            _scramble(value)
        assert s.to_dict() == before
    again = desired_state(
        s, CONFIG, inputs_hash="0" * 64, template=template, publishing=False
    ).objects()
    pod = next(o for o in again if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == MUTABLE_SPEC["nodeSelector"]
    assert pod["tolerations"] == MUTABLE_SPEC["tolerations"]
    assert pod["affinity"] == MUTABLE_SPEC["affinity"]
    assert pod["containers"][0]["env"][-2:] == MUTABLE_SPEC["engine"]["env"]


def test_operator_config_from_env():
    assert OperatorConfig.from_env({"SMOLSERVE_TEMPLATE_JOB_IMAGE": "x/y:1"}).job_image == "x/y:1"
    assert OperatorConfig.from_env({}).job_image.startswith("ghcr.io/smolserve/template-job:")


def test_inputs_history_keeps_each_hash_once_newest_last_and_bounded():
    from smolserve.manifests.template import (
        INPUTS_HISTORY_LIMIT,
        published_inputs,
        with_published_inputs,
    )

    history: list[str] = []
    for i in [*range(INPUTS_HISTORY_LIMIT + 3), 5]:
        history = with_published_inputs(history, f"{i:08x}")
    assert len(history) == INPUTS_HISTORY_LIMIT
    assert history[-1] == f"{5:08x}" and history.count(f"{5:08x}") == 1
    assert f"{0:08x}" not in history  # the oldest fell off
    # The label counts as published even when the history annotation predates it.
    assert published_inputs({labels.INPUTS_HASH: "aaaaaaaa"}, None) == ["aaaaaaaa"]
    assert published_inputs(
        {labels.INPUTS_HASH: "bbbbbbbb"}, {labels.INPUTS_HISTORY: "aaaaaaaa bbbbbbbb"}
    ) == ["aaaaaaaa", "bbbbbbbb"]
