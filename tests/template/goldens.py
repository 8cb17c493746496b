"""The conversations behind the golden prompts in ``golden/`` (rendered with FROZEN_DATE)."""

from __future__ import annotations

from typing import Any

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _call(name: str, arguments: Any, call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


ASK = {"role": "user", "content": "Weather in Copenhagen and Oslo?"}
TOOL_HISTORY = [
    ASK,
    {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [
            _call("get_weather", {"city": "Copenhagen"}, "call_1"),
            _call("get_weather", '{"city": "Oslo"}', "call_2"),
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "Rain, 4 C"},
    {"role": "tool", "tool_call_id": "call_2", "content": "Snow, -2 C"},
]

# name -> (variant, messages, render keyword arguments)
GOLDEN_CASES: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any]]] = {
    "fixed-think-plain": ("fixed", [ASK], {"enable_thinking": True}),
    "fixed-no-think-plain": ("fixed", [ASK], {"enable_thinking": False}),
    "fixed-think-tool-history": (
        "fixed",
        TOOL_HISTORY,
        {"enable_thinking": True, "tools": [WEATHER_TOOL]},
    ),
    "fixed-no-think-flag-tool-history": (
        "fixed",
        [{"role": "system", "content": "You are a weather bot. /no_think"}, *TOOL_HISTORY],
        {"tools": [WEATHER_TOOL]},
    ),
    "seed-think-plain": ("seed", [ASK], {"enable_thinking": True}),
    "seed-no-think-plain": ("seed", [ASK], {"enable_thinking": False}),
    "stock-no-think-tool-history": (
        "stock",
        TOOL_HISTORY,
        {"enable_thinking": False, "tools": [WEATHER_TOOL]},
    ),
}
