"""Offline stand-ins for what the API server does with SmolServe objects.

What the server checks when the CRD itself is created is ``acceptance.py``'s; this module is
about the objects it then admits:

- ``structural_problems``: the structural-schema rules (``acceptance.structural_errors``)
  plus this project's own (every field described, defaults only in the spec).
- ``apply_defaults``: structural defaulting, as the API server does it before validation
  (``smolserve.spec``'s, which ``load_spec`` uses too).
- ``schema_errors``: OpenAPI v3.0 validation (openapi-schema-validator), of the schema as
  ``smolserve.spec.openapi_schema`` translates it.
- ``cel_failures``: the ``x-kubernetes-validations`` rules, evaluated with cel-python.

Limits: cel-python is not Kubernetes' CEL (no Kubernetes library functions such as
``quantity()`` or ``isURL()``, which the CRD therefore does not use).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from smolserve.spec import apply_defaults, openapi_schema

from .acceptance import structural_errors

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "smolserve.yaml"


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


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """Violations of the structural-schema rules the API server enforces, plus ours."""
    problems = structural_errors(schema, "openAPIV3Schema")
    for path, node in walk(schema):
        where = path or "<root>"
        if "nullable" in node:
            problems.append(f"{where}: nullable is not used by this CRD")
        # Ours: `kubectl explain` reads every field's description.
        described = node.get("description") or path in ("", ".metadata") or path.endswith("{}")
        if not described:
            problems.append(f"{where}: no description")
        if "default" in node and path.startswith(".status"):
            problems.append(f"{where}: defaults belong to the spec")
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
