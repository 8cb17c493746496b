"""The test kit's stock-equivalent template behaves as SmolLM3's stock template is documented to
(shared/reference/smollm3-and-vllm.md §2), both bugs included."""

from __future__ import annotations

from smolserve.template import FROZEN_DATE, render_prompt
from smolserve.testkit import stock_template_text

STOCK = stock_template_text()
ASK = {"role": "user", "content": "Hi"}
TOOL = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}


def render(tokenizer, messages, **kwargs) -> str:
    return render_prompt(STOCK, tokenizer, messages, today=FROZEN_DATE, **kwargs)


def test_header_layout_no_think(testkit_tokenizer) -> None:
    prompt = render(testkit_tokenizer, [ASK], enable_thinking=False)
    assert prompt == (
        "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
        "Today Date: 15 January 2026\nReasoning Mode: /no_think\n\n"
        "## Custom Instructions\n\n"
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n"
        "## Tools\n\n### XML Tools\n\nNone\n\n### Python Tools\n\nNone\n\n<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n"
    )


def test_think_default_text_contains_think_tags_and_bare_prompt(testkit_tokenizer) -> None:
    prompt = render(testkit_tokenizer, [ASK])
    assert "Reasoning Mode: /think\n" in prompt
    assert "<think> Thought section </think>" in prompt
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_system_flags_override_kwarg_and_are_removed(testkit_tokenizer) -> None:
    system = {"role": "system", "content": "Be terse. /no_think"}
    prompt = render(testkit_tokenizer, [system, ASK], enable_thinking=True)
    assert "Reasoning Mode: /no_think" in prompt
    assert "## Custom Instructions\n\nBe terse.\n\n" in prompt
    system = {"role": "system", "content": "/think Be terse."}
    assert "Reasoning Mode: /think" in render(
        testkit_tokenizer, [system, ASK], enable_thinking=False
    )


def test_system_override_replaces_the_header(testkit_tokenizer) -> None:
    system = {"role": "system", "content": "/system_override Only this."}
    prompt = render(testkit_tokenizer, [system, ASK])
    assert prompt.startswith("<|im_start|>system\nOnly this.<|im_end|>\n<|im_start|>user\n")


def test_tools_block_is_json_one_per_line(testkit_tokenizer) -> None:
    prompt = render(testkit_tokenizer, [ASK], tools=[TOOL, TOOL])
    assert '<tools>\n{"type": "function", "function": {"name": "f"' in prompt
    assert prompt.count('{"type": "function"') == 2


def test_tools_section_ends_with_the_instruction_and_no_example_block(testkit_tokenizer) -> None:
    """As on the hub: one sentence ending in `XML tags.`, no `<tool_call>` example after it, so
    a prompt's only tool-call tags are the conversation's own."""
    prompt = render(testkit_tokenizer, [ASK], tools=[TOOL])
    assert (
        "</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags.\n\n### Python Tools\n\n"
    ) in prompt
    assert prompt.count("<tool_call>") == 1 and prompt.count("</tool_call>") == 1


def test_bug_1_tool_results_are_plain_user_turns(testkit_tokenizer) -> None:
    messages = [ASK, {"role": "tool", "content": "42"}]
    prompt = render(testkit_tokenizer, messages, add_generation_prompt=False)
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>user\n42<|im_end|>\n")
    assert "<tool_response>" not in prompt


def test_bug_2_tool_calls_are_dropped(testkit_tokenizer) -> None:
    call = {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    messages = [ASK, {"role": "assistant", "content": None, "tool_calls": [call]}]
    prompt = render(testkit_tokenizer, messages, add_generation_prompt=False, enable_thinking=True)
    assert prompt.endswith("<|im_start|>assistant\n<|im_end|>\n")
    assert '"name": "f"' not in prompt
