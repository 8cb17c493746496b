"""The conversations behind the golden prompts in ``golden/`` (rendered with FROZEN_DATE).

After a deliberate change to the test kit or the generator, regenerate the files (and review the
diff) with ``PYTHONPATH=operator .venv/bin/python tests/template/goldens.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from smolserve.template import FROZEN_DATE, generate_template, load_tokenizer, render_prompt

GOLDEN_DIR = Path(__file__).parent / "golden"

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


def render_golden(name: str, tokenizer: Any) -> str:
    """The prompt golden ``name`` holds: its variant generated from ``tokenizer``, rendered."""
    variant, messages, kwargs = GOLDEN_CASES[name]
    text = generate_template(tokenizer, variant).text
    return render_prompt(text, tokenizer, messages, today=FROZEN_DATE, **kwargs)


def main() -> int:
    """Rewrite every file in ``golden/`` from the offline test-kit tokenizer."""
    from smolserve.testkit import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_tokenizer(str(build_tokenizer(Path(tmp) / "tokenizer")))
        for name in sorted(GOLDEN_CASES):
            path = GOLDEN_DIR / f"{name}.txt"
            path.write_text(render_golden(name, tokenizer), encoding="utf-8")
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
