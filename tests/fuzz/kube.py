"""Kubernetes 1.30's schema, strict (unknown fields refused), through kubernetes-validate's own
schema files; the validators are built once per kind, not per object as
``kubernetes_validate.validate`` does (a fuzz run validates thousands)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

VERSION = "1.30.0"
_SCHEMAS = (
    resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{VERSION}-local-strict"
)


@functools.cache
def _registry() -> Registry:
    definitions = json.loads((_SCHEMAS / "_definitions.json").read_text(encoding="utf-8"))
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    """The validator of a built-in kind, or None for a kind Kubernetes does not define."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _SCHEMAS / f"{kind.lower()}-{group}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    registry = Resource.from_contents(schema) @ _registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def is_builtin(obj: dict[str, Any]) -> bool:
    return _validator(obj["apiVersion"], obj["kind"]) is not None


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Why Kubernetes 1.30 refuses ``obj`` (one line each); [] for a third-party kind, which
    tests/manifests checks against its own CRD."""
    validator = _validator(obj["apiVersion"], obj["kind"])
    if validator is None:
        return []
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    return [
        f"{where} {'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
