"""The user-facing docs match the code: every `smolserve …` command in them parses with the real
CLI, and every relative link points at a file that exists."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from smolserve.cli import build_parser
from smolserve.operator import status

from .helpers import CHART, EXAMPLES, ROOT

DOCS = [
    ROOT / "README.md",
    CHART / "README.md",
    EXAMPLES / "gitops" / "README.md",
    ROOT / "docs" / "images.md",
]


def commands(text: str) -> list[str]:
    """`smolserve …` commands: lines of fenced blocks (or parts after `&&`) that start with it,
    and inline code spans that start with it."""
    found = []
    blocks = re.findall(r"^\s*```[a-z]*\n(.*?)^\s*```", text, re.M | re.S)
    for block in blocks:
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            for part in line.split("&&"):
                part = re.sub(r"^\s*(\.venv/bin/)?", "", part).split(" #")[0].strip()
                if part.startswith("smolserve "):
                    found.append(part)
    prose = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.M | re.S)
    found += [span for span in re.findall(r"`([^`]+)`", prose) if span.startswith("smolserve ")]
    return found


def parses(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code == 0
    return True


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cli_commands_in_docs_parse(doc: Path) -> None:
    cmds = commands(doc.read_text())
    bad = []
    for cmd in cmds:
        argv = shlex.split(cmd)[1:]
        # A bare mention of a command (`smolserve template verify`) must name a real one;
        # anything with options or arguments must parse as written.
        bare = len(argv) <= 2 and not any(a.startswith("-") for a in argv)
        if not parses([*argv, "--help"] if bare else argv):
            bad.append(cmd)
    assert not bad, f"commands in {doc.name} the CLI refuses: {bad}"


def test_readme_names_the_commands_it_documents() -> None:
    cmds = commands((ROOT / "README.md").read_text())
    verbs = {" ".join(shlex.split(c)[1:3]) for c in cmds}
    assert {"template generate", "template verify"} <= verbs, verbs
    assert any(c.startswith("smolserve render -f") for c in cmds), cmds


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL
        if not (doc.parent / target).exists():
            missing.append(target)
    assert not missing, f"{doc.name} links to missing files: {missing}"


def test_readme_code_examples_are_well_formed() -> None:
    """Python blocks compile, curl bodies are JSON, YAML blocks parse."""
    text = (ROOT / "README.md").read_text()
    python = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert python
    for block in python:
        ast.parse(block)
    bodies = re.findall(r"-d '(\{.*?\})'", text, re.S)
    assert bodies
    for body in bodies:
        request = json.loads(body)
        assert request["tools"] and request["messages"]
    for block in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S):
        yaml.safe_load(block)


def test_troubleshooting_table_covers_every_reason() -> None:
    """The README's troubleshooting table names only reasons the operator sets, and every reason
    of a problem or a wait (the healthy ones are named in the line below the table)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    table, after = section.split("\n\n[docs/operator.md]", 1)
    types = {status.TEMPLATE_READY, status.AVAILABLE, status.PROGRESSING, status.DEGRADED}
    types |= {status.AUTOSCALER_READY, status.INFERENCE_POOL_READY}
    types |= {status.SMOKE_TESTED, status.ADAPTERS_READY}
    phases = {status.PENDING, status.PROGRESSING_PHASE, status.READY, status.DEGRADED_PHASE}
    reasons = (
        {value for name, value in vars(status).items() if name.isupper() and isinstance(value, str)}
        - types
        - phases
    )
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {r for row in rows for r in re.findall(r"`([A-Za-z]+)`", row)} - types
    healthy = set(re.findall(r"`([A-Za-z]+)`", after.split("\n\n", 1)[0]))
    assert documented <= reasons, f"not reasons the operator sets: {documented - reasons}"
    assert healthy <= reasons, f"not reasons the operator sets: {healthy - reasons}"
    missing = reasons - documented - healthy
    assert not missing, f"reasons missing from the troubleshooting table: {missing}"
