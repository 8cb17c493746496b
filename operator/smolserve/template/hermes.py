"""Parse tool calls out of text the way vLLM's ``hermes`` tool parser does.

The parser matches the *text* between the tool-call tags, ``json.loads`` each body and needs a
``name`` and ``arguments``; the content is the text before the first tool-call tag. The verify
battery uses this to check that what a template renders as history is what the model emits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from smolserve.template.tokens import TokenMap


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any


@dataclass(frozen=True)
class ParsedReply:
    """A reply after the reasoning parser (reasoning dropped: history never carries it)."""

    content: str
    tool_calls: tuple[ToolCall, ...]
    tool_call_text: str  # from the first tool-call tag to the end of the last one


def find_tool_calls(text: str, token_map: TokenMap) -> list[ToolCall | str]:
    """Each tool-call block in ``text``: a ``ToolCall``, or its raw body if it does not parse."""
    pattern = re.compile(
        re.escape(token_map.tool_call_open.text)
        + r"(.*?)"
        + re.escape(token_map.tool_call_close.text),
        re.DOTALL,
    )
    found: list[ToolCall | str] = []
    for body in pattern.findall(text):
        try:
            call = json.loads(body.strip())
            found.append(ToolCall(name=call["name"], arguments=call["arguments"]))
        except (ValueError, KeyError, TypeError):
            found.append(body)
    return found


def parse_reply(text: str, token_map: TokenMap) -> ParsedReply:
    """Split a model reply into content and tool calls, after the reasoning (reasoning parser +
    hermes)."""
    think_close = token_map.think_close.text
    rest = text
    if think_close in text:
        rest = text.split(think_close, 1)[1].lstrip("\n")
    start = rest.find(token_map.tool_call_open.text)
    if start < 0:
        return ParsedReply(rest, (), "")
    end = rest.rfind(token_map.tool_call_close.text) + len(token_map.tool_call_close.text)
    calls = tuple(c for c in find_tool_calls(rest, token_map) if isinstance(c, ToolCall))
    return ParsedReply(rest[:start].strip(), calls, rest[start:end])
