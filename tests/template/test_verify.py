"""verify_template: the battery passes on fixed, and fails stock and broken templates for the
documented reasons."""

from __future__ import annotations

import pytest

from smolserve.errors import UsageError
from smolserve.template import generate_template, read_token_map
from smolserve.template.battery import battery
from smolserve.template.verify import CHECKS, verify_template


def test_battery_covers_the_required_conversations(testkit_tokenizer) -> None:
    cases = battery(read_token_map(testkit_tokenizer))
    assert len(cases) >= 25
    assert len({c.name for c in cases}) == len(cases)
    flags = {c.enable_thinking for c in cases}
    assert flags == {None, True, False}
    assert {c.mode for c in cases} == {"think", "no_think"}
    assert any(c.tools is None for c in cases) and any(c.tools for c in cases)
    assert any(not c.add_generation_prompt for c in cases)
    assert any(c.reply for c in cases)
    assert any(
        m["role"] == "system" and "/no_think" in m["content"] for c in cases for m in c.messages
    )
    calls = [tc for c in cases for m in c.messages for tc in m.get("tool_calls", [])]
    assert any(isinstance(tc["function"]["arguments"], str) for tc in calls)
    assert any(isinstance(tc["function"]["arguments"], dict) for tc in calls)
    assert any(len(m.get("tool_calls", [])) > 1 for c in cases for m in c.messages)


def test_fixed_passes(any_testkit_tokenizer) -> None:
    report = verify_template(generate_template(any_testkit_tokenizer).text, any_testkit_tokenizer)
    assert report.ok, report.format()
    assert report.cases >= 25
    assert {r.check for r in report.results} == set(CHECKS)
    assert not report.warnings
    assert report.format().endswith("result: PASS")
    assert report.summary_line().startswith("verification passed")


def test_stock_fails_for_the_documented_reasons(any_testkit_tokenizer) -> None:
    stock = generate_template(any_testkit_tokenizer, "stock").text
    report = verify_template(stock, any_testkit_tokenizer)
    assert not report.ok
    failed = report.failed_checks()
    # Bug 1: tool results rendered as plain user turns; bug 2: tool calls dropped.
    assert {"tool-results", "tool-calls", "turns", "reply-roundtrip"} <= failed
    # The think prompt is bare (no think-tag prefill); the no-think prompt is right.
    prompt_failures = [r for r in report.failures if r.check == "generation-prompt"]
    assert prompt_failures and all(r.detail.startswith("think:") for r in prompt_failures)
    assert "tags" not in failed and "renders" not in failed
    text = report.format()
    assert "rendered as plain user turns" in text
    assert "result: FAIL" in text
    line = report.summary_line()
    assert "\n" not in line
    assert line.startswith("failed checks: ") and "tool-results x" in line and "; first: [" in line


def test_seed_fails_only_the_no_think_prompt_unless_expected(testkit_tokenizer) -> None:
    seed = generate_template(testkit_tokenizer, "seed").text
    report = verify_template(seed, testkit_tokenizer)
    assert report.failed_checks() == {"generation-prompt"}
    assert all(r.detail.startswith("no_think:") for r in report.failures)
    assert verify_template(seed, testkit_tokenizer, prompt_style="seed").ok


def test_python_repr_arguments_fail_the_tool_call_check(testkit_tokenizer) -> None:
    fixed = generate_template(testkit_tokenizer).text
    broken = fixed.replace("(arguments | tojson)", "(arguments | string)")
    assert broken != fixed
    report = verify_template(broken, testkit_tokenizer)
    # A Python repr is not JSON (and prints None for null, which the content check sees).
    assert report.failed_checks() == {"tool-calls", "reply-roundtrip", "content"}
    nones = [r for r in report.failures if r.check == "content"]
    assert [r.case for r in nones] == ["nested-arguments"]


def test_a_template_that_raises_fails_renders(testkit_tokenizer) -> None:
    fixed = generate_template(testkit_tokenizer).text
    broken = fixed.replace(
        '{%- if message.role == "tool" -%}',
        '{%- if message.role == "tool" -%}{{ raise_exception("no tools here") }}',
        1,
    )
    report = verify_template(broken, testkit_tokenizer)
    failing = [r for r in report.failures if r.check == "renders"]
    assert failing and "no tools here" in failing[0].detail


def test_a_syntax_error_is_one_failure_with_its_line(testkit_tokenizer) -> None:
    """Not the same failure once per conversation: the template never gets to render."""
    report = verify_template("{% for m in messages %}\n{{ m.content }\n", testkit_tokenizer)
    assert [(r.case, r.check, r.detail) for r in report.failures] == [
        ("template", "renders", "syntax error on line 2: unexpected '}'")
    ]
    assert report.summary_line() == (
        "failed checks: renders x1; first: [template] renders: syntax error on line 2: "
        "unexpected '}'"
    )


def test_unknown_prompt_style(testkit_tokenizer) -> None:
    with pytest.raises(UsageError, match="unknown prompt style"):
        verify_template("x", testkit_tokenizer, prompt_style="weird")  # type: ignore[arg-type]
