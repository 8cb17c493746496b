"""What the API server does with the CRD's schema: read it, apply its defaults, validate.

The CRD (``smolserve/crd/smolserve.yaml``, package data; ``crds/`` and the chart carry copies)
is the only statement of field names, types, enums, bounds and defaults. The Kubernetes emulator
used in tests and ``smolserve render`` see objects that were never defaulted or validated, so
``load_spec`` applies the same schema here, with openapi-schema-validator.
"""

from __future__ import annotations

import copy
import functools
import re
from importlib import resources
from typing import Any

import yaml

CRD_RESOURCE = ("crd", "smolserve.yaml")
# The CRD cannot default a field for one source only: these apply with source generate.
GENERATE_DEFAULTS = {"variant": "fixed", "closeSystemTurn": True}
# Deeper than any SmolServe nests (affinity's term values: 9 levels below spec; managedFields:
# about 25), and far from Python's recursion limit, which validating a deeper value reaches.
MAX_DEPTH = 64
# An error message quoting a value longer than this is replaced by the rule it breaks.
_MAX_MESSAGE = 200
# Kubernetes' ObjectMeta (apimachinery meta/v1): every field an object's metadata may carry,
# including those the API server sets (uid, resourceVersion, managedFields, ...), so that the
# objects the operator receives load as well as the ones a user writes.
OBJECT_META_FIELDS = frozenset(
    {
        "annotations",
        "creationTimestamp",
        "deletionGracePeriodSeconds",
        "deletionTimestamp",
        "finalizers",
        "generateName",
        "generation",
        "labels",
        "managedFields",
        "name",
        "namespace",
        "ownerReferences",
        "resourceVersion",
        "selfLink",
        "uid",
    }
)


@functools.cache
def crd() -> dict[str, Any]:
    """The SmolServe CustomResourceDefinition, read from the package."""
    text = resources.files("smolserve").joinpath(*CRD_RESOURCE).read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def crd_schema() -> dict[str, Any]:
    """The CRD's ``openAPIV3Schema``."""
    (version,) = crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def spec_schema() -> dict[str, Any]:
    """The schema of ``spec``."""
    return crd_schema()["properties"]["spec"]


def object_fields() -> frozenset[str]:
    """The top-level fields of a SmolServe: the CRD's (apiVersion, kind, metadata, spec, status)."""
    return frozenset(crd_schema()["properties"])


_ADAPTER_NAME = spec_schema()["properties"]["lora"]["properties"]["adapters"]["items"][
    "properties"
]["name"]
ADAPTER_NAME_RE = re.compile(_ADAPTER_NAME["pattern"])
MAX_ADAPTER_NAME_LENGTH: int = _ADAPTER_NAME["maxLength"]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's ``default``s applied as the API server applies them.

    An absent field gets its default; then the fields of every object that exists (given or
    defaulted) get theirs, so a parent's ``default: {}`` is filled in. Like the server, null
    fields are dropped first (no field of this CRD is nullable).
    """
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for name, child in (node.get("properties") or {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default(child, value[name])
        if isinstance(node.get("additionalProperties"), dict):
            for item in value.values():
                _default(node["additionalProperties"], item)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _default(node["items"], item)


def openapi_schema(node: dict[str, Any], *, closed: bool) -> dict[str, Any]:
    """The CRD schema as plain OpenAPI 3.0, for openapi-schema-validator.

    Kubernetes extensions are dropped (an object that preserves unknown fields gets
    ``additionalProperties: true``). With ``closed``, every other object with ``properties``
    refuses fields it does not name: the API server would prune them, ``load_spec`` refuses
    them so that a misspelt field is not silently ignored.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            value = {name: openapi_schema(child, closed=closed) for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = openapi_schema(value, closed=closed)
        elif key == "anyOf":
            value = [openapi_schema(child, closed=closed) for child in value]
        out[key] = value
    if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") == "object":
        out.setdefault("additionalProperties", True)
    elif closed and "properties" in node:
        out.setdefault("additionalProperties", False)
    return out


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """The ``pattern`` keyword as the API server (RE2) applies it: a final ``$`` is the end of
    the text. Python's ``$`` also matches before a final newline, so ``"4\\n"`` would pass."""
    from jsonschema.exceptions import ValidationError

    anchored = (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    )
    if validator.is_type(instance, "string") and not re.search(anchored, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator() -> Any:
    from jsonschema.validators import extend
    from openapi_schema_validator import OAS30Validator

    validator = extend(OAS30Validator, {"pattern": _re2_pattern})
    return validator(openapi_schema(spec_schema(), closed=True))


def prepare_validator() -> None:
    """Build the spec's validator now (its imports and the schema's compilation, a few hundred
    ms) rather than inside the first ``load_spec``: the operator calls this at start."""
    _validator()


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _step(key: str | int) -> str:
    """One step of a field path: ``[0]``, ``.name``, or a map key quoted (``['a.b/c']``), so a
    key with dots, spaces or newlines keeps the path readable and on one line."""
    if isinstance(key, int):
        return f"[{key}]"
    return f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{key!r}]"


def structure_error(obj: dict[str, Any]) -> str | None:
    """One line for the first field name that is not a string (YAML reads ``1:`` or ``null:``
    as one) or the first value nested deeper than any SmolServe's, in the object's top level,
    ``metadata`` or ``spec``; or ``None``. Checked first, so nothing later recurses too deep."""
    for key in obj:
        if not isinstance(key, str):
            return f"unknown field {key!r} (known: {', '.join(sorted(object_fields()))})"
    for section in ("metadata", "spec"):
        found = _structure_error(obj.get(section), section, 1)
        if found is not None:
            return found
    return None


def _structure_error(value: Any, path: str, depth: int) -> str | None:
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        return f"{path}: nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str):
                return f"{path}: field names must be strings, not {key!r}"
            found = _structure_error(child, path + _step(key), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found = _structure_error(child, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def schema_error(spec: dict[str, Any]) -> str | None:
    """One line naming the field for the most relevant schema violation, or ``None``."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(spec))
    if error is None:
        return None
    where = "".join(_step(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties") or {}
        unknown = sorted(set(error.instance) - set(known))
        return f"spec{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})"
    message = error.message
    if len(message) > _MAX_MESSAGE or "\n" in message:
        message = f"breaks {error.validator}: {error.validator_value!r}"
    return f"spec{where}: {message}"


def unknown_field_error(obj: dict[str, Any]) -> str | None:
    """One line for the first field outside the spec that Kubernetes does not define, or ``None``.

    The API server would prune (or, with ``kubectl apply --validate=strict``, refuse) them; a
    misspelt ``spec`` would otherwise leave every field at its default without a word.
    """
    known = object_fields()
    unknown = sorted(k for k in obj if k not in known)
    if unknown:
        return f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})"
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        unknown = sorted(k for k in meta if k not in OBJECT_META_FIELDS)
        if unknown:
            return (
                f"metadata: unknown field {unknown[0]!r} "
                f"(known: {', '.join(sorted(OBJECT_META_FIELDS))})"
            )
    return None
