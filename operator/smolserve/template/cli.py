"""``smolserve template generate|verify|render``: thin shells over the engine's functions."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from smolserve.errors import SmolserveError, UsageError


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered == "true"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _add_template_and_tokenizer(parser: argparse.ArgumentParser) -> None:
    """The arguments ``verify`` and ``render`` share: a template file and its tokenizer."""
    parser.add_argument("--template", required=True, metavar="FILE", help="the chat template file")
    parser.add_argument(
        "--tokenizer",
        required=True,
        metavar="SRC",
        help="tokenizer directory or hub model id, for the tag ids and apply_chat_template",
    )
    parser.add_argument("--revision", help="hub revision (commit or tag) of the tokenizer")


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("template", help="generate, verify or render a chat template")
    commands = group.add_subparsers(dest="template_command", required=True)

    gen = commands.add_parser("generate", help="write a chat template derived from a tokenizer")
    gen.add_argument("--tokenizer", required=True, metavar="SRC", help="directory or hub model id")
    gen.add_argument("--revision", help="hub revision (commit or tag) to load")
    gen.add_argument("--variant", default="fixed", help="fixed (default), seed or stock")
    gen.add_argument(
        "--out",
        default="chat_template.jinja",
        metavar="FILE",
        help="where to write the template, atomically (default: chat_template.jinja)",
    )
    gen.add_argument(
        "--close-system-turn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end the system turn even where the stock header leaves it open (default: on)",
    )
    gen.add_argument(
        "--from-template",
        metavar="FILE",
        help="derive from this stock template instead of the tokenizer's own",
    )
    gen.add_argument(
        "--verify",
        action="store_true",
        help="run the verify battery first and write nothing if it fails",
    )
    gen.set_defaults(func=_generate)

    ver = commands.add_parser("verify", help="render the verify battery and check the structure")
    _add_template_and_tokenizer(ver)
    ver.add_argument(
        "--prompt-style",
        default="fixed",
        help="expected generation prompts: fixed (default) or seed (bare /no_think prompt)",
    )
    ver.set_defaults(func=_verify)

    ren = commands.add_parser("render", help="print the prompt a template makes of messages")
    _add_template_and_tokenizer(ren)
    ren.add_argument("--messages", required=True, metavar="FILE", help="JSON list of messages")
    ren.add_argument("--tools", metavar="FILE", help="JSON list of tool definitions")
    ren.add_argument(
        "--enable-thinking",
        type=_bool,
        metavar="true|false",
        help="the enable_thinking template kwarg (default: the template's own default)",
    )
    ren.add_argument(
        "--no-generation-prompt",
        action="store_true",
        help="end after the last message, without the assistant turn's opening",
    )
    ren.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="freeze today's date")
    ren.set_defaults(func=_render)


def _generate(args: argparse.Namespace) -> int:
    from smolserve.template import generate_template, load_tokenizer
    from smolserve.template.files import read_text, write_atomic
    from smolserve.template.generate import check_variant
    from smolserve.template.verify import verify_template

    check_variant(args.variant)  # before the (slow) tokenizer load
    stock = read_text(args.from_template, "stock template") if args.from_template else None
    tokenizer = load_tokenizer(args.tokenizer, args.revision)
    generated = generate_template(
        tokenizer, args.variant, close_system_turn=args.close_system_turn, stock_template=stock
    )
    summary = generated.summary(source=args.tokenizer, revision=args.revision)
    if args.verify:
        style = "seed" if args.variant == "seed" else "fixed"
        report = verify_template(generated.text, tokenizer, prompt_style=style)
        if not report.ok:
            print(report.format(), file=sys.stderr)
            raise SmolserveError(
                f"{args.variant} template failed verification "
                f"({', '.join(sorted(report.failed_checks()))}); nothing written"
            )
        summary["verified"] = True
    summary["out"] = str(write_atomic(args.out, generated.text))
    print(json.dumps(summary, indent=2))
    return 0


def _parsed_template(path: str) -> str:
    """The template file's text; ``UsageError`` naming the file and line if it does not parse."""
    from smolserve.template.files import read_text
    from smolserve.template.render import syntax_error

    text = read_text(path, "template")
    problem = syntax_error(text)
    if problem is not None:
        raise UsageError(f"template {path}: {problem}")
    return text


def _verify(args: argparse.Namespace) -> int:
    from smolserve.template import load_tokenizer
    from smolserve.template.verify import check_prompt_style, verify_template

    check_prompt_style(args.prompt_style)  # before the (slow) tokenizer load
    text = _parsed_template(args.template)
    tokenizer = load_tokenizer(args.tokenizer, args.revision)
    report = verify_template(text, tokenizer, prompt_style=args.prompt_style)
    print(report.format())
    return 0 if report.ok else 1


def _render(args: argparse.Namespace) -> int:
    from smolserve.template import load_tokenizer, render_prompt
    from smolserve.template.files import read_json

    text = _parsed_template(args.template)
    messages = read_json(args.messages, "messages file")
    if not isinstance(messages, list) or not messages:
        raise UsageError(f"messages file {args.messages} must hold a non-empty JSON list")
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise UsageError(
                f"messages file {args.messages}: message {number} must be an object with a role"
            )
    tools = read_json(args.tools, "tools file") if args.tools else None
    if tools is not None and not isinstance(tools, list):
        raise UsageError(f"tools file {args.tools} must hold a JSON list")
    tokenizer = load_tokenizer(args.tokenizer, args.revision)
    prompt = render_prompt(
        text,
        tokenizer,
        messages,
        tools=tools,
        enable_thinking=args.enable_thinking,
        add_generation_prompt=not args.no_generation_prompt,
        today=args.date,
    )
    sys.stdout.write(prompt)
    return 0
