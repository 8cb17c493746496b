"""Dynamic LoRA on a real CPU vLLM: adapters added, reloaded and removed in the same server
process by the real agent, driven by spec changes through the real operator (tests/vllm/vlora.py).

One server for the whole file (module fixture), started from the operator's own Deployment,
listening on every address: this machine's non-loopback address stands for the Service.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from vlora import COMMIT, LoraStack, http, serve_spec
from vpool import ADAPTER_NAME, Assets, ServerPool
from vstack import build_tiny_adapter

from support.network import non_loopback_address
from support.running import wait_for

pytestmark = pytest.mark.vllm

FIRST = {"name": "first", "source": f"pvc://adapters/{ADAPTER_NAME}"}
SECOND = {"name": "second", "source": "hf://org/tiny-hub-lora@v1"}
SECOND_V2 = {"name": "second", "source": "hf://org/tiny-hub-lora@v2"}
OTHER_BASE = {"name": "other-base", "source": "pvc://adapters/other-base"}
TOO_BIG = {"name": "too-big", "source": "pvc://adapters/rank16"}
SPEC_DRIVEN = {"name": "spec-driven", "source": FIRST["source"]}


def _other_base_adapter(out: Path) -> Path:
    """A LoRA for a SmolLM3 twice as wide as the served one: vLLM refuses it by shape."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    torch.manual_seed(5)
    config = SmolLM3Config(
        vocab_size=128256,
        hidden_size=256,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        no_rope_layers=[1, 0],
        tie_word_embeddings=True,
    )
    model = get_peft_model(
        SmolLM3ForCausalLM(config),
        LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def stack(
    assets: Assets, servers: ServerPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoraStack]:
    servers.close()  # one vLLM server at a time on this machine
    claim = assets.adapters  # the `adapters` claim: tiny-sql is in it already
    tiny = assets.models / "tiny"
    if not (claim / "rank16").exists():
        build_tiny_adapter(tiny, claim / "rank16", rank=16, seed=3)
        _other_base_adapter(claim / "other-base")
    hub_sources = tmp_path_factory.mktemp("hub-sources")
    v1 = build_tiny_adapter(tiny, hub_sources / "v1", seed=7)
    v2 = build_tiny_adapter(tiny, hub_sources / "v2", seed=8)
    lora = LoraStack(
        assets_models=assets.models,
        claim=claim,
        workdir=tmp_path_factory.mktemp("lora-stack"),
        spec=serve_spec([FIRST]),
        host="0.0.0.0",
        hub_seeds=[("org/tiny-hub-lora", "v1", v1, "1"), ("org/tiny-hub-lora", "v2", v2, "2")],
    )
    with lora:
        lora.start_pods(1)
        yield lora


def pod_of(stack: LoraStack):
    (pod,) = stack.pods.values()
    return pod


def wait_state(stack: LoraStack, name: str, state: str, pods: str = "1/1") -> dict:
    def seen() -> dict | None:
        found = stack.adapters_status().get(name)
        return found if found and (found["state"], found["pods"]) == (state, pods) else None

    return wait_for(seen, timeout=60, what=f"adapter {name} {state} on {pods}")


def test_the_first_set_is_loaded_before_the_pod_is_ready(stack: LoraStack) -> None:
    pod = pod_of(stack)
    models = pod.models()
    assert models["first"]["parent"] == "smollm3"
    assert models["first"]["root"].endswith(f"pvc/adapters/{ADAPTER_NAME}")
    assert pod.answers("first")
    wait_state(stack, "first", "Ready")
    condition = next(
        c for c in stack.serve()["status"]["conditions"] if c["type"] == "AdaptersReady"
    )
    assert condition["status"] == "True"


def test_add_a_second_adapter_in_the_same_process(stack: LoraStack) -> None:
    pod = pod_of(stack)
    pid = pod.pid()
    stack.patch_lora([FIRST, SECOND])
    wait_for(lambda: pod.answers("second"), timeout=60, what="the second adapter answering")
    models = pod.models()
    assert models["second"]["parent"] == "smollm3" and "first" in models
    assert "/hub/models--org--tiny-hub-lora/snapshots/" in models["second"]["root"]
    wait_state(stack, "second", "Ready")
    assert pod.pid() == pid and pod.vllm._proc.poll() is None  # no restart


def test_a_new_revision_is_swapped_in_place(stack: LoraStack) -> None:
    pod = pod_of(stack)
    pid = pod.pid()
    before = pod.models()["second"]["root"]
    stack.patch_lora([FIRST, SECOND_V2])
    wait_for(
        lambda: pod.models().get("second", {}).get("root") not in (None, before),
        timeout=60,
        what="the new revision loaded",
    )
    assert pod.models()["second"]["root"].endswith(COMMIT.format("2"))  # v2's snapshot
    assert pod.answers("second")
    wait_state(stack, "second", "Ready")
    assert stack.adapters_status()["second"]["source"] == SECOND_V2["source"]
    assert pod.pid() == pid


def test_remove_the_first_the_second_still_answers(stack: LoraStack) -> None:
    pod = pod_of(stack)
    pid = pod.pid()
    stack.patch_lora([SECOND_V2])
    wait_for(lambda: "first" not in pod.models(), timeout=60, what="the first adapter unloaded")
    assert not pod.answers("first")
    assert pod.answers("second")
    wait_for(lambda: "first" not in stack.adapters_status(), what="first gone from the status")
    assert pod.pid() == pid


def test_bad_adapters_fail_with_the_reason_and_the_others_keep_serving(stack: LoraStack) -> None:
    pod = pod_of(stack)
    pid = pod.pid()
    stack.patch_lora([SECOND_V2, OTHER_BASE, TOO_BIG])
    other = wait_state(stack, "other-base", "Failed", "0/1")
    # vLLM's own message (it compares shapes, not names), with the agent's note on the base.
    assert "The size of tensor a (128) must match the size of tensor b (256)" in other["error"]
    too_big = wait_state(stack, "too-big", "Failed", "0/1")
    assert too_big["error"].startswith("rank 16 is above spec.lora.maxRank 8")  # never sent
    assert wait_state(stack, "second", "Ready")["source"] == SECOND_V2["source"]
    assert pod.answers("second") and pod.answers("smollm3")
    models = pod.models()
    assert "other-base" not in models and "too-big" not in models
    condition = next(
        c for c in stack.serve()["status"]["conditions"] if c["type"] == "AdaptersReady"
    )
    assert condition["status"] == "False" and condition["reason"] == "AdapterFailed"
    assert stack.serve()["status"]["phase"] == "Ready"
    assert pod.pid() == pid


def test_the_service_path_cannot_manage_adapters_the_spec_path_can(stack: LoraStack) -> None:
    pod = pod_of(stack)
    service = f"http://{non_loopback_address()}:{pod.vllm.port}"
    assert pod.answers("second", base_url=service)  # the Service reaches the API
    token = pod.token_file.read_text()
    adapter = str(pod.adapters_dir / "pvc" / "adapters" / ADAPTER_NAME)
    load = {"lora_name": "sneaky", "lora_path": adapter}
    for headers in ({}, {"X-Smolserve-Agent-Token": token}):
        for path, body in (
            ("/v1/load_lora_adapter", load),
            ("/v1/unload_lora_adapter", {"lora_name": "second"}),
            ("/adapters", {"name": "sneaky", "src": adapter}),
        ):
            code, text = http("POST", service + path, body, headers)
            assert code == 403, (path, headers, text)
            assert "reserved for the smolserve agent" in json.loads(text)["error"]["message"]
        code, _ = http("DELETE", service + "/adapters/second", None, headers)
        assert code == 403
    # On loopback, without the pod's token (a mesh's sidecar delivers from loopback): refused.
    code, text = http("POST", pod.vllm.base_url + "/v1/load_lora_adapter", load)
    assert code == 403 and "token" in text
    assert "sneaky" not in pod.models() and pod.answers("second")
    # The spec-driven path works: the operator → the agent → loopback with the token.
    stack.patch_lora([SECOND_V2, SPEC_DRIVEN])
    wait_for(lambda: pod.answers("spec-driven"), timeout=60, what="the spec-driven load")


def test_a_failed_load_is_retried_with_backoff(stack: LoraStack) -> None:
    """An adapter whose files are not there yet (a copy into the claim still running) fails,
    and loads once they are, with no spec change."""
    pod = pod_of(stack)
    late = stack.claim / "late"
    assert not late.exists()
    stack.patch_lora([SECOND_V2, SPEC_DRIVEN, {"name": "late", "source": "pvc://adapters/late"}])
    failed = wait_state(stack, "late", "Failed", "0/1")
    assert failed["error"].startswith("no adapter_config.json in ")
    shutil.copytree(stack.claim / ADAPTER_NAME, late)
    wait_state(stack, "late", "Ready")
    assert pod.answers("late") and pod.answers("second")


def test_a_restarted_vllm_gets_the_current_set_before_the_pod_is_ready(stack: LoraStack) -> None:
    """A crash: vLLM restarts in the same pod, the agent keeps running; the pod takes no traffic
    until the agent has loaded the current set into the new process."""
    pod = pod_of(stack)
    wait_state(stack, "late", "Ready")
    wanted = {name for name, a in stack.adapters_status().items() if a["state"] == "Ready"}
    assert wanted == {"second", "spec-driven", "late"}
    pod.vllm.stop()
    wait_for(lambda: not pod.agent_ready(), timeout=30, what="the pod unready")
    pod.vllm.start()  # a new process, healthy: it serves no adapter yet
    wait_for(pod.agent_ready, timeout=60, what="the pod ready again")
    served = {name for name, m in pod.models().items() if m.get("parent")}
    assert served == wanted
    assert all(pod.answers(name) for name in wanted)
    wait_state(stack, "second", "Ready")
