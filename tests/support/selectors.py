"""Label and field selectors, as the API server reads ``labelSelector`` and ``fieldSelector``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]

# One requirement: `k in (a,b)`, `k notin (a)`, `k=v`, `k==v`, `k!=v`, `k`, `!k`.
_SET_RE = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)([^\s!=(),]+)\s*$")


class SelectorError(ValueError):
    """The selector string does not parse (the API answers 400)."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def label_matcher(selector: str | None) -> Matcher:
    """A predicate over a labels mapping; an empty selector matches everything."""
    checks: list[Matcher] = []
    for requirement in _split(selector or ""):
        if m := _SET_RE.match(requirement):
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ_RE.match(requirement):
            key, op, value = m[1], m[2], m[3]
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _EXISTS_RE.match(requirement):
            negate, key = m[1] == "!", m[2]
            checks.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")
    return lambda labels: all(check(labels) for check in checks)


def field_matcher(selector: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a whole object for ``metadata.name`` / ``metadata.namespace`` selectors."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for requirement in _split(selector or ""):
        m = _EQ_RE.match(requirement)
        if not m or m[1] not in ("metadata.name", "metadata.namespace"):
            raise SelectorError(f"field selector not supported: {requirement!r}")
        field, op, value = m[1].split(".", 1)[1], m[2], m[3]
        equal = op != "!="
        checks.append(
            lambda obj, f=field, v=value, eq=equal: (obj["metadata"].get(f, "") == v) == eq
        )
    return lambda obj: all(check(obj) for check in checks)
