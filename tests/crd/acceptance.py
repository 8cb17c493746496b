"""What kube-apiserver checks when a CustomResourceDefinition is created, offline.

``acceptance_errors(crd)`` answers with the errors a real API server (1.30 and newer) gives
for the CRD, in its words and with its field paths, or ``[]``. It follows the server's order
(apiextensions-apiserver ``ValidateCustomResourceDefinition``): names, versions and
subresources; then per schema the OpenAPI rules, the structural-schema rules, and, only if
the schema is structural, every ``default``; and, only if every default holds, the CEL rules'
compilation and cost. So, like the server, it reports cost problems only once the defaults are
fixed.

A ``default`` is checked the way the server checks it: it must survive pruning unchanged,
validate against its own node (types, enums, bounds, patterns, formats), and satisfy every
``x-kubernetes-validations`` rule on that node and below, evaluated on the default *as
written*: the children's defaults are not applied first, so a rule reading a field that only a
child's default would supply fails with "no such key", exactly as on the server.

What it cannot see (see tests/crd/README.md): rules are evaluated with cel-python, not
Kubernetes' CEL (no Kubernetes library functions; a rule needing one is refused here rather
than passed); the cost model is a re-implementation (celcost.py); regex syntax is checked
with Python's ``re`` plus the constructs RE2 lacks; runtime cost budgets, metadata defaults'
coercion and ratcheting are not modelled; nothing here runs an API server.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from smolserve.spec import openapi_schema

from .celcost import (
    UNBOUNDED,
    CelCompileError,
    estimate,
    max_cardinality,
    parse,
    schema_decl,
    uses_variable,
)
from .celeval import rule_failures
from .fielderrors import OMIT, forbidden, invalid, not_supported, required

PER_RULE_LIMIT = 10_000_000  # StaticEstimatedCostLimit
CRD_LIMIT = 100_000_000  # StaticEstimatedCRDCostLimit
TYPES = ("array", "boolean", "integer", "number", "object", "string")
# The fields of apiextensions.k8s.io/v1 JSONSchemaProps, as they are spelt in YAML.
SCHEMA_FIELDS = {
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties",
    "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not", "properties",
    "additionalProperties", "patternProperties", "dependencies", "additionalItems",
    "definitions", "externalDocs", "example", "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type", "x-kubernetes-map-type", "x-kubernetes-validations",
}  # fmt: skip
# With the status subresource, only these may be set on the root schema.
ROOT_FIELDS_WITH_STATUS = {
    "description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "multipleOf", "required", "items", "properties", "externalDocs", "example",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
}  # fmt: skip
UNSUPPORTED = {
    "id": "id is not supported",
    "additionalItems": "additionalItems is not supported",
    "patternProperties": "patternProperties is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "$ref": "$ref is not supported",
}
META_FIELDS = ("apiVersion", "kind", "metadata")
JUNCTORS = ("allOf", "anyOf", "oneOf")
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
VALIDATION_REASONS = ("FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid",
                      "FieldValueDuplicate")  # fmt: skip
_DNS1035 = re.compile(r"^(?=.{1,63}$)[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
DNS1035_WORDS = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
SUBDOMAIN_WORDS = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
# Perl constructs RE2 lacks: lookaround, backreferences, atomic groups, possessive repetition.
_NOT_RE2 = re.compile(r"\(\?(=|!|<=|<!|>|P=)|\\[1-9]|\\Z|(?<!\\)[*+?}]\+")


def cost_message(what: str, cost: int, limit: int) -> str:
    factor = cost / limit
    if factor > 100:
        shown = "more than 100x"
    elif factor < 1.5:
        shown = f"{factor:f}x"
    else:
        shown = f"{factor:.1f}x"
    return (
        f"{what} exceeds budget by factor of {shown} (try simplifying the rule, or adding "
        "maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )


# --- the whole CRD ---------------------------------------------------------------------------


def acceptance_errors(crd: dict[str, Any]) -> list[str]:
    """Every error a real API server answers when this CRD is created (HTTP 422), or []."""
    spec = crd.get("spec") or {}
    errors = _spec_errors(crd, spec)
    versions = spec.get("versions") or []
    schemas = [(v.get("schema") or {}).get("openAPIV3Schema") for v in versions]
    any_status = any("status" in (v.get("subresources") or {}) for v in versions)
    # The server stores identical per-version schemas once, as spec.validation.
    if schemas and all(s == schemas[0] for s in schemas):
        if schemas[0] is not None:
            errors += schema_errors(schemas[0], "spec.validation.openAPIV3Schema", any_status)
    else:
        for i, (version, schema) in enumerate(zip(versions, schemas, strict=True)):
            if schema is not None:
                status = "status" in (version.get("subresources") or {})
                path = f"spec.versions[{i}].schema.openAPIV3Schema"
                errors += schema_errors(schema, path, status)
    return errors


def _spec_errors(crd: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    names = spec.get("names") or {}
    group, plural = spec.get("group") or "", names.get("plural") or ""
    name = (crd.get("metadata") or {}).get("name")
    if name != f"{plural}.{group}":
        errors.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errors.append(required("spec.group"))
    elif not _DNS1123_SUBDOMAIN.match(group) or len(group) > 253:
        errors.append(invalid("spec.group", group, SUBDOMAIN_WORDS))
    elif "." not in group:
        errors.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if spec.get("scope") not in ("Cluster", "Namespaced"):
        errors.append(not_supported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"]))
    errors += _names_errors(names)
    versions = spec.get("versions") or []
    if sum(bool(v.get("storage")) for v in versions) != 1:
        errors.append(
            invalid(
                "spec.versions", OMIT, "must have exactly one version marked as storage version"
            )
        )
    if len({v.get("name") for v in versions}) != len(versions):
        errors.append(invalid("spec.versions", OMIT, "must contain unique version names"))
    for i, version in enumerate(versions):
        if not _DNS1035.match(str(version.get("name"))):
            errors.append(invalid(f"spec.versions[{i}].name", version.get("name"), DNS1035_WORDS))
        if (version.get("schema") or {}).get("openAPIV3Schema") is None:
            errors.append(required(f"spec.versions[{i}].schema.openAPIV3Schema"))
    errors += _per_version_errors(versions)
    return errors


def _names_errors(names: dict[str, Any]) -> list[str]:
    errors = []
    kind = names.get("kind") or ""
    list_kind = names.get("listKind") or f"{kind}List"  # defaulted by the server
    singular = names.get("singular") or kind.lower()  # defaulted by the server
    for key, value in (("plural", names.get("plural")), ("singular", singular)):
        if not value:
            errors.append(required(f"spec.names.{key}"))
        elif not _DNS1035.match(value):
            errors.append(invalid(f"spec.names.{key}", value, DNS1035_WORDS))
    for key, value in (("kind", kind), ("listKind", list_kind)):
        if not value:
            errors.append(required(f"spec.names.{key}"))
        elif not _DNS1035.match(value.lower()):
            errors.append(
                invalid(
                    f"spec.names.{key}",
                    value,
                    f"may have mixed case, but should otherwise match: {DNS1035_WORDS}",
                )
            )
    if kind and kind == list_kind:
        errors.append(
            invalid("spec.names.listKind", list_kind, "kind and listKind may not be the same")
        )
    for i, short in enumerate(names.get("shortNames") or []):
        if not _DNS1035.match(short):
            errors.append(invalid(f"spec.names.shortNames[{i}]", short, DNS1035_WORDS))
    return errors


def _per_version_errors(versions: list[dict[str, Any]]) -> list[str]:
    """Subresources and printer columns (stored once under spec when identical everywhere)."""
    errors = []
    for key, check in (
        ("subresources", _subresource_errors),
        ("additionalPrinterColumns", _column_errors),
    ):
        values = [v.get(key) for v in versions]
        if values and all(x == values[0] for x in values):
            errors += check(values[0], f"spec.{key}")
        else:
            for i, value in enumerate(values):
                errors += check(value, f"spec.versions[{i}].{key}")
    return errors


def _subresource_errors(subresources: dict[str, Any] | None, path: str) -> list[str]:
    scale = (subresources or {}).get("scale")
    if scale is None:
        return []
    errors = []
    for key, roots in (
        ("specReplicasPath", (".spec",)),
        ("statusReplicasPath", (".status",)),
        ("labelSelectorPath", (".spec", ".status")),
    ):
        value = scale.get(key)
        where = f"{path}.scale.{key}"
        if value is None:
            if key != "labelSelectorPath":
                errors.append(required(where))
        elif not re.fullmatch(r"(\.[A-Za-z0-9_-]+)+", value):
            errors.append(invalid(where, value, "must be a json path in the dot notation"))
        elif not any(value.startswith(f"{r}.") for r in roots):
            under = " or ".join(roots)
            errors.append(invalid(where, value, f"should be a json path under {under}"))
    return errors


def _column_errors(columns: list[dict[str, Any]] | None, path: str) -> list[str]:
    errors = []
    types = ("boolean", "date", "integer", "number", "string")
    formats = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
    for i, column in enumerate(columns or []):
        where = f"{path}[{i}]"
        if not column.get("name"):
            errors.append(required(f"{where}.name"))
        if column.get("type") not in types:
            detail = f"must be one of {','.join(types)}"
            errors.append(invalid(f"{where}.type", column.get("type"), detail))
        if column.get("format") and column["format"] not in formats:
            detail = f"must be one of {','.join(formats)}"
            errors.append(invalid(f"{where}.format", column["format"], detail))
        if not column.get("jsonPath"):
            errors.append(required(f"{where}.JSONPath"))
    return errors


# --- one schema ---------------------------------------------------------------------------------


def schema_errors(schema: dict[str, Any], path: str, status_enabled: bool = False) -> list[str]:
    """The errors for one ``openAPIV3Schema`` (``path`` names it as the server does)."""
    errors = []
    if status_enabled:
        if schema.get("type", "object") != "object":
            detail = (
                'only "object" is allowed as the type at the root of the schema if the status '
                "subresource is enabled"
            )
            errors.append(invalid(f"{path}.type", schema.get("type"), detail))
        elif {k for k, v in schema.items() if v not in (None, False)} - ROOT_FIELDS_WITH_STATUS:
            fields = ", ".join(sorted(ROOT_FIELDS_WITH_STATUS))
            detail = (
                f"only {fields} fields are allowed at the root of the schema if the status "
                "subresource is enabled"
            )
            errors.append(invalid(path, OMIT, detail))
    if schema.get("nullable"):
        errors.append(forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    structural = structural_errors(schema, path)
    cel: RuleCosts | None = None
    if structural:
        errors += structural
    elif defaults := default_errors(schema, path):
        errors += defaults
    else:
        cel = RuleCosts()  # CEL rules are compiled only for structural schemas with valid defaults
    errors += _openapi_errors(schema, path, _Context(is_root=True, cardinality=1), cel)
    if cel is not None and cel.total > CRD_LIMIT:
        for rule_path in cel.most_expensive():
            errors.append(
                forbidden(
                    rule_path,
                    "contributed to estimated rule cost total exceeding cost limit for entire "
                    "OpenAPIv3 schema",
                )
            )
        what = "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema"
        errors.append(forbidden(path, cost_message(what, cel.total, CRD_LIMIT)))
    return errors


def rule_costs(schema: dict[str, Any], path: str) -> RuleCosts:
    """The estimated cost of every rule of a schema (for rules that compile)."""
    costs = RuleCosts()
    _openapi_errors(schema, path, _Context(is_root=True, cardinality=1), costs)
    return costs


# --- the OpenAPI rules and CEL compilation (ValidateCustomResourceDefinitionOpenAPISchema) -------


@dataclass(frozen=True)
class _Context:
    is_root: bool = False
    allow_defaults: bool = True
    defaults_reason: str = ""
    inside_meta: bool = False
    old_self_forbidden_under: str | None = None
    cardinality: int | None = None  # None: under an unbounded list or map

    def child(self, **changes: Any) -> _Context:
        return _Context(**{**self.__dict__, "is_root": False, **changes})


@dataclass
class RuleCosts:
    """Each CEL rule's (and messageExpression's) estimated cost, times its node's cardinality."""

    costs: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return min(sum(self.costs.values()), UNBOUNDED)

    def most_expensive(self) -> list[str]:
        """The (at most 4) rules the server names when the total is over budget."""
        big = [(cost, path) for path, cost in self.costs.items() if cost >= CRD_LIMIT // 100]
        return [path for _, path in sorted(big, key=lambda x: -x[0])[:4]]


def _times(cardinality: int | None, factor: int | None) -> int | None:
    if cardinality is None or factor is None:
        return None
    return min(cardinality * factor, UNBOUNDED)


def _max_elements(node: dict[str, Any]) -> int | None:
    """How many children a node can hold (None: unbounded), for the cardinality of rules."""
    if node.get("type") == "object" and "additionalProperties" in node:
        return max(node["maxProperties"], 0) if "maxProperties" in node else None
    if node.get("type") == "array":
        return max(node["maxItems"], 0) if "maxItems" in node else None
    return 1


@dataclass
class _Found:
    """The server keeps schema errors and CEL errors apart and reports the schema's first."""

    schema: list[str] = field(default_factory=list)
    cel: list[str] = field(default_factory=list)


def _openapi_errors(node: Any, path: str, ctx: _Context, cel: RuleCosts | None) -> list[str]:
    found = _Found()
    _openapi(node, path, ctx, cel, found)
    return found.schema + found.cel


def _openapi(node: Any, path: str, ctx: _Context, cel: RuleCosts | None, found: _Found) -> None:
    if not isinstance(node, dict):
        return
    before = len(found.schema)
    errors = found.schema
    errors += [
        f'{path}.{key}: strict decoding error: unknown field "{key}"'
        for key in node
        if key not in SCHEMA_FIELDS
    ]
    errors += _standard_errors(node, path, ctx)
    if node.get("uniqueItems"):
        detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        errors.append(forbidden(f"{path}.uniqueItems", detail))
    properties = node.get("properties") or {}
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        if properties and extra is not True:
            detail = "additionalProperties and properties are mutual exclusive"
            errors.append(forbidden(f"{path}.additionalProperties", detail))
        sub = ctx.child(cardinality=_times(ctx.cardinality, _max_elements(node)))
        if ctx.inside_meta:
            sub = sub.child(
                allow_defaults=False,
                defaults_reason="inside additionalProperties applying to object metadata",
            )
        _openapi(extra, f"{path}.additionalProperties", sub, cel, found)
    for name, child in properties.items():
        sub = ctx.child(cardinality=_times(ctx.cardinality, _max_elements(node)))
        if node.get("x-kubernetes-map-type") not in (None, "granular", "atomic"):
            sub = sub.child(old_self_forbidden_under=ctx.old_self_forbidden_under or path)
        if (ctx.is_root or node.get("x-kubernetes-embedded-resource")) and name in META_FIELDS:
            sub = sub.child(inside_meta=True)
            if ctx.is_root:
                sub = sub.child(allow_defaults=False, defaults_reason=f"in top-level {name}")
        _openapi(child, f"{path}.properties[{name}]", sub, cel, found)
    nested = ctx.child(cardinality=ctx.cardinality)
    _openapi(node.get("not"), f"{path}.not", nested, None, found)
    for junctor in JUNCTORS:
        for i, child in enumerate(node.get(junctor) or []):
            _openapi(child, f"{path}.{junctor}[{i}]", nested, None, found)
    if isinstance(node.get("items"), dict):
        sub = ctx.child(cardinality=_times(ctx.cardinality, _max_elements(node)))
        if node.get("x-kubernetes-list-type") != "map":
            sub = sub.child(old_self_forbidden_under=ctx.old_self_forbidden_under or path)
        _openapi(node["items"], f"{path}.items", sub, cel, found)
    errors += _extension_errors(node, path)
    errors += _rule_format_errors(node, path)
    # Rules are compiled only where this node and those below it have no schema errors.
    if len(found.schema) == before and cel is not None and node.get("x-kubernetes-validations"):
        found.cel += _compile_rules(node, path, ctx, cel)


def _standard_errors(node: dict[str, Any], path: str, ctx: _Context) -> list[str]:
    """specStandardValidatorV3.validate."""
    errors = []
    kind = node.get("type")
    if kind is not None and kind not in TYPES:
        errors.append(not_supported(f"{path}.type", kind, list(TYPES)))
    if "default" in node and not ctx.allow_defaults:
        detail = "must not be set" + (f" {ctx.defaults_reason}" if ctx.defaults_reason else "")
        errors.append(forbidden(f"{path}.default", detail))
    for key, detail in UNSUPPORTED.items():
        if node.get(key):
            errors.append(forbidden(f"{path}.{key}", detail))
    if kind == "null":
        errors.append(
            forbidden(f"{path}.type", "type cannot be set to null, use nullable as an alternative")
        )
    if isinstance(node.get("items"), list):
        errors.append(forbidden(f"{path}.items", "items must be a schema object and not an array"))
    if ctx.inside_meta and node.get("x-kubernetes-embedded-resource"):
        detail = "must not be used inside of resource meta"
        errors.append(forbidden(f"{path}.x-kubernetes-embedded-resource", detail))
    return errors


def _extension_errors(node: dict[str, Any], path: str) -> list[str]:
    """The x-kubernetes-* placement rules."""
    errors = []
    kind = node.get("type")
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        errors.append(
            invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"
            )
        )
    map_type = node.get("x-kubernetes-map-type")
    if map_type is not None:
        if kind != "object":
            errors.append(_type_must_be(path, kind, "object", "x-kubernetes-map-type"))
        if map_type not in ("atomic", "granular"):
            errors.append(
                not_supported(f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"])
            )
    list_type = node.get("x-kubernetes-list-type")
    items = node.get("items") if isinstance(node.get("items"), dict) else None
    if list_type is not None and kind != "array":
        errors.append(_type_must_be(path, kind, "array", "x-kubernetes-list-type"))
    elif list_type == "set" and items is not None:
        detail = "must be atomic as item of a list with x-kubernetes-list-type=set"
        if (
            items.get("type") == "array"
            and items.get("x-kubernetes-list-type", "atomic") != "atomic"
        ):
            errors.append(invalid(f"{path}.items.x-kubernetes-list-type", list_type, detail))
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            errors.append(invalid(f"{path}.items.x-kubernetes-map-type", list_type, detail))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errors.append(
            not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"])
        )
    keys = node.get("x-kubernetes-list-map-keys") or []
    if keys and list_type is None:
        errors.append(
            required(
                f"{path}.x-kubernetes-list-type",
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )
        )
    elif keys and list_type != "map":
        errors.append(
            invalid(
                f"{path}.x-kubernetes-list-type",
                list_type,
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )
        )
    if list_type == "map":
        errors += _list_map_errors(node, path, keys, items)
    if list_type in ("set", "map") and items is not None:
        if items.get("nullable"):
            errors.append(
                forbidden(
                    f"{path}.items.nullable",
                    f"cannot be nullable when x-kubernetes-list-type is {list_type}",
                )
            )
        if list_type == "map":
            props, needed = items.get("properties") or {}, set(items.get("required") or [])
            for key in keys:
                if key not in props:
                    continue
                where = f"{path}.items.properties[{key}]"
                if key not in needed and "default" not in props[key]:
                    detail = (
                        "this property is in x-kubernetes-list-map-keys, so it must have a "
                        "default or be a required property"
                    )
                    errors.append(required(f"{where}.default", detail))
                if props[key].get("nullable"):
                    detail = (
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
                    )
                    errors.append(forbidden(f"{where}.nullable", detail))
    return errors


def _type_must_be(path: str, kind: Any, wanted: str, because: str) -> str:
    detail = f"must be {wanted} if {because} is specified"
    if kind is None:
        return required(f"{path}.type", detail)
    return invalid(f"{path}.type", kind, detail)


def _list_map_errors(
    node: dict[str, Any], path: str, keys: list[str], items: dict[str, Any] | None
) -> list[str]:
    errors = []
    if not keys:
        errors.append(
            required(
                f"{path}.x-kubernetes-list-map-keys",
                "must not be empty if x-kubernetes-list-type is map",
            )
        )
    if "items" not in node:
        errors.append(
            required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map")
        )
    if items is None:
        return errors
    if items.get("type") != "object":
        errors.append(
            invalid(
                f"{path}.items.type",
                items.get("type"),
                "must be object if parent array's x-kubernetes-list-type is map",
            )
        )
        return errors
    props = items.get("properties") or {}
    for i, key in enumerate(keys):
        if key not in props:
            errors.append(
                invalid(
                    f"{path}.x-kubernetes-list-map-keys",
                    keys,
                    "entries must all be names of item properties",
                )
            )
        elif props[key].get("type") in ("array", "object"):
            detail = "must be a scalar type if parent array's x-kubernetes-list-type is map"
            errors.append(invalid(f"{path}.items.properties[{key}].type", "object", detail))
        if key in keys[:i]:
            errors.append(
                invalid(
                    f"{path}.x-kubernetes-list-map-keys", keys, "must not contain duplicate entries"
                )
            )
    return errors


def _rule_format_errors(node: dict[str, Any], path: str) -> list[str]:
    errors = []
    for i, rule in enumerate(node.get("x-kubernetes-validations") or []):
        where = f"{path}.x-kubernetes-validations[{i}]"
        text, message = rule.get("rule") or "", rule.get("message")
        if not text.strip():
            errors.append(required(f"{where}.rule", "rule is not specified"))
        elif message is not None and message and not message.strip():
            errors.append(invalid(f"{where}.message", message, "must be non-empty if specified"))
        elif message and re.search(r"[\n\r]", message.strip()):
            errors.append(invalid(f"{where}.message", message, "must not contain line breaks"))
        elif re.search(r"[\n\r]", text.strip()) and not (message or "").strip():
            errors.append(
                required(
                    f"{where}.message", "message must be specified if rule contains line breaks"
                )
            )
        expression = rule.get("messageExpression")
        if expression is not None and expression and not expression.strip():
            errors.append(
                required(
                    f"{where}.messageExpression", "messageExpression must be non-empty if specified"
                )
            )
        if "reason" in rule and rule["reason"] not in VALIDATION_REASONS:
            errors.append(
                not_supported(f"{where}.reason", rule["reason"], list(VALIDATION_REASONS))
            )
        if "fieldPath" in rule:
            errors += _field_path_errors(node, rule["fieldPath"], f"{where}.fieldPath")
    return errors


def _field_path_errors(node: dict[str, Any], value: str, where: str) -> list[str]:
    if not value.strip():
        return [invalid(where, value, "must be non-empty if specified")]
    if re.search(r"[\n\r]", value):
        return [invalid(where, value, "must not contain line breaks")]
    if resolve_field_path(node, value) is None:
        return [invalid(where, value, "must be a valid path")]
    return []


def resolve_field_path(node: dict[str, Any], value: str) -> dict[str, Any] | None:
    """The schema node a rule's fieldPath (``.a.b``, ``['c']``, ``[0]``) names, or None."""
    for token in re.findall(r"\.([A-Za-z_][\w-]*)|\['([^']*)'\]|\[(\d+)\]|(.)", value):
        name = token[0] or token[1]
        if token[3]:
            return None
        if token[2]:
            node = node.get("items") if isinstance(node.get("items"), dict) else None
        elif name in (node.get("properties") or {}):
            node = node["properties"][name]
        elif isinstance(node.get("additionalProperties"), dict) and token[1]:
            node = node["additionalProperties"]
        else:
            return None
        if node is None:
            return None
    return node


def _compile_rules(node: dict[str, Any], path: str, ctx: _Context, cel: RuleCosts) -> list[str]:
    errors = []
    decl = schema_decl(node, ctx.is_root or bool(node.get("x-kubernetes-embedded-resource")))
    if decl is None:
        return [
            f"{path}.x-kubernetes-validations: Internal error: failed to retrieve type "
            "information for x-kubernetes-validations"
        ]
    cardinality = ctx.cardinality if ctx.cardinality is not None else max_cardinality(decl)
    for i, rule in enumerate(node["x-kubernetes-validations"]):
        where = f"{path}.x-kubernetes-validations[{i}]"
        try:
            tree = parse(rule["rule"])
            result = estimate(tree, decl)
        except CelCompileError as err:
            errors.append(invalid(f"{where}.rule", rule, f"compilation failed: {err}"))
            continue
        if result.type.kind != "bool":
            errors.append(invalid(f"{where}.rule", rule, "cel expression must evaluate to a bool"))
            continue
        cost = min(result.cost.hi * cardinality, UNBOUNDED)
        if cost > PER_RULE_LIMIT:
            errors.append(
                forbidden(
                    f"{where}.rule", cost_message("estimated rule cost", cost, PER_RULE_LIMIT)
                )
            )
        cel.costs[f"{where}.rule"] = cost
        if rule.get("messageExpression"):
            errors += _compile_message_expression(rule["messageExpression"], decl, where, cel)
        if uses_variable(tree, "oldSelf"):
            if ctx.old_self_forbidden_under is not None:
                detail = (
                    "oldSelf cannot be used on the uncorrelatable portion of the schema within "
                    f"{ctx.old_self_forbidden_under}"
                )
                errors.append(invalid(f"{where}.rule", rule["rule"], detail))
        elif "optionalOldSelf" in rule:
            errors.append(
                invalid(
                    f"{where}.optionalOldSelf",
                    rule["optionalOldSelf"],
                    "may not be set if oldSelf is not used in rule",
                )
            )
    return errors


def _compile_message_expression(
    expression: str, decl: Any, where: str, cel: RuleCosts
) -> list[str]:
    try:
        result = estimate(expression, decl)
    except CelCompileError as err:
        return [
            invalid(
                f"{where}.messageExpression",
                expression,
                f"messageExpression compilation failed: {err}",
            )
        ]
    if result.type.kind != "string":
        return [
            invalid(
                f"{where}.messageExpression",
                expression,
                "messageExpression must evaluate to a string",
            )
        ]
    cel.costs[f"{where}.messageExpression"] = result.cost.hi
    if result.cost.hi > PER_RULE_LIMIT:
        message = cost_message("estimated messageExpression cost", result.cost.hi, PER_RULE_LIMIT)
        return [forbidden(f"{where}.messageExpression", message)]
    return []


# --- structural schemas (ValidateStructural) ---------------------------------------------------

_ROOT, _ITEM, _FIELD = "root", "item", "field"
_MISSING_TYPE = {
    _ROOT: "must not be empty at the root",
    _ITEM: "must not be empty for specified array items",
    _FIELD: "must not be empty for specified object fields",
}
# What a value validation (inside allOf/anyOf/oneOf/not) must not set, and the detail.
_NESTED_FORBIDDEN = {
    "type": "must be empty to be structural",
    "additionalProperties": "must be undefined to be structural",
    "default": "must be undefined to be structural",
    "title": "must be empty to be structural",
    "description": "must be empty to be structural",
    "nullable": "must be false to be structural",
    "x-kubernetes-preserve-unknown-fields": "must be false to be structural",
    "x-kubernetes-embedded-resource": "must be false to be structural",
    "x-kubernetes-int-or-string": "must be false to be structural",
    "x-kubernetes-list-map-keys": "must be empty to be structural",
    "x-kubernetes-list-type": "must be undefined to be structural",
    "x-kubernetes-map-type": "must be undefined to be structural",
    "x-kubernetes-validations": "must be empty to be structural",
}


def structural_errors(schema: dict[str, Any], path: str) -> list[str]:
    """The structural-schema rules (Kubernetes docs: "Specifying a structural schema")."""
    errors = _structural(schema, _ROOT, path) + _completeness(schema, schema, path, path)
    return sorted(errors)


def _structural(node: Any, level: str, path: str) -> list[str]:
    if not isinstance(node, dict):
        return []
    errors = []
    kind = node.get("type")
    if kind == "array" and "items" not in node:
        errors.append(required(f"{path}.items", "must be specified"))
    errors += _structural(node.get("items"), _ITEM, f"{path}.items")
    for name, child in (node.get("properties") or {}).items():
        errors += _structural(child, _FIELD, f"{path}.properties[{name}]")
    if "additionalProperties" in node:
        if level == _ROOT:
            errors.append(forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        errors += _structural(node["additionalProperties"], _FIELD, f"{path}.additionalProperties")
    int_or_string = bool(node.get("x-kubernetes-int-or-string"))
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(node.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        errors.append(
            invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        errors.append(
            invalid(
                f"{path}.x-kubernetes-embedded-resource",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    errors += _value_validation_errors(
        node,
        path,
        skip_any_of=node.get("anyOf") == INT_OR_STRING_ANY_OF,
        skip_first_all_of=_all_of_is_int_or_string(node),
    )
    if embedded and kind != "object":
        errors.append(
            _type_must_be(path, kind, "object", "x-kubernetes-embedded-resource").replace(
                "is specified", "is true"
            )
        )
    elif kind is None and not int_or_string and not preserve:
        errors.append(required(f"{path}.type", _MISSING_TYPE[level]))
    if embedded and "additionalProperties" in node:
        errors.append(
            forbidden(
                f"{path}.additionalProperties",
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == _ROOT and kind is not None and kind != "object":
        errors.append(invalid(f"{path}.type", kind, "must be object at the root"))
    check_metadata = level == _ROOT or embedded
    properties = node.get("properties") or {}
    for name in ("kind", "apiVersion"):
        if check_metadata and name in properties and properties[name].get("type") != "string":
            errors.append(
                invalid(
                    f"{path}.properties[{name}].type",
                    properties[name].get("type"),
                    "must be string",
                )
            )
    if "metadata" in properties:
        errors += _metadata_errors(
            properties["metadata"], check_metadata, level, f"{path}.properties[metadata]"
        )
    if embedded and not preserve and not properties:
        errors.append(
            required(
                f"{path}.properties",
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        )
    return errors


def _all_of_is_int_or_string(node: dict[str, Any]) -> bool:
    all_of = node.get("allOf") or []
    return (
        bool(all_of)
        and isinstance(all_of[0], dict)
        and all_of[0].get("anyOf") == INT_OR_STRING_ANY_OF
    )


def _metadata_errors(
    meta: dict[str, Any], check_metadata: bool, level: str, path: str
) -> list[str]:
    errors = []
    if check_metadata and meta.get("type") != "object":
        errors.append(invalid(f"{path}.type", meta.get("type"), "must be object"))
    if level == _ROOT:
        rest = set(meta) - {"type", "default"}
        names = set(meta.get("properties") or {})
        if not names or names <= {"name", "generateName"}:
            rest.discard("properties")
        if rest:
            detail = (
                "must not specify anything other than name and generateName, but metadata is "
                "implicitly specified"
            )
            errors.append(forbidden(path, detail))
    return errors


def _value_validation_errors(
    node: dict[str, Any], path: str, *, skip_any_of: bool, skip_first_all_of: bool
) -> list[str]:
    errors = []
    if not skip_any_of:
        for i, sub in enumerate(node.get("anyOf") or []):
            errors += _nested_errors(sub, f"{path}.anyOf[{i}]", skip_any_of=False)
    for i, sub in enumerate(node.get("allOf") or []):
        errors += _nested_errors(
            sub, f"{path}.allOf[{i}]", skip_any_of=skip_first_all_of and i == 0
        )
    for i, sub in enumerate(node.get("oneOf") or []):
        errors += _nested_errors(sub, f"{path}.oneOf[{i}]", skip_any_of=False)
    if isinstance(node.get("not"), dict):
        errors += _nested_errors(node["not"], f"{path}.not", skip_any_of=False)
    if "pattern" in node and (problem := regex_problem(node["pattern"])):
        errors.append(
            invalid(
                f"{path}.pattern",
                node["pattern"],
                f"must be a valid regular expression, but isn't: {problem}",
            )
        )
    return errors


def regex_problem(pattern: str) -> str | None:
    """Why RE2 (Go's regexp) would refuse a pattern, as far as Python's re can tell."""
    if match := _NOT_RE2.search(pattern):
        return f"invalid or unsupported Perl syntax: `{match.group(0)}`"
    try:
        re.compile(pattern.replace(r"\z", r"\Z"))  # RE2's end of text is \z, Python's \Z
    except re.error as err:
        return str(err)
    return None


def _nested_errors(node: Any, path: str, *, skip_any_of: bool) -> list[str]:
    if not isinstance(node, dict):
        return []
    errors = _value_validation_errors(node, path, skip_any_of=skip_any_of, skip_first_all_of=False)
    errors += _nested_errors(node.get("items"), f"{path}.items", skip_any_of=False)
    for name, child in (node.get("properties") or {}).items():
        errors += _nested_errors(child, f"{path}.properties[{name}]", skip_any_of=False)
    for key, detail in _NESTED_FORBIDDEN.items():
        if node.get(key) not in (None, False, [], {}, ""):
            errors.append(forbidden(f"{path}.{key}", detail))
    if "metadata" in (node.get("properties") or {}):
        errors.append(
            forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context")
        )
    return errors


def _completeness(node: Any, structure: Any, spath: str, vpath: str) -> list[str]:
    """Everything a value validation names must also be specified structurally.

    Like the server, this looks at the value validations of the node it is given (for the
    schema: its root) and what they nest, not at every node's.
    """
    if not isinstance(node, dict):
        return []
    subs = [(f"{vpath}.not", node["not"])] if isinstance(node.get("not"), dict) else []
    for key in JUNCTORS:
        subs += [(f"{vpath}.{key}[{i}]", sub) for i, sub in enumerate(node.get(key) or [])]
    errors = []
    for where, sub in subs:
        errors += _nested_completeness(sub, structure, spath, where)
    return errors


def _nested_completeness(node: Any, structure: Any, spath: str, vpath: str) -> list[str]:
    if not isinstance(node, dict):
        return []
    if not isinstance(structure, dict):
        return [required(spath, f"because it is defined in {vpath}")]
    errors = _completeness(node, structure, spath, vpath)
    if isinstance(node.get("items"), dict):
        errors += _nested_completeness(
            node["items"], structure.get("items"), f"{spath}.items", f"{vpath}.items"
        )
    known = structure.get("properties") or {}
    for name, sub in (node.get("properties") or {}).items():
        errors += _nested_completeness(
            sub, known.get(name), f"{spath}.properties[{name}]", f"{vpath}.properties[{name}]"
        )
    return errors


# --- defaults (ValidateDefaults) -----------------------------------------------------------------


def default_errors(schema: dict[str, Any], path: str) -> list[str]:
    """Every default: pruned unchanged, valid against its node, its node's CEL rules hold."""
    return list(_defaults(schema, path, schema, inside_meta=False, is_root=True))


def _defaults(
    node: dict[str, Any], path: str, root: dict[str, Any], inside_meta: bool, is_root: bool
) -> Iterator[str]:
    embedded = bool(node.get("x-kubernetes-embedded-resource")) or is_root
    if node.get("x-kubernetes-embedded-resource"):
        inside_meta, root = False, node
    if "default" in node:
        default, where = node["default"], f"{path}.default"
        problems: list[str] = []
        if not inside_meta and prune(copy.deepcopy(default), node, embedded) != default:
            problems.append(invalid(where, default, "must not have unknown fields"))
        embedding = (
            [] if inside_meta else list(_embedded_resource_errors(node, default, where, embedded))
        )
        values = value_errors(node, default, where)
        # The server stops at the first kind of problem, as here: metadata, schema, then CEL.
        if embedding or values:
            problems += embedding or values
        else:
            problems += rule_failures(node, default, where)
        yield from problems
    # Defaults are forbidden inside additionalProperties of metadata; the server does not look
    # at additionalProperties here at all.
    if isinstance(node.get("items"), dict):
        yield from _defaults(node["items"], f"{path}.items", root, inside_meta, is_root=False)
    for name, child in (node.get("properties") or {}).items():
        child_meta = inside_meta or (embedded and name in META_FIELDS)
        yield from _defaults(child, f"{path}.properties[{name}]", root, child_meta, is_root=False)


def prune(value: Any, node: dict[str, Any] | None, is_resource_root: bool = False) -> Any:
    """The value with the fields the schema does not know removed, as the API server prunes."""
    embedded = bool(node and node.get("x-kubernetes-embedded-resource")) or is_resource_root
    if node is not None and node.get("x-kubernetes-preserve-unknown-fields"):
        return _prune_known(value, node, embedded)
    if isinstance(value, dict):
        if node is None:
            value.clear()
            return value
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key in list(value):
            if embedded and key in META_FIELDS:
                continue
            if key in props:
                value[key] = prune(value[key], props[key])
            elif extra is not None and extra is not False:
                value[key] = prune(value[key], extra if isinstance(extra, dict) else None)
            else:
                del value[key]
    elif isinstance(value, list):
        items = node.get("items") if node else None
        value[:] = [prune(v, items if isinstance(items, dict) else None) for v in value]
    return value


def _prune_known(value: Any, node: dict[str, Any], embedded: bool) -> Any:
    """Inside x-kubernetes-preserve-unknown-fields: unknown fields stay, known ones are pruned."""
    if isinstance(value, dict):
        props, extra = node.get("properties") or {}, node.get("additionalProperties")
        for key in list(value):
            if embedded and key in META_FIELDS:
                continue
            if key in props:
                value[key] = prune(value[key], props[key])
            elif isinstance(extra, dict):
                value[key] = prune(value[key], extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value[:] = [_prune_known(v, node["items"], False) for v in value]
    return value


def _embedded_resource_errors(
    node: dict[str, Any], value: Any, path: str, embedded: bool
) -> Iterator[str]:
    """An embedded resource (and the root) needs apiVersion and kind (objectmeta.Validate)."""
    if isinstance(value, dict):
        if embedded and node.get("x-kubernetes-embedded-resource"):
            for key in ("apiVersion", "kind"):
                if key not in value:
                    yield required(f"{path}.{key}")
                elif not isinstance(value[key], str):
                    yield invalid(f"{path}.{key}", value[key], "must be a string")
                elif not value[key]:
                    yield invalid(f"{path}.{key}", value[key], "must not be empty")
        props, extra = node.get("properties") or {}, node.get("additionalProperties")
        for key, child in value.items():
            if key in props:
                yield from _embedded_resource_errors(props[key], child, f"{path}.{key}", True)
            elif isinstance(extra, dict):
                yield from _embedded_resource_errors(extra, child, f"{path}[{key}]", True)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, child in enumerate(value):
            yield from _embedded_resource_errors(node["items"], child, f"{path}[{i}]", True)


def _kube_openapi(node: dict[str, Any]) -> dict[str, Any]:
    """The node as the server's validator reads it (int-or-string is integer or string)."""
    out = dict(node)
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out and "allOf" not in out:
        out["anyOf"] = INT_OR_STRING_ANY_OF
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _kube_openapi(out[key])
    if "properties" in out:
        out["properties"] = {k: _kube_openapi(v) for k, v in out["properties"].items()}
    for key in JUNCTORS:
        if key in out:
            out[key] = [_kube_openapi(v) for v in out[key]]
    return out


def value_errors(node: dict[str, Any], value: Any, path: str) -> list[str]:
    """``value`` validated against ``node`` (types, enums, bounds, patterns, formats)."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    validator = OAS30Validator(
        openapi_schema(_kube_openapi(node), closed=False), format_checker=oas30_format_checker
    )
    errors = []
    for error in validator.iter_errors(value):
        where = path + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        if error.validator == "required":
            missing = re.match(r"'([^']*)'", error.message)
            errors.append(required(f"{where}.{missing.group(1) if missing else '?'}"))
        elif error.validator == "enum":
            errors.append(not_supported(where, error.instance, list(error.validator_value)))
        else:
            shown = OMIT if isinstance(error.instance, dict | list) else error.instance
            errors.append(invalid(where, shown, error.message))
    return sorted(errors)
