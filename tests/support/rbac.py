"""RBAC as the API server's authorizer applies a Role's rules to a request (the emulator
enforces none: tests check the requests a component made against the rules it was given).

A request's attributes follow kube-apiserver's RequestInfo: the verb from the method and the
path (``get``/``list``/``watch``/``create``/``patch``/``update``/``delete``), the API group,
the resource (with its subresource, ``configmaps`` or ``pods/status``), the namespace and the
name, which for a list or watch comes from a ``metadata.name`` field selector (how a Role
limited by ``resourceNames`` can allow a watch of one object).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestAttributes:
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None


def request_attributes(method: str, path: str, query: str = "") -> RequestAttributes:
    parts = [p for p in path.split("/") if p]
    params = urllib.parse.parse_qs(query)
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"not a resource request: {path}")
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    if name is None:
        selector = (params.get("fieldSelector") or [""])[0]
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if key == "metadata.name":
                name = value.lstrip("=")
    watching = (params.get("watch") or ["false"])[0] in ("true", "1")
    verb = {
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete" if rest[1:] else "deletecollection",
    }.get(method)
    if verb is None:
        verb = "watch" if watching else ("get" if len(rest) > 1 else "list")
    return RequestAttributes(verb, group, resource, namespace, name)


def allows(rules: Iterable[Mapping[str, Any]], request: RequestAttributes) -> bool:
    """Whether any rule allows the request (namespaced Role rules; ``*`` matches all)."""

    def matches(values: Iterable[str], value: str) -> bool:
        values = list(values)
        return "*" in values or value in values

    for rule in rules:
        if not matches(rule.get("apiGroups") or [], request.group):
            continue
        if not matches(rule.get("resources") or [], request.resource):
            continue
        if not matches(rule.get("verbs") or [], request.verb):
            continue
        names = rule.get("resourceNames") or []
        if names and (request.name is None or request.name not in names):
            continue
        return True
    return False
