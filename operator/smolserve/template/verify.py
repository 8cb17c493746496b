"""Verify a chat template: render the battery through transformers and check the structure.

Each conversation of ``battery.py`` is rendered with the tokenizer's own ``apply_chat_template``
(what vLLM runs) and a frozen date, then taken apart turn by turn and checked against what the
messages say it must contain:

- ``renders``: the template renders at all;
- ``turns``: one turn per user and assistant message, one user turn per run of tool results;
- ``tools-offered``: the system turn names every tool the request offers;
- ``tool-calls``: every assistant tool call parses back, hermes-style, to the same name and
  arguments;
- ``tool-results``: every tool result is wrapped in the tool-response tags;
- ``content``: message text (or nothing, for None or list content) and never a stray "None";
- ``history-mode``: no-think assistant turns carry the empty think block, think turns do not;
- ``generation-prompt``: the prompt ends with the suffix the mode needs (or with a closed turn);
- ``tags``: every tag in the text encodes to its single id;
- ``reply-roundtrip``: a model reply, parsed and rendered back as history, reproduces its
  tool-call text;
- ``system-turn`` (warning only): the system turn is closed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from smolserve.errors import SmolserveError, UsageError
from smolserve.template.battery import Case, battery
from smolserve.template.hermes import ToolCall, find_tool_calls, parse_reply
from smolserve.template.render import FROZEN_DATE, render_prompt, syntax_error
from smolserve.template.tokens import TokenMap, read_token_map

PromptStyle = Literal["fixed", "seed"]
CHECKS = (
    "renders",
    "turns",
    "tools-offered",
    "tool-calls",
    "tool-results",
    "content",
    "history-mode",
    "generation-prompt",
    "tags",
    "reply-roundtrip",
    "system-turn",
)
WARNING_CHECKS = frozenset({"system-turn"})


@dataclass(frozen=True)
class CheckResult:
    case: str
    check: str
    ok: bool
    detail: str = ""

    @property
    def warning(self) -> bool:
        return self.check in WARNING_CHECKS


@dataclass(frozen=True)
class VerifyReport:
    template_sha256: str
    cases: int
    results: tuple[CheckResult, ...]
    prompt_style: PromptStyle = "fixed"

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok and not r.warning]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok and r.warning]

    @property
    def ok(self) -> bool:
        return not self.failures

    def failed_checks(self) -> set[str]:
        return {r.check for r in self.failures}

    def summary_line(self) -> str:
        """One line for logs and termination messages: verdict, failing checks, first failure."""
        if self.ok:
            return f"verification passed ({len(self.results)} checks, {self.cases} conversations)"
        counts = Counter(r.check for r in self.failures)
        first = self.failures[0]
        checks = ", ".join(f"{check} x{n}" for check, n in sorted(counts.items()))
        return f"failed checks: {checks}; first: [{first.case}] {first.check}: {first.detail}"

    def format(self, *, max_details: int = 40) -> str:
        lines = [
            f"verify: template sha256 {self.template_sha256[:16]}…, {self.cases} conversations, "
            f"{len(self.results)} checks, generation prompts expected as in '{self.prompt_style}'",
        ]
        for check in CHECKS:
            mine = [r for r in self.results if r.check == check]
            if not mine:
                continue
            passed = sum(r.ok for r in mine)
            mark = "ok" if passed == len(mine) else ("WARN" if check in WARNING_CHECKS else "FAIL")
            lines.append(f"  {check:<18} {passed:>3}/{len(mine):<3} {mark}")
        for title, items in (("failures", self.failures), ("warnings", self.warnings)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  [{r.case}] {r.check}: {r.detail}" for r in items[:max_details]]
                if len(items) > max_details:
                    lines.append(f"  … and {len(items) - max_details} more")
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures)} failed checks)"
        lines.append(f"result: {verdict}")
        return "\n".join(lines)


@dataclass
class _Turn:
    role: str
    body: str
    closed: bool


@dataclass
class _Expected:
    role: str
    kind: str  # "message" | "tools"
    messages: list[dict[str, Any]] = field(default_factory=list)


def _text(content: Any) -> str:
    return content if isinstance(content, str) else ""


def _short(text: str, limit: int = 90) -> str:
    text = json.dumps(text, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + '…"'


def _split_turns(prompt: str, tm: TokenMap) -> tuple[str, list[_Turn]]:
    lead, *parts = prompt.split(tm.im_start.text)
    turns = []
    end = tm.im_end.text + "\n"
    for part in parts:
        role, _, body = part.partition("\n")
        closed = body.endswith(end)
        turns.append(_Turn(role, body[: -len(end)] if closed else body, closed))
    return lead, turns


def _expected_turns(messages: list[dict[str, Any]]) -> list[_Expected]:
    expected: list[_Expected] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            if expected and expected[-1].kind == "tools":
                expected[-1].messages.append(message)
            else:
                expected.append(_Expected("user", "tools", [message]))
        elif role in ("user", "assistant"):
            expected.append(_Expected(role, "message", [message]))
    return expected


def _expected_calls(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    calls = []
    for message in messages:
        for tool_call in message.get("tool_calls") or []:
            function = tool_call.get("function", tool_call)
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            calls.append((function["name"], arguments))
    return calls


class _Checker:
    def __init__(self, template: str, tokenizer: Any, tm: TokenMap, style: PromptStyle) -> None:
        self.template, self.tokenizer, self.tm, self.style = template, tokenizer, tm, style
        self.empty_think = f"{tm.think_open.text}\n\n{tm.think_close.text}\n"
        self.results: list[CheckResult] = []

    def record(self, case: Case, check: str, ok: bool, detail: str = "") -> None:
        self.results.append(CheckResult(case.name, check, ok, "" if ok else detail))

    def render(self, case: Case, messages: list[dict[str, Any]], prompt: bool) -> str | None:
        try:
            text = render_prompt(
                self.template,
                self.tokenizer,
                messages,
                tools=case.tools,
                enable_thinking=case.enable_thinking,
                add_generation_prompt=prompt,
                today=FROZEN_DATE,
            )
        except SmolserveError as exc:
            self.record(case, "renders", False, str(exc))
            return None
        self.record(case, "renders", True)
        return text

    def suffix(self, mode: str) -> str:
        head = f"{self.tm.im_start.text}assistant\n"
        if mode == "think":
            return head + f"{self.tm.think_open.text}\n"
        return head + (self.empty_think if self.style == "fixed" else "")

    def run(self, case: Case) -> None:
        messages = case.messages
        if case.reply is not None:
            messages = self.with_reply(case)
        prompt = self.render(case, messages, case.add_generation_prompt)
        if prompt is None:
            return
        self.check_prompt(case, messages, prompt)

    def with_reply(self, case: Case) -> list[dict[str, Any]]:
        parsed = parse_reply(case.reply or "", self.tm)
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for i, c in enumerate(parsed.tool_calls)
        ]
        results = [
            {"role": "tool", "tool_call_id": c["id"], "content": f"result {i}"}
            for i, c in enumerate(calls)
        ]
        history = {"role": "assistant", "content": parsed.content or None, "tool_calls": calls}
        return [*case.messages, history, *results]

    def check_prompt(self, case: Case, messages: list[dict[str, Any]], prompt: str) -> None:
        tm = self.tm
        lead, turns = _split_turns(prompt, tm)
        if lead:
            self.record(case, "turns", False, f"text before the first turn: {_short(lead)}")
            return
        system = turns.pop(0) if turns and turns[0].role == "system" else None
        if system is not None:
            self.record(case, "system-turn", system.closed, "the system turn is not closed")
        if case.tools:
            names = [tool["function"]["name"] for tool in case.tools]
            missing = [n for n in names if system is None or n not in system.body]
            self.record(
                case, "tools-offered", not missing, f"the system turn never names tools {missing}"
            )

        if case.add_generation_prompt:
            want = self.suffix(case.mode)
            self.record(
                case,
                "generation-prompt",
                prompt.endswith(want),
                f"{case.mode}: expected the prompt to end with {_short(want)}, "
                f"it ends with {_short(prompt[-len(want) - 12 :])}",
            )
            if turns and not turns[-1].closed and turns[-1].role == "assistant":
                turns.pop()
        else:
            self.record(
                case,
                "generation-prompt",
                prompt.endswith(tm.im_end.text + "\n"),
                f"no generation prompt asked, yet the prompt ends with {_short(prompt[-40:])}",
            )

        conversation = "".join(t.body for t in turns)
        self.check_tags(case, prompt)
        self.check_calls(case, messages, turns)
        self.check_results(case, messages, turns)
        if "None" in conversation and not any("None" in _text(m.get("content")) for m in messages):
            self.record(case, "content", False, "the text 'None' appears in the conversation")

        expected = _expected_turns(messages)
        got_roles = [t.role for t in turns]
        want_roles = [e.role for e in expected]
        if got_roles != want_roles or not all(t.closed for t in turns):
            self.record(
                case,
                "turns",
                False,
                f"expected closed turns {','.join(want_roles)}; rendered "
                + ",".join(t.role + ("" if t.closed else "(open)") for t in turns),
            )
            return
        self.record(case, "turns", True)
        for want, turn in zip(expected, turns, strict=True):
            if want.kind == "message":
                self.check_message(case, want.messages[0], turn)
        if case.reply is not None:
            self.check_reply(case, turns)

    def check_tags(self, case: Case, prompt: str) -> None:
        ids = Counter(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        bad = [
            f"{tag.text} x{prompt.count(tag.text)} in text but id {tag.id} x{ids[tag.id]}"
            for tag in self.tm.tags().values()
            if prompt.count(tag.text) != ids[tag.id]
        ]
        self.record(case, "tags", not bad, "; ".join(bad))

    def check_calls(self, case: Case, messages: list[dict[str, Any]], turns: list[_Turn]) -> None:
        want = _expected_calls(messages)
        if not want:
            return
        found = [
            c for t in turns if t.role == "assistant" for c in find_tool_calls(t.body, self.tm)
        ]
        got = [
            (c.name, c.arguments) if isinstance(c, ToolCall) else ("<unparsable>", c) for c in found
        ]
        detail = (
            f"expected {len(want)} tool call(s) {[n for n, _ in want]}, the history has "
            f"{len(got)}: {_short(json.dumps(got, ensure_ascii=False), 160)}"
        )
        self.record(case, "tool-calls", got == want, detail)

    def check_results(self, case: Case, messages: list[dict[str, Any]], turns: list[_Turn]) -> None:
        want = [_text(m.get("content")) for m in messages if m.get("role") == "tool"]
        if not want:
            return
        tm = self.tm
        found = []
        for turn in turns:
            if turn.role != "user":
                continue
            rest = turn.body
            while rest.startswith(tm.tool_response_open.text + "\n"):
                block, sep, rest = rest[len(tm.tool_response_open.text) + 1 :].partition(
                    "\n" + tm.tool_response_close.text
                )
                if not sep:
                    break
                found.append(block)
                rest = rest.removeprefix("\n")
        detail = (
            f"expected {len(want)} wrapped tool result(s) {_short(str(want))}, found {len(found)}"
        )
        if len(found) != len(want) and turns:
            bare = [t.body for t in turns if t.role == "user" and t.body in want]
            if bare:
                detail += f"; rendered as plain user turns: {_short(str(bare))}"
        self.record(case, "tool-results", found == want, detail)

    def check_message(self, case: Case, message: dict[str, Any], turn: _Turn) -> None:
        text = _text(message.get("content"))
        body = turn.body
        if message["role"] == "assistant":
            has_block = body.startswith(self.empty_think)
            want_block = case.mode == "no_think"
            self.record(
                case,
                "history-mode",
                has_block == want_block,
                f"{case.mode} assistant turn {'lacks' if want_block else 'has'} the empty think "
                f"block: {_short(body)}",
            )
            body = body.removeprefix(self.empty_think)
            if message.get("tool_calls"):
                ok = body.startswith(text) and body[len(text) :].lstrip("\n").startswith(
                    self.tm.tool_call_open.text
                )
                self.record(
                    case,
                    "content",
                    ok,
                    f"expected {_short(text)} followed by its tool-call blocks, rendered "
                    f"{_short(body)}",
                )
                return
        self.record(
            case, "content", body == text, f"expected {_short(text)}, rendered {_short(body)}"
        )

    def check_reply(self, case: Case, turns: list[_Turn]) -> None:
        parsed = parse_reply(case.reply or "", self.tm)
        history = [t for t in turns if t.role == "assistant"][-1].body
        self.record(
            case,
            "reply-roundtrip",
            bool(parsed.tool_call_text) and parsed.tool_call_text in history,
            f"the reply's tool-call text {_short(parsed.tool_call_text)} is not in the "
            f"re-rendered history {_short(history)}",
        )


def check_prompt_style(style: str) -> None:
    """``UsageError`` unless ``style`` is one of ``PromptStyle``'s values."""
    if style not in get_args(PromptStyle):
        raise UsageError(f"unknown prompt style {style!r} (choose fixed or seed)")


def verify_template(
    template_text: str, tokenizer: Any, *, prompt_style: PromptStyle = "fixed"
) -> VerifyReport:
    """Render the battery with ``template_text`` and check it; see the module docstring.

    ``prompt_style`` says which generation prompts are right: ``fixed`` (``/think`` prefills the
    think tag, ``/no_think`` ends with the empty think block) or ``seed`` (``/no_think`` bare).
    A template that does not parse fails ``renders`` once, with the line, and nothing is rendered.
    """
    check_prompt_style(prompt_style)
    token_map = read_token_map(tokenizer)
    sha256 = hashlib.sha256(template_text.encode("utf-8")).hexdigest()
    problem = syntax_error(template_text)
    if problem is not None:  # one failure, not the same one for every conversation
        failure = CheckResult("template", "renders", False, problem)
        return VerifyReport(sha256, cases=0, results=(failure,), prompt_style=prompt_style)
    checker = _Checker(template_text, tokenizer, token_map, prompt_style)
    cases = battery(token_map)
    for case in cases:
        checker.run(case)
    return VerifyReport(
        template_sha256=sha256,
        cases=len(cases),
        results=tuple(checker.results),
        prompt_style=prompt_style,
    )
