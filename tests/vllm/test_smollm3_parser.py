"""The smollm3 reasoning parser on its own (fast; no server): the mode decision, the prompt scan,
both extraction paths, and that the file stays loadable from a ConfigMap (vllm + stdlib only).
The served behaviour is proven by test_vllm_stack.py."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

PLUGIN = (
    Path(__file__).resolve().parents[2]
    / "operator"
    / "smolserve"
    / "plugins"
    / "smollm3_reasoning_parser.py"
)

pytest.importorskip("vllm")
from smolserve.plugins import smollm3_reasoning_parser as plugin  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    from smolserve.testkit import build_tokenizer

    return AutoTokenizer.from_pretrained(str(build_tokenizer(tmp_path_factory.mktemp("tok"))))


def make(tokenizer, **template_kwargs) -> plugin.SmolLM3ReasoningParser:
    return plugin.SmolLM3ReasoningParser(tokenizer, chat_template_kwargs=template_kwargs)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def system_turn(mode: str, extra: str = "") -> str:
    system = f"<|im_start|>system\nReasoning Mode: {mode}\n{extra}<|im_end|>\n"
    return system + "<|im_start|>user\nhi<|im_end|>\n"


def test_plugin_imports_only_vllm_and_stdlib() -> None:
    tree = ast.parse(PLUGIN.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - {"vllm"} <= set(sys.stdlib_module_names)


def test_registered_under_smollm3() -> None:
    from vllm.reasoning import ReasoningParserManager

    assert ReasoningParserManager.get_reasoning_parser("smollm3") is plugin.SmolLM3ReasoningParser


@pytest.mark.parametrize(
    ("kwarg", "system", "thinking"),
    [
        (None, None, True),
        (True, None, True),
        (False, None, False),
        (None, "Be brief. /no_think", False),
        (True, "Be brief. /no_think", False),  # the system flag overrides the kwarg
        (False, "Be brief. /think", True),
        (False, "Be brief.", False),
        (None, "/think and /no_think", False),  # /no_think is checked first, like the template
    ],
)
def test_decides_mode_like_the_template(kwarg, system, thinking) -> None:
    assert plugin.decide_thinking(kwarg, system) is thinking


@pytest.mark.parametrize(
    ("prompt", "kwarg", "ended"),
    [
        # the generation prompt's own think tags decide
        (system_turn("/think") + "<|im_start|>assistant\n<think>\n", None, False),
        (system_turn("/no_think") + "<|im_start|>assistant\n<think>\n\n</think>\n", None, True),
        # a bare generation prompt: the kwarg, then the system turn's flags
        (system_turn("/no_think") + "<|im_start|>assistant\n", None, True),
        (system_turn("/think") + "<|im_start|>assistant\n", None, False),
        ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", False, True),
        # a closed think block quoted in the system text does not end reasoning
        (
            system_turn("/think", "Answer as <think> Thought </think> Solution.")
            + "<|im_start|>assistant\n",
            None,
            False,
        ),
        # earlier turns' closed blocks do not count; the generation prompt opened a new one
        (
            system_turn("/think")
            + "<|im_start|>assistant\n<think>\nx\n</think>\nok<|im_end|>\n"
            + "<|im_start|>user\nmore<|im_end|>\n<|im_start|>assistant\n<think>\n",
            None,
            False,
        ),
    ],
)
def test_reasoning_end_from_prompt(tokenizer, prompt, kwarg, ended) -> None:
    kwargs = {} if kwarg is None else {"enable_thinking": kwarg}
    assert make(tokenizer, **kwargs).is_reasoning_end(ids(tokenizer, prompt)) is ended


def request(system: str | None = None) -> SimpleNamespace:
    messages = [{"role": "user", "content": "hi"}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return SimpleNamespace(messages=messages)


@pytest.mark.parametrize(
    ("output", "kwargs", "system", "want"),
    [
        ("Plan.\n</think>\nAnswer.", {}, None, ("Plan.\n", "\nAnswer.")),
        ("<think>\nPlan.\n</think>\nAnswer.", {}, None, ("\nPlan.\n", "\nAnswer.")),
        ("Still thinking", {"enable_thinking": True}, None, ("Still thinking", None)),
        ("Answer.", {"enable_thinking": False}, None, (None, "Answer.")),
        ("Answer.", {}, "Be brief /no_think", (None, "Answer.")),
        (
            '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>',
            {"enable_thinking": True},
            "/no_think",
            (None, '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'),
        ),
    ],
)
def test_non_streaming_split(tokenizer, output, kwargs, system, want) -> None:
    assert make(tokenizer, **kwargs).extract_reasoning(output, request(system)) == want


def test_system_message_as_text_parts(tokenizer) -> None:
    parts = {"role": "system", "content": [{"type": "text", "text": "Be brief. /no_think"}]}
    req = SimpleNamespace(messages=[parts, {"role": "user", "content": "hi"}])
    assert make(tokenizer).extract_reasoning("Answer.", req) == (None, "Answer.")


def test_streaming_split_token_by_token(tokenizer) -> None:
    parser = make(tokenizer)
    text = "<think>\nPlan it.\n</think>\nDone."
    token_ids = ids(tokenizer, text)
    reasoning, content = [], []
    previous: list[int] = []
    for token in token_ids:
        delta_text = tokenizer.decode([token])
        delta = parser.extract_reasoning_streaming(
            tokenizer.decode(previous),
            tokenizer.decode([*previous, token]),
            delta_text,
            previous,
            [*previous, token],
            [token],
        )
        previous.append(token)
        if delta is not None:
            reasoning.append(delta.reasoning or "")
            content.append(delta.content or "")
        if parser.is_reasoning_end_streaming(previous, [token]):
            break
    rest = tokenizer.decode(parser.extract_content_ids(token_ids))
    assert "".join(reasoning) == "\nPlan it.\n"
    assert "".join(content) + rest == "\nDone."


def test_adjust_request_keeps_tags_in_the_text(tokenizer) -> None:
    req = SimpleNamespace(skip_special_tokens=True)
    assert make(tokenizer).adjust_request(req).skip_special_tokens is False


def test_missing_tags_is_one_clear_error() -> None:
    class NoTags:
        def get_vocab(self) -> dict[str, int]:
            return {"a": 0}

    with pytest.raises(RuntimeError, match="no '<think>' token"):
        plugin.SmolLM3ReasoningParser(NoTags())


def test_engine_core_construction_and_end_detection(tokenizer) -> None:
    """The structured-output manager builds the parser as `cls(tokenizer=..., **kwargs)` and asks,
    per decode step, whether the new tokens end reasoning."""
    parser = plugin.SmolLM3ReasoningParser(
        tokenizer=tokenizer, chat_template_kwargs={"enable_thinking": True}
    )
    end = tokenizer.convert_tokens_to_ids("</think>")
    assert parser.is_reasoning_end_streaming([1, 2, end], [end])
    assert not parser.is_reasoning_end_streaming([1, 2, 3], [3])
