"""Offline stand-ins for what the API server does with the SmolServe CRD.

- ``structural_problems``: the structural-schema rules, descriptions, and the CEL cost rule
  (every string/list a rule reads must be bounded).
- ``apply_defaults``: structural defaulting, as the API server does it before validation
  (``smolserve.spec``'s, which ``load_spec`` uses too).
- ``schema_errors``: OpenAPI v3.0 validation (openapi-schema-validator), of the schema as
  ``smolserve.spec.openapi_schema`` translates it.
- ``cel_failures``: the ``x-kubernetes-validations`` rules, evaluated with cel-python.

Limits: cel-python is not Kubernetes' CEL (no Kubernetes library functions such as
``quantity()`` or ``isURL()``, which the CRD therefore does not use), and the cost check reads
field paths from the rule text rather than computing Kubernetes' cost estimate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from smolserve.spec import apply_defaults, openapi_schema

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "smolserve.yaml"
MACROS = ("all", "exists", "exists_one", "map", "filter")


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (``.spec.lora.adapters[]`` style)."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def _is_int_or_string(node: dict[str, Any]) -> bool:
    return bool(node.get("x-kubernetes-int-or-string"))


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """Violations of the structural-schema rules the API server enforces, plus ours."""
    problems = []
    for path, node in walk(schema):
        where = path or "<root>"
        if "$ref" in node or "allOf" in node or "oneOf" in node or "not" in node:
            problems.append(f"{where}: $ref/allOf/oneOf/not are not structural here")
        untyped_ok = _is_int_or_string(node) or node.get("x-kubernetes-preserve-unknown-fields")
        if "type" not in node and not untyped_ok:
            problems.append(f"{where}: no type")
        if "anyOf" in node and not _is_int_or_string(node):
            problems.append(f"{where}: anyOf only for int-or-string")
        if _is_int_or_string(node) and "type" in node:
            problems.append(f"{where}: int-or-string must not set type")
        if node.get("properties") and node.get("additionalProperties"):
            problems.append(f"{where}: properties and additionalProperties together")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: array without items")
        if "nullable" in node:
            problems.append(f"{where}: nullable is not used by this CRD")
        # Ours: `kubectl explain` reads every field's description.
        described = node.get("description") or path in ("", ".metadata") or path.endswith("{}")
        if not described:
            problems.append(f"{where}: no description")
        if "default" in node and path.startswith(".status"):
            problems.append(f"{where}: defaults belong to the spec")
        if path == ".metadata" and set(node) - {"type"}:
            problems.append(".metadata: only type is allowed")
    return problems


# --- CEL cost: which nodes does a rule read? ---------------------------------------------------


def resolve(node: dict[str, Any], fields: list[str]) -> dict[str, Any] | None:
    for name in fields:
        props = node.get("properties") or {}
        if name in props:
            node = props[name]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def nodes_read(rule: str, node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(expression, schema node) for each field path a rule reads.

    Variables bound by macros (``self.adapters.all(a, …)``) resolve to the list's items.
    """
    scopes: dict[str, dict[str, Any]] = {"self": node}
    read: list[tuple[str, dict[str, Any]]] = []
    # Bind macro variables in order of appearance (a variable may be bound over another's path).
    macro = re.compile(rf"([A-Za-z_][\w.]*)\.(?:{'|'.join(MACROS)})\((\w+)\s*,")
    for match in macro.finditer(rule):
        base, var = match.group(1), match.group(2)
        head, *fields = base.split(".")
        if head in scopes:
            target = resolve(scopes[head], fields)
            if target is not None:
                read.append((base, target))
                if isinstance(target.get("items"), dict):
                    scopes[var] = target["items"]
    for match in re.finditer(r"(?<![\w.'])([A-Za-z_]\w*(?:\.\w+)*)", rule):
        head, *fields = match.group(1).split(".")
        if head not in scopes or (head == "self" and fields[:1] == ["metadata"]):
            continue  # metadata.name is bounded by the API server itself
        while fields and fields[-1] in (*MACROS, "size", "matches", "startsWith", "contains"):
            fields.pop()
        target = resolve(scopes[head], fields)
        if target is not None:
            read.append((match.group(1), target))
    return read


def unbounded_reads(schema: dict[str, Any]) -> list[str]:
    """Strings and lists that a CEL rule reads without a maxLength/maxItems/enum bound."""
    problems = []
    for path, node in walk(schema):
        for item in node.get("x-kubernetes-validations") or []:
            for expr, target in nodes_read(item["rule"], node):
                kind = "string" if _is_int_or_string(target) else target.get("type")
                if kind == "string" and "maxLength" not in target and "enum" not in target:
                    problems.append(f"{path or '<root>'}: {expr!r} reads an unbounded string")
                if kind == "array" and "maxItems" not in target:
                    problems.append(f"{path or '<root>'}: {expr!r} reads an unbounded list")
                if kind == "array":
                    items = target.get("items") or {}
                    if items.get("type") == "string" and "maxLength" not in items:
                        problems.append(f"{path or '<root>'}: {expr!r} items are unbounded")
                if (
                    kind == "object"
                    and "additionalProperties" in target
                    and ("maxProperties" not in target)
                ):
                    problems.append(f"{path or '<root>'}: {expr!r} reads an unbounded map")
    return problems


# --- validation, CEL ---------------------------------------------------------------


def schema_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    from openapi_schema_validator import OAS30Validator

    # Open objects: the API server prunes unknown fields rather than refusing them.
    validator = OAS30Validator(openapi_schema(schema, closed=False))
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def cel_failures(schema: dict[str, Any], obj: Any) -> list[str]:
    """The messages of every CEL rule that does not hold (rules on absent fields are skipped)."""
    failures: list[str] = []
    _cel(schema, obj, "", failures)
    return failures


def _cel(node: dict[str, Any], value: Any, path: str, failures: list[str]) -> None:
    import celpy

    for item in node.get("x-kubernetes-validations") or []:
        env = celpy.Environment()
        program = env.program(env.compile(item["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and result):
            failures.append(f"{path or '<root>'}: {item.get('message', item['rule'])}")
    if isinstance(value, dict):
        for name, child in (node.get("properties") or {}).items():
            if name in value:
                _cel(child, value[name], f"{path}.{name}", failures)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, element in enumerate(value):
            _cel(node["items"], element, f"{path}[{i}]", failures)


def admit(schema: dict[str, Any], obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Default, validate, then run CEL, as the API server does on create: (object, errors)."""
    defaulted = apply_defaults(schema, obj)
    errors = schema_errors(schema, defaulted)
    if not errors:  # the API server runs CEL only on schema-valid objects
        errors = cel_failures(schema, defaulted)
    return defaulted, errors
