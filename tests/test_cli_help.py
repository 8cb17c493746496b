"""Every command of the ``smolserve`` CLI explains itself: each subcommand and option has help
text, and no help or description carries doc markup (RST or Markdown), which argparse prints as
it is."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

from smolserve.cli import build_parser

# Inline code (`x`, ``x``), bold (**x**), RST roles (:func:`x`), Markdown links ([x](y)).
MARKUP = re.compile(r"`|\*\*|:[a-z]+:|\]\(")


def parsers(
    parser: argparse.ArgumentParser, path: str = "smolserve", summary: str | None = "(root)"
) -> Iterator[tuple[str, argparse.ArgumentParser, str | None]]:
    """(command path, its parser, the help its parent lists it with), root and every subcommand."""
    yield path, parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}", helps.get(name))


def test_every_subcommand_and_option_has_help() -> None:
    missing = []
    for path, parser, summary in parsers(build_parser()):
        if not summary:
            missing.append(f"{path} (the command itself)")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"without help text: {missing}"


def test_help_has_no_doc_markup() -> None:
    found = {}
    for path, parser, _ in parsers(build_parser()):
        text = parser.format_help()
        for line in text.splitlines():
            if MARKUP.search(line):
                found[path] = line.strip()
    assert not found, found


def test_the_markup_check_sees_markup() -> None:
    assert MARKUP.search("The ``smolserve`` command line.")
    assert MARKUP.search("see [the docs](docs/spec.md)")
    assert not MARKUP.search("directory or hub model id (default: chat_template.jinja)")
