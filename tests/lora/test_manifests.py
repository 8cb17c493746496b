"""Dynamic LoRA's pod: what changes the pod template (a restart) and what does not."""

from __future__ import annotations

from typing import Any

import pytest

from smolserve.agent.report import read_config
from smolserve.manifests import ServedTemplate, build_deployment, desired_state
from smolserve.manifests.agent import build_agent_configmaps
from smolserve.manifests.lora import (
    admitted_adapters,
    claim_path,
    claim_volume,
    guard_configmap_name,
    hub_dir,
    lora_config,
)
from smolserve.spec import load_spec
from support.factories import operator_config, smolserve

CONFIG = operator_config()
SQL = {"name": "sql", "source": "hf://org/sql-lora@v1"}
CHAT = {"name": "chat", "source": "hf://org/chat-lora@0123abc"}
LOCAL = {"name": "local", "source": "pvc://adapters/local/v2"}
OTHER = {"name": "other", "source": "pvc://adapters/other"}
ELSEWHERE = {"name": "far", "source": "pvc://more-adapters/x"}


def spec_of(lora: dict[str, Any]):
    return load_spec(smolserve(spec={"lora": {"maxLoras": 8, **lora}}))


def pod_template(lora: dict[str, Any]) -> dict[str, Any]:
    dep = build_deployment(spec_of(lora), CONFIG, template_configmap="cm", template_hash="1")
    return dep["spec"]["template"]


def vllm(template: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in template["spec"]["containers"] if c["name"] == "vllm")


def test_dynamic_is_the_default_and_starts_vllm_with_no_adapter():
    template = pod_template({"adapters": [SQL, LOCAL], "maxRank": 32})
    container = vllm(template)
    args = container["args"]
    i = args.index("--enable-lora")
    assert args[i : i + 7] == [
        "--enable-lora", "--max-lora-rank", "32", "--max-loras", "8",
        "--middleware", "adapter_guard.AdapterGuard",
    ]  # fmt: skip
    assert "--lora-modules" not in args
    assert "initContainers" not in template["spec"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["PYTHONPATH"] == "/etc/smolserve/guard"
    assert env["SMOLSERVE_AGENT_TOKEN_FILE"] == "/run/smolserve/agent-token"


def test_vllm_reads_the_adapters_and_the_token_and_writes_neither():
    template = pod_template({"adapters": [SQL, LOCAL]})
    mounts = {m["mountPath"]: m for m in vllm(template)["volumeMounts"]}
    for path in (
        "/etc/smolserve/guard",
        "/adapters/hub",
        "/run/smolserve",
        "/adapters/pvc/adapters",
    ):
        assert mounts[path]["readOnly"] is True, path
    assert "subPath" not in mounts["/adapters/pvc/adapters"]  # the whole claim, once
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes[claim_volume("adapters")]["persistentVolumeClaim"] == {
        "claimName": "adapters",
        "readOnly": True,
    }
    assert volumes["agent-run"]["emptyDir"]["medium"] == "Memory"
    guard = volumes["adapter-guard"]["configMap"]["name"]
    assert guard == guard_configmap_name(spec_of({"adapters": [SQL]}), CONFIG)


@pytest.mark.parametrize(
    "change",
    [
        {"adapters": [SQL, LOCAL, CHAT]},  # a hub adapter added
        {"adapters": [LOCAL]},  # one removed
        {"adapters": [{**SQL, "source": "hf://org/sql-lora@v2"}, LOCAL]},  # a new revision
        {"adapters": [SQL, LOCAL, OTHER]},  # an adapter on a claim already mounted
        {"adapters": [LOCAL, SQL]},  # reordered
    ],
)
def test_adapter_changes_leave_the_pod_template_alone(change):
    assert pod_template(change) == pod_template({"adapters": [SQL, LOCAL]})


@pytest.mark.parametrize(
    "change",
    [
        {"adapters": [SQL, LOCAL, ELSEWHERE]},  # a claim not mounted yet
        {"adapters": [SQL]},  # the last adapter on a claim
        {"adapters": [SQL, LOCAL], "maxRank": 64},
        {"adapters": [SQL, LOCAL], "maxLoras": 4},
        {"adapters": [SQL, LOCAL], "mode": "static"},
        {"adapters": []},  # LoRA off
    ],
)
def test_what_vllm_must_know_at_start_changes_it(change):
    assert pod_template(change) != pod_template({"adapters": [SQL, LOCAL]})


def test_the_first_max_loras_adapters_in_list_order_are_admitted():
    spec = load_spec(smolserve(spec={"lora": {"adapters": [SQL, LOCAL, CHAT], "maxLoras": 2}}))
    admitted, over = admitted_adapters(spec)
    assert [a.name for a in admitted] == ["sql", "local"]
    assert [a.name for a in over] == ["chat"]
    # Appending to a full list displaces nobody.
    spec = load_spec(smolserve(spec={"lora": {"adapters": [CHAT, SQL, LOCAL], "maxLoras": 2}}))
    assert [a.name for a in admitted_adapters(spec)[0]] == ["chat", "sql"]


def test_a_refused_adapter_mounts_no_claim():
    template = pod_template({"adapters": [SQL, ELSEWHERE], "maxLoras": 1})
    claims = [v for v in template["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == []


def test_the_desired_set_the_agents_load():
    spec = load_spec(
        smolserve(spec={"lora": {"adapters": [SQL, LOCAL, CHAT], "maxLoras": 2, "maxRank": 8}})
    )
    config = lora_config(spec)
    assert config.to_dict() == {
        "maxRank": 8,
        "baseModel": "HuggingFaceTB/SmolLM3-3B",
        "adapters": [
            {"name": "sql", "source": "hf://org/sql-lora@v1"},
            {"name": "local", "source": "pvc://adapters/local/v2"},
        ],
    }
    # Where the agent (and vLLM) find them: the claim mounted once, the hub volume.
    local = next(a for a in spec.lora.adapters if a.name == "local")
    assert (local.name, claim_path(local)) == ("local", "/adapters/pvc/adapters/local/v2")
    assert hub_dir() == "/adapters/hub"
    # It travels in the agent's ConfigMap; the battery checks no dynamic adapter.
    agent = read_config(build_agent_configmaps(spec)[0]["data"])
    assert agent.lora == config and agent.adapters == ()
    static = load_spec(smolserve(spec={"lora": {"adapters": [SQL], "mode": "static"}}))
    assert lora_config(static) is None
    assert [a.name for a in read_config(build_agent_configmaps(static)[0]["data"]).adapters] == [
        "sql"
    ]


def test_the_agent_downloads_reads_the_claims_and_writes_the_token():
    spec = load_spec(
        smolserve(
            spec={
                "lora": {"adapters": [SQL, LOCAL], "maxLoras": 2},
                "rollout": {"smoke": False},
                "model": {"tokenSecretRef": {"name": "hf", "key": "token"}},
            }
        )
    )
    dep = desired_state(
        spec, CONFIG, inputs_hash="0" * 64, template=ServedTemplate("cm", "1"), publishing=False
    ).deployment
    agent = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "agent")
    assert agent["args"][-4:] == [
        "--adapter-token-file", "/run/smolserve/agent-token", "--adapters-dir", "/adapters",
    ]  # fmt: skip
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in agent["volumeMounts"]}
    assert mounts["/adapters/hub"] is False and mounts["/run/smolserve"] is False
    assert mounts["/adapters/pvc/adapters"] is True
    env = {e["name"]: e for e in agent["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
    assert env["HF_HOME"]["value"] == "/adapters/hub/.home"
    # Smoke off, dynamic LoRA on: the agent is there; static without smoke: it is not.
    static = load_spec(
        smolserve(spec={"lora": {"adapters": [SQL], "mode": "static"}, "rollout": {"smoke": False}})
    )
    state = desired_state(
        static, CONFIG, inputs_hash="0" * 64, template=ServedTemplate("cm", "1"), publishing=False
    )
    names = [c["name"] for c in state.deployment["spec"]["template"]["spec"]["containers"]]
    assert names == ["vllm"]


def test_the_guard_configmap_is_a_child_only_in_dynamic_mode():
    def configmaps(lora):
        state = desired_state(
            spec_of(lora),
            CONFIG,
            inputs_hash="0" * 64,
            template=ServedTemplate("cm", "1"),
            publishing=False,
        )
        return [o["metadata"]["name"] for o in state.objects() if o["kind"] == "ConfigMap"]

    dynamic = configmaps({"adapters": [SQL]})
    assert any("-adapter-guard-" in name for name in dynamic)
    assert not any(
        "-adapter-guard-" in n for n in configmaps({"adapters": [SQL], "mode": "static"})
    )
    assert not any("-adapter-guard-" in n for n in configmaps({"adapters": []}))


def test_adapter_names_stay_dns_labels_and_claim_volumes_fit():
    long_claim = "c" * 200 + ".example"
    template = pod_template({"adapters": [{"name": "x", "source": f"pvc://{long_claim}/a"}]})
    names = [v["name"] for v in template["spec"]["volumes"]]
    assert all(len(n) <= 63 for n in names)
    with pytest.raises(Exception, match="lora"):
        load_spec(
            smolserve(spec={"lora": {"adapters": [{"name": "Bad_Name", "source": SQL["source"]}]}})
        )
