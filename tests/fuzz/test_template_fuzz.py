"""Fuzzed template-engine inputs: messages, tools and template text for ``render_prompt`` and
``smolserve template render``, template text for ``verify`` and ``generate --from-template``.
Each gives a result, or one clear line (``smolserve: error: …``) and the documented exit code
(2: bad input, 1: the template failed); never a traceback. The test kit's tokenizer stands in
for the hub."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smolserve.cli import main
from smolserve.errors import SmolserveError
from smolserve.template import generate_template, render_prompt
from smolserve.template.render import syntax_error
from smolserve.testkit import stock_template_text

from .budget import examples
from .strategies import JSON, ODD_TEXT

ROLES = st.sampled_from(["system", "user", "assistant", "tool", "developer", ""]) | st.text(
    max_size=8
)
TOOL_CALL = st.fixed_dictionaries(
    {
        "type": st.just("function") | ODD_TEXT,
        "function": st.fixed_dictionaries(
            {"name": ODD_TEXT}, optional={"arguments": JSON | st.text(max_size=30)}
        )
        | JSON,
    },
    optional={"id": st.text(max_size=10)},
)
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES},
    optional={
        "content": ODD_TEXT | JSON,
        "tool_calls": st.lists(TOOL_CALL, max_size=2) | JSON,
        "reasoning_content": ODD_TEXT,
        "name": st.text(max_size=10),
        "tool_call_id": st.text(max_size=10),
    },
)
# What render_prompt takes (the CLI checks a messages file holds that), and what a file may hold.
MESSAGES = st.lists(MESSAGE, min_size=1, max_size=4)
MESSAGES_FILE = MESSAGES | JSON
# A tool schema: OpenAI's shape, with odd names, descriptions and parameter schemas.
TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function") | ODD_TEXT,
        "function": st.fixed_dictionaries(
            {"name": ODD_TEXT},
            optional={
                "description": ODD_TEXT,
                "parameters": st.fixed_dictionaries(
                    {"type": st.just("object") | ODD_TEXT},
                    optional={
                        "properties": st.dictionaries(st.text(max_size=10), JSON, max_size=3),
                        "required": JSON,
                    },
                )
                | JSON,
            },
        )
        | JSON,
    }
)
TOOLS = st.none() | st.lists(TOOL, max_size=3) | JSON
# Jinja a user may write: errors at parse time, at render time, and Python's own (1/0,
# recursion) that escape Jinja's error types.
SNIPPETS = st.sampled_from(
    [
        "{{ 1/0 }}",
        "{{ x.y.z }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{{ raise_exception('first\\nsecond') }}",
        "{{ raise_exception('') }}",
        "{% for m in messages %}{{ m.content[0] }}{% endfor %}",
        "{{ messages[0].content | int }}",
        "{{ messages[0]['role'] + 1 }}",
        "{{ messages[99].content }}",
        "{{ tools | tojson }}",
        "{{ tools[0].function.parameters.properties | items | list }}",
        "{{ '%d' % 'x' }}",
        "{{ strftime_now('%Q') }}",
        "{{ [].__class__ }}",
        "{% set ns = namespace() %}{{ ns.a.b }}",
        "{{ messages | map(attribute='content') | join }}",
        "{% if %}",
        "{{",
        "{%",
        "{% endfor %}",
        "{# open comment",
        "{{ (" * 400 + "1" + ")" * 400 + " }}",
    ]
)


@st.composite
def templates(draw: st.DrawFn, base: str) -> str:
    """``base`` (or nothing, or random text) with up to three snippets put in or cut out."""
    text = draw(st.sampled_from([base, "", "{{ messages }}"]) | st.text(max_size=60))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(SNIPPETS | st.text(max_size=20)) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 200)) :]
    return text


def one_line_or_result(code: int, out: str, err: str, *, failed: int = 1) -> None:
    """Exit 0 with a result (an empty template renders nothing); or ``failed``/2 with one line
    on stderr."""
    if code == 0:
        assert not err.strip(), err
        return
    assert code in (failed, 2), (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smolserve: error: "), err


def run_cli(*args: str) -> tuple[int, str, str]:
    """The real CLI entry point in this process (an exception escaping it fails the test)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["template", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fixed_text(testkit_tokenizer: Any) -> str:
    return generate_template(testkit_tokenizer, "fixed").text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-template")


def test_render_prompt(testkit_tokenizer: Any, fixed_text: str) -> None:
    """The functions under ``render``: ``syntax_error`` answers, ``render_prompt`` renders or
    raises one ``SmolserveError`` line."""

    @settings(max_examples=examples(80))
    @example(template="{{ 1/0 }}", messages=[{"role": "user"}], tools=None, thinking=None)
    @example(
        template="{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        messages=[{"role": "user", "content": "hi"}],
        tools=None,
        thinking=True,
    )
    @given(
        template=templates(fixed_text),
        messages=MESSAGES,
        tools=TOOLS,
        thinking=st.none() | st.booleans(),
    )
    def render(template: str, messages: Any, tools: Any, thinking: bool | None) -> None:
        problem = syntax_error(template)
        assert problem is None or "\n" not in problem
        try:
            prompt = render_prompt(
                template, testkit_tokenizer, messages, tools=tools, enable_thinking=thinking
            )
        except SmolserveError as error:
            assert "\n" not in str(error) and str(error), repr(str(error))
            return
        assert isinstance(prompt, str)

    render()


def test_render_command(testkit_tokenizer_dir: Path, fixed_text: str, workdir: Path) -> None:
    """``smolserve template render`` with fuzzed files: exit 0 and the prompt, or one line and
    exit 2 (bad input) or 1 (the template failed to render)."""
    paths = {name: workdir / f"render-{name}" for name in ("template", "messages", "tools")}

    @settings(max_examples=examples(12))
    @example(template="{{ messages }}", messages=b"[" * 100_000, tools=None)
    @example(template="{{ messages }}", messages=b"\xff\xfe", tools=b"[]")
    @example(template="{{ messages }}", messages=b'[{"role": "user"}]', tools=b"{" * 100_000)
    @given(
        template=templates(fixed_text),
        messages=MESSAGES_FILE.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40),
        tools=st.none() | TOOLS.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40),
    )
    def render(template: str, messages: bytes, tools: bytes | None) -> None:
        paths["template"].write_text(template, encoding="utf-8")
        paths["messages"].write_bytes(messages)
        args = ["render", "--template", str(paths["template"])]
        args += ["--tokenizer", str(testkit_tokenizer_dir), "--messages", str(paths["messages"])]
        if tools is not None:
            paths["tools"].write_bytes(tools)
            args += ["--tools", str(paths["tools"])]
        one_line_or_result(*run_cli(*args))

    render()


def test_verify_and_generate_commands(testkit_tokenizer_dir: Path, workdir: Path) -> None:
    """``verify --template`` and ``generate --from-template`` with fuzzed template text: the
    report (exit 0 or 1), the generated template, or one line and exit 2 or 1."""
    template, out = workdir / "verify.jinja", workdir / "out.jinja"

    @settings(max_examples=examples(4))
    @example(text="{{ 1/0 }}")
    @given(text=templates(stock_template_text()))
    def verify_and_generate(text: str) -> None:
        template.write_text(text, encoding="utf-8")
        tokenizer = ["--tokenizer", str(testkit_tokenizer_dir)]
        code, report, err = run_cli("verify", "--template", str(template), *tokenizer)
        if code == 2 or err:
            one_line_or_result(code, report, err)
        else:
            assert code in (0, 1)
            assert report.strip().splitlines()[-1].startswith(("result: PASS", "result: FAIL"))
        code, summary, err = run_cli(
            "generate", "--from-template", str(template), "--out", str(out), *tokenizer
        )
        one_line_or_result(code, summary, err)

    verify_and_generate()
