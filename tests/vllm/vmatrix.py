"""The template-by-reasoning-parser matrix: cells, what the model is forced to say, what a correct
stack returns, and how a server's answer is read. Pure logic, except `run_cell` (HTTP).

A cell is (variant, parser, mode, output, streaming). For each, the test asks the server to render
the prompt (`/tokenize` with the messages, then `/detokenize`), decides what SmolLM3 would emit
after that prompt (a think-mode model writes `<think>` itself unless the prompt opened it; a
no-think model answers straight away), forces exactly that text with a structured-outputs regex
and +100 logit bias on the tag ids, and compares the parsed response with the expectation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smolserve.agent.smoke import regex_literal

VARIANTS = ("fixed", "seed", "stock")
PARSERS = ("deepseek_r1", "qwen3", "smollm3", "none")
MODES = ("think", "no_think_kwarg", "no_think_flag")
OUTPUTS = ("answer", "reasoning_answer", "tool_call", "reasoning_tool_call", "second_turn")

MODE_TITLES = {
    "think": "think (kwarg)",
    "no_think_kwarg": "no-think (kwarg)",
    "no_think_flag": "no-think (`/no_think` in system)",
}
OUTPUT_TITLES = {
    "answer": "answer",
    "reasoning_answer": "reasoning + answer",
    "tool_call": "tool call",
    "reasoning_tool_call": "reasoning + tool call",
    "second_turn": "second turn after tool history",
}

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TURN_START = "<|im_start|>"
# <think>, </think>, <tool_call>, </tool_call>: biased so the model emits the tag tokens rather
# than spelling the tag text out of byte pieces.
TAG_IDS = (128002, 128003, 128015, 128016)

SYSTEM = "You are a weather assistant."
QUESTION = "What is the weather in Paris?"
REASONING = "The user wants the weather in Paris."
ANSWER = "It is sunny in Paris."
SECOND_REASONING = "The tool says it is sunny."
SECOND_ANSWER = "It is 21 degrees and sunny."
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
RESULT = '{"temperature": 21, "condition": "sunny"}'
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@dataclass(frozen=True)
class Cell:
    variant: str
    parser: str
    mode: str
    output: str
    stream: bool

    @property
    def key(self) -> str:
        return f"{self.mode}/{self.output}/{'stream' if self.stream else 'full'}"


@dataclass(frozen=True)
class Outcome:
    """A response reduced to what the matrix judges. Strings are stripped; empty means None."""

    content: str | None
    reasoning: str | None
    tool_calls: tuple[tuple[str, str], ...]  # (name, canonical JSON arguments)
    finish_reason: str | None
    history_ok: bool | None = None  # second turn only: the prompt carries the call and result


def applicable(mode: str, output: str) -> bool:
    """Reasoning outputs exist only in think mode: a no-think turn has no reasoning to parse."""
    return mode == "think" or not output.startswith("reasoning")


def cells(variant: str, parser: str) -> Iterator[Cell]:
    for mode in MODES:
        for output in OUTPUTS:
            if applicable(mode, output):
                for stream in (False, True):
                    yield Cell(variant, parser, mode, output, stream)


def tool_call_text(call: Mapping[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


def conversation(mode: str, output: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The request's messages and chat-template kwargs for a cell. Only the flag mode sends a
    system message, so the kwarg modes get the template's default system text (the stock one
    quotes `<think> … </think>` in think mode)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    if mode == "no_think_flag":
        messages.insert(0, {"role": "system", "content": SYSTEM + " /no_think"})
    if output == "second_turn":
        messages += [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": CALL["name"],
                            "arguments": json.dumps(CALL["arguments"]),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
        ]
    kwargs = {"think": {"enable_thinking": True}, "no_think_kwarg": {"enable_thinking": False}}
    return messages, kwargs.get(mode, {})


def generation_tail(prompt: str) -> str:
    """The prompt after its last turn start: the generation prompt the model continues."""
    return prompt.rpartition(TURN_START)[2]


def think_state(prompt: str) -> str:
    """'open' if the generation prompt leaves a think block open, 'closed' if it holds a closed
    one, 'bare' if it has none."""
    tail = generation_tail(prompt)
    opened, closed = tail.rfind(THINK_OPEN), tail.rfind(THINK_CLOSE)
    if opened < 0 and closed < 0:
        return "bare"
    return "closed" if closed > opened else "open"


def forced_output(mode: str, output: str, prompt: str) -> str:
    """What SmolLM3 emits for this cell after `prompt`."""
    state = think_state(prompt)
    thinking = mode == "think"
    if output == "second_turn":
        reasoning, body = (SECOND_REASONING if thinking else ""), SECOND_ANSWER
    else:
        reasoning = REASONING if output.startswith("reasoning") else ""
        body = tool_call_text(CALL) if output.endswith("tool_call") else ANSWER
    if thinking:
        opener = "" if state == "open" else THINK_OPEN + "\n"
        return (
            f"{opener}{reasoning}\n{THINK_CLOSE}\n{body}"
            if reasoning
            else (f"{opener}\n{THINK_CLOSE}\n{body}")
        )
    # No-think: the model answers; only a prompt that left a block open makes it close one.
    return f"\n{THINK_CLOSE}\n{body}" if state == "open" else body


def expected(mode: str, output: str) -> Outcome:
    """What a correct stack returns for the cell."""
    thinking = mode == "think"
    calls = (
        (_canonical_call(CALL["name"], CALL["arguments"]),) if output.endswith("tool_call") else ()
    )
    if output == "second_turn":
        return Outcome(
            content=SECOND_ANSWER,
            reasoning=SECOND_REASONING if thinking else None,
            tool_calls=(),
            finish_reason="stop",
            history_ok=True,
        )
    return Outcome(
        content=None if calls else ANSWER,
        reasoning=REASONING if output.startswith("reasoning") else None,
        tool_calls=calls,
        finish_reason="tool_calls" if calls else "stop",
    )


def history_rendered(prompt: str) -> bool:
    """The prompt carries the earlier call inside tool-call tags and the result inside
    tool-response tags."""
    call = f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>"
    response_at = prompt.find("<tool_response>")
    return call in prompt and response_at >= 0 and RESULT in prompt[response_at:]


def mismatches(want: Outcome, got: Outcome) -> list[str]:
    """Readable differences, one per field; empty when the cell is right."""
    out = []
    for name in ("content", "reasoning", "tool_calls", "finish_reason", "history_ok"):
        w, g = getattr(want, name), getattr(got, name)
        if name == "history_ok" and w is None:
            continue
        if w != g:
            out.append(f"{name}: want {_short(w)}, got {_short(g)}")
    return out


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _canonical_call(name: str, arguments: object) -> tuple[str, str]:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return name, arguments
    return name, json.dumps(arguments, sort_keys=True)


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def outcome_from_message(message: Any, finish_reason: str | None) -> Outcome:
    """Reduce a non-streaming choice's message."""
    calls = tuple(
        _canonical_call(call.function.name, call.function.arguments)
        for call in (message.tool_calls or [])
    )
    return Outcome(
        content=_clean(message.content),
        reasoning=_clean(getattr(message, "reasoning", None)),
        tool_calls=calls,
        finish_reason=finish_reason,
    )


def outcome_from_chunks(chunks: Sequence[Any]) -> Outcome:
    """Reduce a stream of chunks: concatenate content and reasoning, assemble calls by index."""
    content, reasoning, finish = [], [], None
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            content.append(delta.content or "")
            reasoning.append(getattr(delta, "reasoning", None) or "")
            for call in delta.tool_calls or []:
                name_args = calls.setdefault(call.index, ["", ""])
                if call.function is not None:
                    name_args[0] += call.function.name or ""
                    name_args[1] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return Outcome(
        content=_clean("".join(content)),
        reasoning=_clean("".join(reasoning)),
        tool_calls=tuple(_canonical_call(n, a) for _, (n, a) in sorted(calls.items())),
        finish_reason=finish,
    )


def uses_tools(output: str) -> bool:
    """Tool cells send the tool list (as an agent does); plain chat cells send none, so vLLM's
    default `skip_special_tokens=True` stays in force there."""
    return output.endswith("tool_call") or output == "second_turn"


def server_prompt(
    base_url: str,
    model: str,
    messages: list[dict[str, Any]],
    kwargs: dict,
    tools: list | None,
    chat_template: str | None = None,
) -> str:
    """The prompt the server renders for these messages, read back from the server."""
    from vstack import http_json

    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "chat_template_kwargs": kwargs,
        "add_generation_prompt": True,
    }
    if tools:
        body["tools"] = tools
    if chat_template is not None:
        body["chat_template"] = chat_template
    tokens = http_json(f"{base_url}/tokenize", body)["tokens"]
    return http_json(f"{base_url}/detokenize", {"model": model, "tokens": tokens})["prompt"]


def run_cell(
    client: Any, base_url: str, model: str, cell: Cell, chat_template: str | None = None
) -> tuple[Outcome, str]:
    """Drive one cell against a live server; returns the outcome and the forced text.
    `chat_template` (None: the server's own) goes in the request body."""
    messages, kwargs = conversation(cell.mode, cell.output)
    tools = TOOLS if uses_tools(cell.output) else None
    prompt = server_prompt(base_url, model, messages, kwargs, tools, chat_template)
    forced = forced_output(cell.mode, cell.output, prompt)
    request: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": 256,
        "logit_bias": {str(token): 100 for token in TAG_IDS},
        "extra_body": {
            "structured_outputs": {"regex": regex_literal(forced)},
            "chat_template_kwargs": kwargs,
        },
    }
    if chat_template is not None:
        request["extra_body"]["chat_template"] = chat_template
    if tools:
        request |= {"tools": tools, "tool_choice": "auto"}
    if cell.stream:
        outcome = outcome_from_chunks(list(client.chat.completions.create(stream=True, **request)))
    else:
        response = client.chat.completions.create(**request)
        choice = response.choices[0]
        outcome = outcome_from_message(choice.message, choice.finish_reason)
    if cell.output == "second_turn":
        outcome = Outcome(**{**outcome.__dict__, "history_ok": history_rendered(prompt)})
    return outcome, forced
