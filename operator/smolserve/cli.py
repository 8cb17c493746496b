"""The ``smolserve`` command line.

Each command group lives beside the code it drives and registers itself here through a
``register(subparsers)`` function, so the CLI reuses the same functions as the operator.
A command's handler returns an exit code; a ``SmolserveError`` becomes one clear line on
stderr and its exit code (2 for usage, 1 for failure), and so does a dependency that the
command's extra (pyproject.toml) would have installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from smolserve import __version__
from smolserve.errors import SmolserveError

# What `smolserve --help` says first (plain text: argparse prints it as it is).
DESCRIPTION = (
    "Serve SmolLM3-3B on vLLM with a verified chat template: generate, verify and render chat "
    "templates, print the objects the operator creates, and run the operator."
)
# Modules that contribute command groups, in the order `--help` lists them.
COMMAND_MODULES = (
    "smolserve.template.cli",  # smolserve template generate|verify|render
    "smolserve.testkit.cli",  # smolserve testkit tokenizer
    "smolserve.manifests.cli",  # smolserve render -f
    "smolserve.jobs.cli",  # smolserve job publish-template|fetch-adapters (in-cluster)
    "smolserve.agent.cli",  # smolserve agent run|smoke (the vLLM pods' sidecar)
    "smolserve.operator.cli",  # smolserve operator (runs the kopf operator)
)

# The extra that installs each command's dependencies (`render` needs only the base ones).
COMMAND_EXTRAS = {
    "template": "template",
    "testkit": "template",
    "job": "job",
    "agent": "job",  # the sidecar runs from the template-job image
    "operator": "operator",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default already exits 2
        self.print_usage(sys.stderr)
        self.exit(2, f"smolserve: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smolserve", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"smolserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SmolserveError as exc:
        print(f"smolserve: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        extra = COMMAND_EXTRAS.get(args.command)
        if extra is None or not exc.name or exc.name.partition(".")[0] == "smolserve":
            raise
        print(
            f"smolserve: error: 'smolserve {args.command}' needs {exc.name}, which is not "
            f"installed: pip install 'smolserve[{extra}]'",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
