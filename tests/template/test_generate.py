"""generate_template: the three variants, golden prompts, byte-identity with stock, revisions."""

from __future__ import annotations

import pytest

from smolserve.errors import UsageError
from smolserve.template import (
    FROZEN_DATE,
    VARIANTS,
    generate_template,
    read_token_map,
    render_prompt,
)
from smolserve.template.battery import TOOLS, battery
from smolserve.template.verify import verify_template
from smolserve.testkit import stock_template_text

from .goldens import GOLDEN_CASES, GOLDEN_DIR, render_golden

STOCK = stock_template_text()


def test_variants_constant() -> None:
    assert VARIANTS == ("fixed", "seed", "stock")


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_prompts(name: str, any_testkit_tokenizer) -> None:
    prompt = render_golden(name, any_testkit_tokenizer)
    assert prompt == (GOLDEN_DIR / f"{name}.txt").read_text(encoding="utf-8")


def test_stock_variant_is_the_tokenizer_template(testkit_tokenizer) -> None:
    generated = generate_template(testkit_tokenizer, "stock")
    assert generated.text == testkit_tokenizer.chat_template == STOCK
    assert generated.sha256 == generated.stock_sha256


def _no_tool_history_cases(tokenizer) -> list:
    """Battery conversations without tool history, plus a few header-only corner cases."""
    cases = [
        (c.messages, c.tools, c.enable_thinking, c.add_generation_prompt, c.mode)
        for c in battery(read_token_map(tokenizer))
        if c.reply is None
        and not any(m["role"] == "tool" or m.get("tool_calls") for m in c.messages)
    ]
    override = [
        {"role": "system", "content": "/system_override Hi"},
        {"role": "user", "content": "x"},
    ]
    cases += [
        (override, None, None, True, "think"),
        (override, TOOLS, False, False, "no_think"),
        ([{"role": "user", "content": "x"}], None, True, False, "think"),
        ([{"role": "user", "content": None}], TOOLS, False, True, "no_think"),
    ]
    assert len(cases) >= 10
    return cases


def test_fixed_equals_stock_without_tool_history_except_think_prompt(any_testkit_tokenizer) -> None:
    tokenizer = any_testkit_tokenizer
    tm = read_token_map(tokenizer)
    fixed = generate_template(tokenizer, "fixed").text
    for messages, tools, thinking, prompt, mode in _no_tool_history_cases(tokenizer):
        kwargs = dict(tools=tools, enable_thinking=thinking, add_generation_prompt=prompt)
        stock_prompt = render_prompt(STOCK, tokenizer, messages, today=FROZEN_DATE, **kwargs)
        fixed_prompt = render_prompt(fixed, tokenizer, messages, today=FROZEN_DATE, **kwargs)
        if prompt and mode == "think":
            assert fixed_prompt == stock_prompt + tm.think_open.text + "\n"
        else:
            assert fixed_prompt == stock_prompt


def test_seed_differs_from_fixed_only_in_the_no_think_prompt(testkit_tokenizer) -> None:
    fixed = generate_template(testkit_tokenizer, "fixed").text
    seed = generate_template(testkit_tokenizer, "seed").text
    for case in battery(read_token_map(testkit_tokenizer)):
        kwargs = dict(tools=case.tools, enable_thinking=case.enable_thinking, today=FROZEN_DATE)
        a = render_prompt(fixed, testkit_tokenizer, case.messages, **kwargs)
        b = render_prompt(seed, testkit_tokenizer, case.messages, **kwargs)
        if case.mode == "no_think":
            assert a == b + "<think>\n\n</think>\n"
        else:
            assert a == b


def test_arguments_as_dict_or_json_string_render_alike(testkit_tokenizer) -> None:
    fixed = generate_template(testkit_tokenizer, "fixed").text

    def prompt(arguments) -> str:
        call = {"type": "function", "function": {"name": "f", "arguments": arguments}}
        messages = [{"role": "user", "content": "u"}, {"role": "assistant", "tool_calls": [call]}]
        return render_prompt(fixed, testkit_tokenizer, messages, add_generation_prompt=False)

    as_dict = prompt({"q": "<b>&amp;</b>", "n": [1, {"x": None}]})
    assert as_dict == prompt('{"q": "<b>&amp;</b>", "n": [1, {"x": null}]}')
    assert '{"name": "f", "arguments": {"q": "<b>&amp;</b>", "n": [1, {"x": null}]}}' in as_dict


def test_none_and_list_content_never_print_none(testkit_tokenizer) -> None:
    fixed = generate_template(testkit_tokenizer, "fixed").text
    call = {"type": "function", "function": {"name": "f", "arguments": None}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": None},
        {"role": "assistant", "content": None},
    ]
    for thinking in (True, False):
        prompt = render_prompt(fixed, testkit_tokenizer, messages, enable_thinking=thinking)
        conversation = prompt.split("<|im_end|>\n", 1)[1]
        assert "None" not in conversation
        assert '{"name": "f", "arguments": {}}' in conversation


def test_generated_loop_uses_tilde_and_token_map(testkit_tokenizer) -> None:
    text = generate_template(testkit_tokenizer, "fixed").text
    start = text.index("{%- for message in messages -%}")
    ours = text[start : text.index("{%- set content = message.content", start)]  # the stock body
    assert " + " not in ours
    assert '"<tool_response>"' in ours and '"<tool_call>"' in ours


def _open_system_turn_revision() -> str:
    """A revision of the stock template that closes the system turn only when tools are given."""
    closing = '{{- "<|im_end|>\\n" -}}\n{%- for message in messages -%}'
    assert closing in STOCK
    return STOCK.replace(
        closing,
        '{%- if xml_tool_list -%}\n  {{- "<|im_end|>\\n" -}}\n{%- endif -%}\n'
        "{%- for message in messages -%}",
    )


def test_close_system_turn_option(testkit_tokenizer) -> None:
    revision = _open_system_turn_revision()
    ask = [{"role": "user", "content": "x"}]
    stock_open = render_prompt(revision, testkit_tokenizer, ask, enable_thinking=False)
    assert "None\n\n<|im_start|>user" in stock_open  # the turn is left open without tools

    closed = generate_template(testkit_tokenizer, stock_template=revision).text
    prompt = render_prompt(closed, testkit_tokenizer, ask, enable_thinking=False)
    assert prompt == stock_open.replace("None\n\n<|im_start|>", "None\n\n<|im_end|>\n<|im_start|>")
    with_tools = render_prompt(closed, testkit_tokenizer, ask, tools=TOOLS, enable_thinking=False)
    assert with_tools.count("<|im_end|>\n<|im_start|>user") == 1  # closed once, not twice
    assert verify_template(closed, testkit_tokenizer).ok

    kept = generate_template(testkit_tokenizer, close_system_turn=False, stock_template=revision)
    assert render_prompt(kept.text, testkit_tokenizer, ask, enable_thinking=False) == stock_open
    report = verify_template(kept.text, testkit_tokenizer)
    assert report.ok  # an open system turn is a warning, not a failure
    assert {w.check for w in report.warnings} == {"system-turn"}


def test_revision_that_reads_only_xml_tools_gets_the_request_tools(testkit_tokenizer) -> None:
    """Another revision prints only `xml_tools`, while vLLM passes the request's `tools`."""
    old = "{%- set xml_tool_list = tools if tools else xml_tools -%}"
    assert old in STOCK
    revision = STOCK.replace(old, "{%- set xml_tool_list = xml_tools -%}")
    ask = [{"role": "user", "content": "x"}]
    assert "get_weather" not in render_prompt(revision, testkit_tokenizer, ask, tools=TOOLS)
    assert verify_template(revision, testkit_tokenizer).failed_checks() >= {"tools-offered"}

    generated = generate_template(testkit_tokenizer, stock_template=revision)
    assert any("xml_tools" in note for note in generated.notes)
    prompt = render_prompt(generated.text, testkit_tokenizer, ask, tools=TOOLS)
    assert prompt == render_prompt(generated.text, testkit_tokenizer, ask, xml_tools=TOOLS)
    assert '"name": "get_weather"' in prompt
    assert verify_template(generated.text, testkit_tokenizer).ok
    # Without tools nothing changes: still byte-identical to the revision.
    plain = render_prompt(generated.text, testkit_tokenizer, ask, enable_thinking=False)
    assert plain == render_prompt(revision, testkit_tokenizer, ask, enable_thinking=False)


def _block_tags_without_whitespace_control(text: str) -> str:
    """Another plausible hub revision: block tags rely on trim_blocks/lstrip_blocks instead of
    '-' markers, the tools are printed with `| string`, and the comments are gone."""
    text = (
        text.replace("{%- ", "{% ").replace(" -%}", " %}").replace("tool | tojson", "tool | string")
    )
    return text[text.index("#}") + 3 :]


def test_other_revision_shape_is_derived_and_verified(testkit_tokenizer) -> None:
    revision = _block_tags_without_whitespace_control(STOCK)
    assert revision != STOCK
    ask = [{"role": "user", "content": "x"}]
    fixed = generate_template(testkit_tokenizer, stock_template=revision).text
    for thinking in (True, False):
        stock_prompt = render_prompt(revision, testkit_tokenizer, ask, enable_thinking=thinking)
        fixed_prompt = render_prompt(fixed, testkit_tokenizer, ask, enable_thinking=thinking)
        assert fixed_prompt == stock_prompt + ("<think>\n" if thinking else "")
    report = verify_template(fixed, testkit_tokenizer)
    assert report.ok, report.format()


def _replaced(old: str, new: str, count: int = 1) -> str:
    assert old in STOCK
    return STOCK.replace(old, new, count)


# name -> (a stock template of another shape, what the refusal says)
UNRECOGNIZED = {
    "loop variable renamed": (
        _replaced(
            "{%- for message in messages -%}", "{%- for m in messages -%}{%- set message = m -%}"
        ),
        "one top-level 'for message in messages' loop",
    ),
    "generation prompt nested": (
        _replaced(
            "{%- if add_generation_prompt -%}", "{%- if true -%}{%- if add_generation_prompt -%}"
        )
        + "{%- endif -%}",
        "'if add_generation_prompt' block",
    ),
    "no mode variable": (
        _replaced('"/think"', '"THINK"', -1).replace('"/no_think"', '"NO_THINK"'),
        "one reasoning-mode variable",
    ),
    "text after the prompt": (STOCK + "trailing text", "only whitespace may sit"),
}


@pytest.mark.parametrize("name", sorted(UNRECOGNIZED))
def test_unrecognized_structure_is_refused(name: str, testkit_tokenizer) -> None:
    broken, message = UNRECOGNIZED[name]
    with pytest.raises(UsageError, match="stock chat template not recognized") as info:
        generate_template(testkit_tokenizer, stock_template=broken)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_variant(testkit_tokenizer) -> None:
    with pytest.raises(UsageError, match="unknown template variant 'best'"):
        generate_template(testkit_tokenizer, "best")
