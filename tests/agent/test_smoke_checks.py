"""The battery's judgement, offline: its prompt checks on prompts rendered exactly as vLLM
renders them (transformers, the test-kit tokenizer), and its reading of vLLM's answers.
The battery against real servers is tests/vllm/test_smoke.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from smolserve.agent.smoke import (
    ANSWER,
    FORCED,
    TOOLS,
    WEATHER_CALL,
    Outcome,
    forced_problem,
    history_messages,
    history_problems,
    outcome_of,
    outcome_of_stream,
    regex_literal,
    think_state,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vllm"))
from vpool import drop_tool_calls


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from smolserve.template import load_tokenizer
    from smolserve.testkit import build_tokenizer

    return load_tokenizer(str(build_tokenizer(tmp_path_factory.mktemp("tok") / "t")))


def prompt(tokenizer, variant: str, thinking: bool, edit=None) -> str:
    from smolserve.template import generate_template, render_prompt

    text = generate_template(tokenizer, variant).text
    text = edit(text) if edit else text
    return render_prompt(text, tokenizer, history_messages(), tools=TOOLS, enable_thinking=thinking)


@pytest.mark.parametrize("thinking", [False, True])
def test_the_fixed_templates_prompt_passes(tokenizer, thinking: bool) -> None:
    rendered = prompt(tokenizer, "fixed", thinking)
    assert history_problems(rendered) == (None, None)
    assert think_state(rendered) == ("open" if thinking else "closed")


def test_the_stock_template_loses_calls_and_results(tokenizer) -> None:
    calls, results = history_problems(prompt(tokenizer, "stock", False))
    assert "get_weather" in calls and "get_local_time" in calls
    assert results is not None and "14:05" in results


def test_a_template_that_drops_tool_calls_loses_only_them(tokenizer) -> None:
    calls, results = history_problems(prompt(tokenizer, "fixed", False, drop_tool_calls))
    assert calls is not None and results is None


def test_answers_are_read_from_both_shapes() -> None:
    call = {"function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
    full = {
        "choices": [
            {
                "message": {"content": "\n", "reasoning": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    events = [
        {"choices": [{"delta": {"reasoning": "  "}}]},
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "function": {"name": "get_weather", "arguments": '{"city": '},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        },
    ]
    want = Outcome(None, None, (("get_weather", {"city": "Paris"}),), "tool_calls")
    assert outcome_of(full) == want == outcome_of_stream(events)
    tool_call = next(f for f in FORCED if f.tool_call and not f.thinking and not f.stream)
    assert forced_problem(tool_call, want) is None


def test_a_wrong_answer_says_what_was_wanted_and_what_came() -> None:
    answer = next(f for f in FORCED if not f.tool_call and not f.thinking and not f.stream)
    problem = forced_problem(answer, Outcome(None, ANSWER, (), "stop"))
    assert problem == (
        f"want content {ANSWER!r}, want no reasoning; got content=None "
        f"reasoning={ANSWER!r} tool_calls=[] finish_reason='stop'"
    )


def test_the_forced_text_is_matched_literally() -> None:
    import re

    text = f"<tool_call>\n{json.dumps(WEATHER_CALL)}\n</tool_call>"
    assert re.fullmatch(regex_literal(text), text)
    assert not re.fullmatch(regex_literal(text), text.replace("Paris", "Rome"))
