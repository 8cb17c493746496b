"""The conversations ``smolserve template verify`` renders.

Each case is plain data: messages, tools, how the mode is chosen, whether a generation prompt is
asked for. What a correct rendering looks like is derived from the messages by the checks in
``verify.py``; nothing here is an expected output string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from smolserve.template.tokens import TokenMap


@dataclass(frozen=True)
class Case:
    name: str
    messages: list[dict[str, Any]]
    mode: str  # the mode the template must pick: "think" | "no_think"
    enable_thinking: bool | None = None  # None: the template's default
    tools: list[dict[str, Any]] | None = None
    add_generation_prompt: bool = True
    reply: str | None = None  # a model reply whose tool-call text must survive as history
    extra: dict[str, Any] = field(default_factory=dict)


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


TOOLS = [
    _tool("get_weather", "Current weather for a city", {"city": {"type": "string"}}),
    _tool("get_time", "Current time in a time zone", {"tz": {"type": "string"}}),
    _tool(
        "search",
        "Search documents",
        {"query": {"type": "string"}, "filters": {"type": "object"}},
    ),
]


def call(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _assistant(text: Any, *calls: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = list(calls)
    return message


def _tool_result(text: Any, call_id: str = "call_1") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def _reply(token_map: TokenMap, reasoning: str | None, content: str, calls: list[dict]) -> str:
    parts = []
    if reasoning is not None:
        parts.append(f"{token_map.think_open.text}\n{reasoning}\n{token_map.think_close.text}\n")
    parts.append(content)
    blocks = [
        f"{token_map.tool_call_open.text}\n{json.dumps(c)}\n{token_map.tool_call_close.text}"
        for c in calls
    ]
    if blocks:
        parts.append(("\n" if content else "") + "\n".join(blocks))
    return "".join(parts)


def battery(token_map: TokenMap) -> list[Case]:
    """The verify battery (at least 25 conversations)."""
    weather = call("get_weather", {"city": "Copenhagen"})
    weather_str = call("get_weather", json.dumps({"city": "Oslo"}))
    time_call = call("get_time", {"tz": "Europe/Paris"}, "call_2")
    nested = call(
        "search",
        {
            "query": "vLLM reasoning parsers",
            "filters": {"date": {"from": "2025-01-01", "to": None}, "tags": ["ai", "llm"], "n": 3},
        },
    )
    unicode_call = call("get_weather", {"city": "København 🌧", "note": 'quote " and \\ slash'})
    ask = _user("What is the weather in Copenhagen?")
    return [
        Case("plain-think-kwarg", [ask], "think", enable_thinking=True),
        Case("plain-no-think-kwarg", [ask], "no_think", enable_thinking=False),
        Case("plain-default-mode", [ask], "think"),
        Case("system-flag-no-think", [_system("Be brief. /no_think"), ask], "no_think"),
        Case(
            "system-flag-think-beats-kwarg",
            [_system("/think Reason carefully."), ask],
            "think",
            enable_thinking=False,
        ),
        Case(
            "system-flag-no-think-beats-kwarg",
            [_system("/no_think"), ask],
            "no_think",
            enable_thinking=True,
        ),
        Case("tools-offered-think", [ask], "think", enable_thinking=True, tools=TOOLS),
        Case("tools-offered-no-think", [ask], "no_think", enable_thinking=False, tools=TOOLS),
        Case(
            "single-call-dict-args",
            [ask, _assistant(None, weather), _tool_result('{"temp_c": 4, "sky": "rain"}')],
            "think",
            enable_thinking=True,
            tools=TOOLS,
        ),
        Case(
            "single-call-string-args",
            [ask, _assistant("", weather_str), _tool_result("Sunny, 12 C")],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
        ),
        Case(
            "parallel-calls",
            [
                _user("Weather and time in Paris?"),
                _assistant(None, call("get_weather", {"city": "Paris"}), time_call),
                _tool_result("Cloudy"),
                _tool_result("14:05", "call_2"),
            ],
            "think",
            enable_thinking=True,
            tools=TOOLS,
        ),
        Case(
            "parallel-calls-no-think",
            [
                _user("Weather and time in Paris?"),
                _assistant("Checking both.", call("get_weather", {"city": "Paris"}), time_call),
                _tool_result("Cloudy"),
                _tool_result("14:05", "call_2"),
            ],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
        ),
        Case(
            "three-results-one-turn",
            [
                _user("Three cities?"),
                _assistant(
                    None,
                    call("get_weather", {"city": "Rome"}),
                    call("get_weather", {"city": "Oslo"}, "call_2"),
                    call("get_weather", {"city": "Lima"}, "call_3"),
                ),
                _tool_result("Hot"),
                _tool_result("Cold", "call_2"),
                _tool_result("Mild", "call_3"),
            ],
            "think",
            tools=TOOLS,
        ),
        Case(
            "multi-turn-tools",
            [
                ask,
                _assistant(None, weather),
                _tool_result("Rain"),
                _assistant("It is raining in Copenhagen."),
                _user("And the time there?"),
                _assistant(None, call("get_time", {"tz": "Europe/Copenhagen"}, "call_2")),
                _tool_result("09:30", "call_2"),
            ],
            "think",
            enable_thinking=True,
            tools=TOOLS,
        ),
        Case(
            "multi-turn-tools-no-think-flag",
            [
                _system("You answer tersely. /no_think"),
                ask,
                _assistant(None, weather),
                _tool_result("Rain"),
                _assistant("Rain."),
                _user("Time?"),
                _assistant("One moment.", time_call),
                _tool_result("09:30", "call_2"),
            ],
            "no_think",
            tools=TOOLS,
        ),
        Case(
            "tool-error",
            [ask, _assistant(None, weather), _tool_result("Error: upstream timeout (503)")],
            "think",
            tools=TOOLS,
        ),
        Case(
            "unicode-arguments",
            [_user("Vejret i København?"), _assistant(None, unicode_call), _tool_result("Regn ☔")],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
        ),
        Case(
            "nested-arguments",
            [_user("Find docs"), _assistant(None, nested), _tool_result('[{"id": 1}]')],
            "think",
            tools=TOOLS,
        ),
        Case(
            "empty-arguments",
            [_user("Time?"), _assistant(None, call("get_time", {})), _tool_result("12:00")],
            "think",
            tools=TOOLS,
        ),
        Case(
            "compact-string-arguments",
            [
                ask,
                _assistant(None, call("get_weather", '{"city":"Bergen"}')),
                _tool_result("Fog"),
            ],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
        ),
        Case(
            "content-and-call",
            [ask, _assistant("Let me look that up.", weather), _tool_result("Rain")],
            "think",
            tools=TOOLS,
        ),
        Case(
            "none-and-list-content",
            [
                _user([{"type": "text", "text": "parts"}]),
                _assistant(None),
                _user(None),
                _assistant(None, weather),
                _tool_result(None),
            ],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
        ),
        Case(
            "multiline-json-result",
            [ask, _assistant(None, weather), _tool_result('{\n  "temp_c": 4,\n  "sky": "rain"\n}')],
            "think",
            tools=TOOLS,
        ),
        Case(
            "history-without-tools",
            [ask, _assistant("Rainy."), _user("Thanks!"), _assistant("You're welcome.")],
            "no_think",
            enable_thinking=False,
            add_generation_prompt=False,
        ),
        Case(
            "no-prompt-after-tool-history",
            [ask, _assistant(None, weather), _tool_result("Rain"), _assistant("It rains.")],
            "think",
            tools=TOOLS,
            add_generation_prompt=False,
        ),
        Case(
            "no-prompt-ending-in-tool-result",
            [ask, _assistant(None, weather), _tool_result("Rain")],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
            add_generation_prompt=False,
        ),
        Case(
            "custom-system-with-tool-history",
            [
                _system("You are a weather bot."),
                ask,
                _assistant(None, weather),
                _tool_result("Sun"),
            ],
            "think",
            enable_thinking=True,
            tools=TOOLS,
        ),
        Case(
            "reply-roundtrip-think",
            [ask],
            "think",
            enable_thinking=True,
            tools=TOOLS,
            reply=_reply(
                token_map,
                "The user wants the weather, so I call the tool.",
                "",
                [{"name": "get_weather", "arguments": {"city": "Copenhagen"}}],
            ),
        ),
        Case(
            "reply-roundtrip-no-think",
            [ask],
            "no_think",
            enable_thinking=False,
            tools=TOOLS,
            reply=_reply(
                token_map,
                None,
                "Checking.",
                [
                    {"name": "get_weather", "arguments": {"city": "Copenhagen"}},
                    {"name": "get_time", "arguments": {"tz": "Europe/Copenhagen"}},
                ],
            ),
        ),
    ]
