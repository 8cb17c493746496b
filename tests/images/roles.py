"""The roles of pyproject.toml's extras: which distributions each one installs, and which
modules a process of that role must therefore never import."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Never installed by any role, and never to be imported by one (the template-job image has none).
NEVER = frozenset({"torch"})


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]


def distributions(extra: str | None) -> frozenset[str]:
    """The distributions ``pip install smolserve[extra]`` asks for (None: the base), following
    the extras that name smolserve itself."""
    names = {canonical(_name(req)) for req in project()["dependencies"]}
    pending, seen = [extra] if extra else [], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for req in project()["optional-dependencies"][current]:
            name = canonical(_name(req))
            if name == "smolserve":
                pending += re.search(r"\[([^\]]*)\]", req).group(1).split(",")
            else:
                names.add(name)
    return frozenset(names)


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return match.group(0)


@cache
def _import_names() -> dict[str, frozenset[str]]:
    """Distribution (canonical) → its top-level import names, from what is installed here."""
    names: dict[str, set[str]] = {}
    for top, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            names.setdefault(canonical(dist), set()).add(top)
    return {dist: frozenset(tops) for dist, tops in names.items()}


def forbidden_imports(extra: str | None) -> frozenset[str]:
    """Top-level modules of the distributions that other roles install but this one does not."""
    others = distributions("all") - distributions(extra)
    missing = [d for d in others if d not in _import_names()]
    assert not missing, f"not installed here, so their module names are unknown: {missing}"
    return NEVER.union(*(_import_names()[d] for d in others))


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level modules a ``python -X importtime`` process imported, from its stderr."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name.split(".")[0])
    return names
