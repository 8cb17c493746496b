"""The matrix cells known to fail, as rules with their reasons (facts about vLLM 0.32's stock
parsers and the stock/seed templates, pinned by test_vllm_stack.py). The project's template and
parser (`fixed` + `smollm3`) have none; a rule that stops matching, or a new failure, fails the
tier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmatrix import Cell, cells


@dataclass(frozen=True)
class Rule:
    reason: str
    applies: Callable[[Cell], bool]


RULES = (
    Rule(
        "The stock template drops assistant tool calls and renders tool results as plain user "
        "turns: the tool history never reaches the prompt.",
        lambda c: c.variant == "stock" and c.output == "second_turn",
    ),
    Rule(
        "No reasoning parser: the think block (and its tags) stays in `content`.",
        lambda c: c.parser == "none" and c.mode == "think",
    ),
    Rule(
        "deepseek_r1, non-streaming, never looks at the mode or the prompt: without `</think>` "
        "in the output the whole no-think answer is `reasoning`, `content` is null and tool "
        "calls are lost.",
        lambda c: c.parser == "deepseek_r1" and c.mode != "think" and not c.stream,
    ),
    Rule(
        "deepseek_r1, streaming, scans the prompt backwards for `</think>`: the seed template's "
        "bare no-think generation prompt has none, so the answer streams as reasoning (a second "
        "turn passes by accident: the earlier assistant turn's empty think block ends it).",
        lambda c: (
            c.parser == "deepseek_r1"
            and c.variant == "seed"
            and c.mode != "think"
            and c.stream
            and c.output != "second_turn"
        ),
    ),
    Rule(
        "deepseek_r1, streaming, with the stock template in think mode: the default system text "
        "quotes `<think> … </think>`, so the backward prompt scan decides reasoning already "
        "ended and the reasoning streams as `content`.",
        lambda c: (
            c.parser == "deepseek_r1" and c.variant == "stock" and c.mode == "think" and c.stream
        ),
    ),
    Rule(
        "qwen3 takes the mode from the `enable_thinking` kwarg only: with `/no_think` in the "
        "system message, an answer without `</think>` becomes `reasoning` (non-streaming always; "
        "streaming when the generation prompt is bare, as in seed). Tool calls survive: qwen3 "
        "ends reasoning at `<tool_call>`.",
        lambda c: (
            c.parser == "qwen3"
            and c.mode == "no_think_flag"
            and c.output in ("answer", "second_turn")
            and (not c.stream or c.variant == "seed")
        ),
    ),
)


def reasons(cell: Cell) -> list[str]:
    return [rule.reason for rule in RULES if rule.applies(cell)]


def expected_failures(variant: str, parser: str) -> set[str]:
    """The keys of the row's cells that some rule says fail."""
    return {cell.key for cell in cells(variant, parser) if reasons(cell)}
