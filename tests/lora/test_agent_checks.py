"""The agent's checks before a load, its backoff, and how it reads vLLM's errors (pure).

The loop itself (``AdapterSync``) runs against a real vLLM in tests/vllm/test_lora_dynamic.py.
"""

from __future__ import annotations

import json

import pytest

from smolserve.agent import adapters as aa
from smolserve.agent.vllm import VllmError


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"peft_type": "LORA", "r": 8}, None),
        ({"r": 16}, "rank 16 is above spec.lora.maxRank 8"),
        ({"r": 8, "rank_pattern": {"q_proj": 32}}, "rank 32 is above spec.lora.maxRank 8"),
        ({"peft_type": "IA3"}, "not a LoRA adapter (peft_type IA3)"),
        ({"peft_type": "LORA"}, "adapter_config.json has no rank (r)"),
    ],
)
def test_bounds(config, problem):
    found = aa.bounds_problem(config, max_rank=8)
    assert (found is None) if problem is None else found.startswith(problem)


def test_reading_the_adapter_config(tmp_path):
    with pytest.raises(aa.AdapterError, match=r"no adapter_config\.json in"):
        aa.read_adapter_config(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text("[1]")
    with pytest.raises(aa.AdapterError, match="not a JSON object"):
        aa.read_adapter_config(str(tmp_path))
    (tmp_path / "adapter_config.json").write_text('{"r": 4}')
    assert aa.read_adapter_config(str(tmp_path)) == {"r": 4}


def test_a_base_model_note_only_when_the_adapter_names_another_one():
    assert aa.base_model_note({"base_model_name_or_path": "org/m"}, "org/m") == ""
    assert aa.base_model_note({}, "org/m") == ""
    note = aa.base_model_note({"base_model_name_or_path": "org/other"}, "org/m")
    assert note == " (the adapter was trained on org/other; this SmolServe serves org/m)"


def test_backoff_doubles_up_to_five_minutes():
    assert [aa.backoff_seconds(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert aa.backoff_seconds(30) == 300


def test_vllms_own_message_is_taken_out_of_the_http_error():
    body = {"error": {"message": "LoRA rank 16 is greater than max_lora_rank 8.", "code": 500}}
    exc = VllmError(f"POST /v1/load_lora_adapter: HTTP 500: {json.dumps(body)}", 500)
    assert aa.vllm_message(exc) == "LoRA rank 16 is greater than max_lora_rank 8."
    unreachable = VllmError("POST /v1/load_lora_adapter: [Errno 111] Connection refused")
    assert aa.vllm_message(unreachable) == str(unreachable)
