"""The live smoke battery: does *this* pod's vLLM turn SmolLM3's output into the right fields?

Run by the agent against its own pod's server (loopback) before the pod takes traffic. It needs
no particular weights: it reads what the server reports (the base model's name and the tag ids
from ``/v1/models`` and ``/tokenize``, the served prompt from ``/tokenize`` + ``/detokenize``)
and forces what the model says with structured outputs (a ``regex``) and ``logit_bias`` on the
tag ids, so a random-weight model gives the same verdicts as SmolLM3-3B. The checks:

- ``server``: a base model is served, and each tag (``<think>``, ``</think>``, ``<tool_call>``,
  ``</tool_call>``) is one token (forcing relies on it);
- ``history-tool-calls`` / ``history-tool-results``: the served prompt of a two-turn
  conversation with two tool calls and their results (in both modes) shows every call as a
  ``<tool_call>`` block with its name and arguments, and every result inside
  ``<tool_response>`` … ``</tool_response>``;
- ``prompt-mode``: the prompt leaves reasoning open in think mode and does not in no-think mode;
- ``no-think-tool-call`` (and ``-stream``): a forced no-think tool call comes back as exactly
  one parsed ``tool_calls`` entry, ``finish_reason: tool_calls``, nothing in ``content`` or
  ``reasoning``;
- ``no-think-answer`` (and ``-stream``): a forced no-think answer lands in ``content``, not in
  ``reasoning``;
- ``think-answer`` / ``think-tool-call`` (and ``-stream``): in think mode, with ``</think>``
  forced as the first token, the answer or the tool call after it lands in ``content`` or
  ``tool_calls``, nothing in ``reasoning``;
- ``adapters``: each adapter the spec lists is in ``/v1/models`` and answers one request.

What the think path cannot check (docs/operator.md, "Safe rollouts"): that non-empty reasoning
text lands in ``reasoning``. vLLM applies structured outputs only after reasoning ends, unless
the server runs with ``--structured-outputs-config '{"enable_in_reasoning": true}'``, which
changes every reasoning request with structured outputs for every user; so the battery forces
reasoning to end at once (``</think>`` biased) and checks what follows it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from smolserve.agent.report import TIMEOUT_CHECK
from smolserve.agent.vllm import VllmClient, VllmError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
TURN_START = "<|im_start|>"
TAGS = (THINK_OPEN, THINK_CLOSE, CALL_OPEN, CALL_CLOSE)
# Bias that makes the model emit a tag as its one token rather than spell it from byte pieces,
# and, in think mode, a stronger one that makes ``</think>`` the first token it writes.
TAG_BIAS = 30
END_THINKING_BIAS = 100
MAX_TOKENS = 96
PER_REQUEST_SECONDS = 60.0
PARALLEL_REQUESTS = 8
OBSERVED_LIMIT = 300

QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def _tool(name: str, description: str, argument: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {argument: {"type": "string"}},
                "required": [argument],
            },
        },
    }


TOOLS = [
    _tool("get_weather", "Current weather in a city", "city"),
    _tool("get_local_time", "Current local time in a city", "city"),
]
# The history conversation: two calls, two results, an answer, and a second question.
HISTORY_CALLS = (WEATHER_CALL, {"name": "get_local_time", "arguments": {"city": "Paris"}})
HISTORY_RESULTS = ('{"temperature": 21, "condition": "sunny"}', '{"time": "14:05"}')


def history_messages() -> list[dict[str, Any]]:
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
        }
        for i, c in enumerate(HISTORY_CALLS, 1)
    ]
    results = [
        {"role": "tool", "tool_call_id": f"call_{i}", "content": text}
        for i, text in enumerate(HISTORY_RESULTS, 1)
    ]
    return [
        {"role": "user", "content": "What is the weather in Paris, and what time is it there?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        *results,
        {"role": "assistant", "content": "It is 21 degrees and sunny in Paris, at 14:05."},
        {"role": "user", "content": "And what should I wear?"},
    ]


@dataclass(frozen=True)
class CheckFailure:
    check: str
    observed: str


@dataclass(frozen=True)
class BatteryResult:
    """The battery's verdict: every check it ran, those that failed (in the order run)."""

    checks: tuple[str, ...]
    failures: tuple[CheckFailure, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.passed:
            return f"passed {len(self.checks)} checks in {self.seconds:.2f} s"
        first = self.failures[0]
        others = [f.check for f in self.failures[1:]]
        more = f" (also failed: {', '.join(others)})" if others else ""
        return f"failed {first.check}: {first.observed}{more}"


@dataclass(frozen=True)
class Outcome:
    """A chat answer reduced to what the checks judge (strings stripped, empty → None)."""

    content: str | None
    reasoning: str | None
    tool_calls: tuple[tuple[str, Any], ...]  # (name, parsed arguments)
    finish_reason: str | None

    def describe(self) -> str:
        calls = [{"name": n, "arguments": a} for n, a in self.tool_calls]
        return _short(
            f"content={self.content!r} reasoning={self.reasoning!r} "
            f"tool_calls={json.dumps(calls)} finish_reason={self.finish_reason!r}"
        )


class Deadline:
    """The battery's time limit; each request gets what is left (at most a minute)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self._end - self._clock()

    def request_timeout(self) -> float:
        left = self.left()
        if left <= 0:
            raise BatteryTimeout
        return min(left, PER_REQUEST_SECONDS)


class BatteryTimeout(Exception):
    """The deadline passed."""


@dataclass
class _Run:
    vllm: VllmClient
    deadline: Deadline
    model: str = ""
    tag_ids: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    failures: list[CheckFailure] = field(default_factory=list)

    def check(self, name: str, problem: str | None) -> None:
        self.checks.append(name)
        if problem:
            self.failures.append(CheckFailure(name, _short(problem)))

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.vllm.post(path, body, timeout=self.deadline.request_timeout())

    def stream(self, path: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.vllm.stream(path, body, timeout=self.deadline.request_timeout())


def run_battery(
    vllm: VllmClient,
    *,
    adapters: Sequence[str] = (),
    timeout: float = 180.0,
    clock: Callable[[], float] = time.monotonic,
) -> BatteryResult:
    """Every check against the server at ``vllm`` (which must already be healthy)."""
    began = clock()
    run = _Run(vllm, Deadline(timeout, clock))
    try:
        if _server(run):
            _checks(run, adapters)
    except BatteryTimeout:
        run.failures.append(
            CheckFailure(
                TIMEOUT_CHECK,
                f"the battery did not finish within {timeout:g} s "
                f"(checks done: {', '.join(run.checks) or 'none'})",
            )
        )
    except VllmError as exc:
        if run.deadline.left() <= 0:
            run.failures.append(CheckFailure(TIMEOUT_CHECK, _short(str(exc))))
        else:
            run.failures.append(CheckFailure(run.checks[-1] if run.checks else "server", str(exc)))
    return BatteryResult(tuple(run.checks), tuple(run.failures), clock() - began)


# --- the checks ----------------------------------------------------------------------------------


def _server(run: _Run) -> bool:
    """The base model's name and the tag ids, read from the server; False stops the battery."""
    models = run.vllm.models(timeout=run.deadline.request_timeout())
    bases = [m["id"] for m in models if not m.get("parent")]
    if not bases:
        run.check("server", f"/v1/models lists no base model: {_short(json.dumps(models))}")
        return False
    run.model = bases[0]
    problems = []
    for tag in TAGS:
        body = {"model": run.model, "prompt": tag, "add_special_tokens": False}
        tokens = run.post("/tokenize", body).get("tokens") or []
        if len(tokens) == 1:
            run.tag_ids[tag] = tokens[0]
        else:
            problems.append(f"{tag} is {len(tokens)} tokens {tokens}, not one")
    run.check("server", "; ".join(problems) or None)
    return not problems


def served_prompt(run: _Run, messages: list[dict[str, Any]], thinking: bool, tools: bool) -> str:
    body: dict[str, Any] = {
        "model": run.model,
        "messages": messages,
        "chat_template_kwargs": {"enable_thinking": thinking},
        "add_generation_prompt": True,
    }
    if tools:
        body["tools"] = TOOLS
    tokens = run.post("/tokenize", body)["tokens"]
    return run.post("/detokenize", {"model": run.model, "tokens": tokens})["prompt"]


def blocks(text: str, opening: str, closing: str) -> list[str]:
    """The texts between each ``opening`` and the next ``closing`` tag."""
    found, at = [], 0
    while (start := text.find(opening, at)) >= 0:
        end = text.find(closing, start + len(opening))
        if end < 0:
            break
        found.append(text[start + len(opening) : end])
        at = end + len(closing)
    return found


def _parsed_call(text: str) -> tuple[Any, Any] | None:
    try:
        doc = json.loads(text.strip())
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    arguments = doc.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return doc.get("name"), arguments


def history_problems(prompt: str) -> tuple[str | None, str | None]:
    """(tool calls, tool results): what of the history the prompt lacks, in words."""
    calls = [_parsed_call(b) for b in blocks(prompt, CALL_OPEN, CALL_CLOSE)]
    missing_calls = [c["name"] for c in HISTORY_CALLS if (c["name"], c["arguments"]) not in calls]
    responses = blocks(prompt, RESPONSE_OPEN, RESPONSE_CLOSE)
    missing_results = [r for r in HISTORY_RESULTS if not any(r in b for b in responses)]
    tail = "…" + _short(prompt[-400:].replace("\n", "\\n"), 200)
    call_problem = (
        f"calls {missing_calls} are not {CALL_OPEN} blocks in the prompt "
        f"({len(calls)} blocks found): {tail}"
        if missing_calls
        else None
    )
    result_problem = (
        f"results {missing_results} are not inside {RESPONSE_OPEN} in the prompt "
        f"({len(responses)} blocks found): {tail}"
        if missing_results
        else None
    )
    return call_problem, result_problem


def think_state(prompt: str) -> str:
    """After the last turn start: 'open' (a think block left open), 'closed', or 'bare'."""
    tail = prompt.rpartition(TURN_START)[2]
    opened, closed = tail.rfind(THINK_OPEN), tail.rfind(THINK_CLOSE)
    if opened < 0 and closed < 0:
        return "bare"
    return "closed" if closed > opened else "open"


def _prompt_problems(run: _Run, thinking: bool) -> dict[str, str | None]:
    """The history and mode checks on the served prompt of one mode."""
    mode = "think" if thinking else "no-think"
    prompt = served_prompt(run, history_messages(), thinking, tools=True)
    calls, results = history_problems(prompt)
    state = think_state(prompt)
    wrong_mode = None
    if state == ("closed" if thinking else "open"):
        ending = _short(prompt.rpartition(TURN_START)[2].replace("\n", "\\n"), 80)
        wrong_mode = f"{mode} prompt leaves reasoning {state}: …{ending}"
    history = {"history-tool-calls": calls, "history-tool-results": results}
    found = {check: f"{mode}: {p}" if p else None for check, p in history.items()}
    return {**found, "prompt-mode": wrong_mode}


def regex_literal(text: str) -> str:
    """A regex that matches exactly ``text``."""
    out = []
    for char in text:
        if char.isalnum() or char == " ":
            out.append(char)
        elif char == "\n":
            out.append("\\n")
        else:
            out.append("\\" + char)
    return "".join(out)


def call_text(call: Mapping[str, Any]) -> str:
    return f"{CALL_OPEN}\n{json.dumps(call)}\n{CALL_CLOSE}"


@dataclass(frozen=True)
class Forced:
    """One forced request: its check, mode, whether it offers tools, and the text forced."""

    check: str
    thinking: bool
    tool_call: bool
    stream: bool

    @property
    def text(self) -> str:
        return call_text(WEATHER_CALL) if self.tool_call else ANSWER


FORCED = tuple(
    Forced(
        f"{mode}-{what}{'-stream' if stream else ''}", mode == "think", what == "tool-call", stream
    )
    for mode in ("no-think", "think")
    for what in ("tool-call", "answer")
    for stream in (False, True)
)


def forced_request(run: _Run, forced: Forced) -> dict[str, Any]:
    bias = {str(run.tag_ids[t]): TAG_BIAS for t in (CALL_OPEN, CALL_CLOSE) if forced.tool_call}
    if forced.thinking:
        bias[str(run.tag_ids[THINK_CLOSE])] = END_THINKING_BIAS
    body: dict[str, Any] = {
        "model": run.model,
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "logit_bias": bias,
        "structured_outputs": {"regex": regex_literal(forced.text)},
        "chat_template_kwargs": {"enable_thinking": forced.thinking},
    }
    if forced.tool_call:
        # auto, not required: a required or named choice replaces the regex with vLLM's grammar.
        body |= {"tools": TOOLS, "tool_choice": "auto"}
    return body


def _clean(text: Any) -> str | None:
    text = (text or "").strip() if isinstance(text, str) else ""
    return text or None


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def outcome_of(answer: Mapping[str, Any]) -> Outcome:
    """A non-streamed chat completion."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = tuple(
        (
            (c.get("function") or {}).get("name"),
            _arguments((c.get("function") or {}).get("arguments")),
        )
        for c in message.get("tool_calls") or []
    )
    reasoning = message.get("reasoning", message.get("reasoning_content"))
    return Outcome(
        _clean(message.get("content")), _clean(reasoning), calls, choice.get("finish_reason")
    )


def outcome_of_stream(events: Sequence[Mapping[str, Any]]) -> Outcome:
    """A streamed one: content and reasoning concatenated, calls assembled by index."""
    content, reasoning, finish = [], [], None
    calls: dict[int, list[str]] = {}
    for event in events:
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning") or delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or []:
                parts = calls.setdefault(call.get("index", 0), ["", ""])
                function = call.get("function") or {}
                parts[0] += function.get("name") or ""
                parts[1] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return Outcome(
        _clean("".join(content)),
        _clean("".join(reasoning)),
        tuple((name, _arguments(args)) for _, (name, args) in sorted(calls.items())),
        finish,
    )


def forced_problem(forced: Forced, got: Outcome) -> str | None:
    """What is wrong with the answer to a forced request, in words (None: right)."""
    wrong = []
    if forced.tool_call:
        want = ((WEATHER_CALL["name"], WEATHER_CALL["arguments"]),)
        if got.tool_calls != want:
            wrong.append(f"want exactly one call {json.dumps(WEATHER_CALL)}")
        if got.finish_reason != "tool_calls":
            wrong.append("want finish_reason 'tool_calls'")
        if got.content is not None:
            wrong.append("want no content")
    else:
        if got.content != ANSWER:
            wrong.append(f"want content {ANSWER!r}")
        if got.tool_calls:
            wrong.append("want no tool calls")
    if got.reasoning is not None:
        wrong.append("want no reasoning")
    if not wrong:
        return None
    return f"{', '.join(wrong)}; got {got.describe()}"


def _one_forced(run: _Run, forced: Forced) -> str | None:
    body = forced_request(run, forced)
    if forced.stream:
        got = outcome_of_stream(run.stream("/v1/chat/completions", body))
    else:
        got = outcome_of(run.post("/v1/chat/completions", body))
    return forced_problem(forced, got)


PROMPT_CHECKS = ("history-tool-calls", "history-tool-results", "prompt-mode")


def _checks(run: _Run, adapters: Sequence[str]) -> None:
    """Every check after ``server``, concurrently (vLLM batches them), recorded in order."""
    with ThreadPoolExecutor(PARALLEL_REQUESTS, thread_name_prefix="smoke") as pool:
        prompts = [pool.submit(_prompt_problems, run, thinking) for thinking in (False, True)]
        forced = [(f, pool.submit(_one_forced, run, f)) for f in FORCED]
        adapter = pool.submit(_adapter_problems, run, adapters) if adapters else None
        found: dict[str, list[str]] = {check: [] for check in PROMPT_CHECKS}
        for future in prompts:
            problems, failed = _outcome(run, future)
            for check in PROMPT_CHECKS:
                problem = failed or (problems or {}).get(check)
                found[check] += [problem] if problem else []
        for check, problems in found.items():
            run.check(check, "; ".join(problems) or None)
        for f, future in forced:
            problem, failed = _outcome(run, future)
            run.check(f.check, failed or problem)
        if adapter is not None:
            problem, failed = _outcome(run, adapter)
            run.check("adapters", failed or problem)


def _outcome(run: _Run, future: Future[Any]) -> tuple[Any, str | None]:
    """(a check's result, why its request failed): a failed request fails that check, or the
    battery when its deadline has passed."""
    try:
        return future.result(), None
    except VllmError as exc:
        if run.deadline.left() <= 0:
            raise BatteryTimeout from exc
        return None, f"the request failed: {exc}"


def _adapter_problems(run: _Run, adapters: Sequence[str]) -> str | None:
    served = {m["id"] for m in run.vllm.models(timeout=run.deadline.request_timeout())}
    problems = []
    for name in adapters:
        if name not in served:
            problems.append(f"{name!r} is not in /v1/models (served: {sorted(served)})")
            continue
        answer = run.post(
            "/v1/completions", {"model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
        )
        if not answer.get("choices"):
            problems.append(f"{name!r} answered with no choices: {_short(json.dumps(answer))}")
    return "; ".join(problems) or None


def _short(text: str, limit: int = OBSERVED_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
