"""``smolserve testkit tokenizer``: build the offline SmolLM3-compatible tokenizer."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("testkit", help="offline stand-ins for tests and the quick start")
    commands = group.add_subparsers(dest="testkit_command", required=True)
    tok = commands.add_parser("tokenizer", help="build a SmolLM3-compatible tokenizer directory")
    tok.add_argument(
        "--out", required=True, metavar="DIR", help="directory to write (created or replaced)"
    )
    tok.add_argument(
        "--tags-special",
        action="store_true",
        help="flag the think, tool-call and tool-response tags special",
    )
    tok.set_defaults(func=_tokenizer)


def _tokenizer(args: argparse.Namespace) -> int:
    from smolserve.testkit import VOCAB_SIZE, build_tokenizer

    path = build_tokenizer(args.out, tags_special=args.tags_special)
    print(
        json.dumps({"path": str(path), "vocab_size": VOCAB_SIZE, "tags_special": args.tags_special})
    )
    return 0
