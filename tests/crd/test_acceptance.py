"""The offline CRD acceptance check: every CRD we ship passes it, the CRD a real kube-apiserver
1.32 refused fails it with the server's words, and each rule it mirrors is shown to fail."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .acceptance import CRD_LIMIT, PER_RULE_LIMIT, acceptance_errors, rule_costs
from .crdcheck import CRD_PATH, load_crd, schema_of, walk

ROOT = Path(__file__).resolve().parents[2]
REFUSED = Path(__file__).parent / "fixtures" / "smolserve-refused-by-1.32.yaml"
SCHEMA_PATH = "spec.validation.openAPIV3Schema"
SPEC = f"{SCHEMA_PATH}.properties[spec]"


def shipped_crds() -> list[tuple[str, dict[str, Any]]]:
    """Every CRD in crds/ and in the chart (kopf's peering CRDs included)."""
    found = []
    for path in sorted(
        [*(ROOT / "crds").glob("*.yaml"), *(ROOT / "charts/smol/crds").glob("*.yaml")]
    ):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append((f"{path.relative_to(ROOT)}:{doc['metadata']['name']}", doc))
    return found


SHIPPED = shipped_crds()


def test_the_chart_and_crds_ship_these_crds():
    names = sorted(name for name, _ in SHIPPED)
    assert names == [
        "charts/smol/crds/kopf-peering.yaml:clusterkopfpeerings.kopf.dev",
        "charts/smol/crds/kopf-peering.yaml:kopfpeerings.kopf.dev",
        "charts/smol/crds/smolserve.yaml:smolserves.smolserve.dev",
        "crds/smolserve.yaml:smolserves.smolserve.dev",
    ]


@pytest.mark.parametrize("crd", [c for _, c in SHIPPED], ids=[n for n, _ in SHIPPED])
def test_every_shipped_crd_is_accepted(crd):
    assert acceptance_errors(crd) == []


# What kube-apiserver 1.32 answered (HTTP 422) for the CRD of commit fb4d58e.
REFUSED_BY_1_32 = {
    f'{SPEC}.properties[rollout].default: Invalid value: "object": no such key: maxSurge '
    "evaluating rule: maxSurge and maxUnavailable cannot both be 0",
    f'{SPEC}.properties[parsers].default: Invalid value: "object": no such key: autoToolChoice '
    "evaluating rule: autoToolChoice needs a toolCall parser",
    f'{SPEC}.properties[template].default: Invalid value: "object": no such key: source '
    "evaluating rule: configMapRef is required with, and only with, source configMap",
    f'{SPEC}.properties[template].default: Invalid value: "object": no such key: source '
    "evaluating rule: a non-empty inline is required with, and only with, source inline",
}


def test_the_crd_a_real_server_refused_is_refused_with_its_words():
    crd = yaml.safe_load(REFUSED.read_text(encoding="utf-8"))
    assert set(acceptance_errors(crd)) == REFUSED_BY_1_32
    assert len(acceptance_errors(crd)) == 4


def test_the_old_empty_defaults_on_todays_crd_are_refused_the_same_way():
    crd = load_crd()
    spec = schema_of(crd)["properties"]["spec"]["properties"]
    for name in ("template", "parsers", "rollout"):
        spec[name]["default"] = {}
    assert set(acceptance_errors(crd)) == REFUSED_BY_1_32


def test_the_crd_rules_cost_well_within_budget():
    schema = schema_of(load_crd())
    costs = rule_costs(schema, SCHEMA_PATH)
    rules = sum(len(node.get("x-kubernetes-validations") or []) for _, node in walk(schema))
    assert rules >= 18 and len(costs.costs) == rules  # every rule compiled and estimated
    assert max(costs.costs.values()) < PER_RULE_LIMIT / 4
    assert costs.total < CRD_LIMIT / 10


def test_an_unbounded_list_in_the_crd_would_be_refused_for_cost():
    crd = load_crd()
    adapters = schema_of(crd)["properties"]["spec"]["properties"]["lora"]["properties"]["adapters"]
    del adapters["maxItems"]
    unique = f"{SPEC}.properties[lora].properties[adapters].x-kubernetes-validations[0].rule"
    source = (
        f"{SPEC}.properties[lora].properties[adapters].items.properties[source]"
        ".x-kubernetes-validations[{}].rule"
    )
    over = "Forbidden: estimated rule cost exceeds budget by factor of {}" + COST_ADVICE
    part = "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire "
    assert acceptance_errors(crd) == [
        # the rules under the adapters run once per adapter, and there could be a million ...
        f"{source.format(0)}: {over.format('more than 100x')}",
        f"{source.format(1)}: {over.format('21.7x')}",
        # ... and the uniqueness rule compares each adapter with each
        f"{unique}: {over.format('more than 100x')}",
        f"{unique}: {part}OpenAPIv3 schema",
        f"{source.format(0)}: {part}OpenAPIv3 schema",
        f"{source.format(1)}: {part}OpenAPIv3 schema",
        f"{SPEC}.properties[rollout].x-kubernetes-validations[0].rule: {part}OpenAPIv3 schema",
        f"{SCHEMA_PATH}: Forbidden: x-kubernetes-validations estimated rule cost total for entire "
        f"OpenAPIv3 schema exceeds budget by factor of more than 100x{COST_ADVICE}",
    ]


def test_the_package_crd_is_the_checked_one():
    assert CRD_PATH.read_text() == (ROOT / "operator/smolserve/crd/smolserve.yaml").read_text()


# --- the checker itself: small CRDs that each break one rule ----------------------------------


def crd(schema: dict[str, Any], **version: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    **version,
                }
            ],
        },
    }


def spec_with(**properties: Any) -> dict[str, Any]:
    """A root schema whose spec has these properties."""
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}}


def rules(*rules: str | dict[str, Any]) -> list[dict[str, Any]]:
    return [r if isinstance(r, dict) else {"rule": r} for r in rules]


S = "string"
STR, INT = {"type": "string"}, {"type": "integer"}
INT_OR_STRING = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": S}]}
A = f"{SPEC}.properties[a]"
COST_ADVICE = (
    " (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, "
    "maps, and strings are declared)"
)

# (schema, an error line the server gives for it)
REFUSED_SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    # structural schemas
    "field without type": (
        spec_with(a={}),
        f"{A}.type: Required value: must not be empty for specified object fields",
    ),
    "items without type": (
        spec_with(a={"type": "array", "items": {}}),
        f"{A}.items.type: Required value: must not be empty for specified array items",
    ),
    "root not an object": (
        {"type": "string"},
        f'{SCHEMA_PATH}.type: Invalid value: "string": must be object at the root',
    ),
    "array without items": (
        spec_with(a={"type": "array"}),
        f"{A}.items: Required value: must be specified",
    ),
    "additionalProperties at the root": (
        {"type": "object", "additionalProperties": STR},
        f"{SCHEMA_PATH}.additionalProperties: Forbidden: must not be used at the root",
    ),
    "$ref": (
        spec_with(a={"type": "object", "$ref": "#/definitions/x"}),
        f"{A}.$ref: Forbidden: $ref is not supported",
    ),
    "definitions": (
        {**spec_with(), "definitions": {"x": STR}},
        f"{SCHEMA_PATH}.definitions: Forbidden: definitions is not supported",
    ),
    "type inside anyOf": (
        spec_with(a={"type": S, "anyOf": [{"type": S}, {"maxLength": 3}]}),
        f"{A}.anyOf[0].type: Forbidden: must be empty to be structural",
    ),
    "description inside oneOf": (
        spec_with(a={"type": S, "oneOf": [{"description": "x"}]}),
        f"{A}.oneOf[0].description: Forbidden: must be empty to be structural",
    ),
    "default inside allOf": (
        spec_with(a={"type": S, "allOf": [{"default": "x"}]}),
        f"{A}.allOf[0].default: Forbidden: must be undefined to be structural",
    ),
    "nullable inside not": (
        spec_with(a={"type": S, "not": {"nullable": True}}),
        f"{A}.not.nullable: Forbidden: must be false to be structural",
    ),
    "rules inside anyOf": (
        spec_with(a={"type": S, "anyOf": [{"x-kubernetes-validations": rules("true")}]}),
        f"{A}.anyOf[0].x-kubernetes-validations: Forbidden: must be empty to be structural",
    ),
    "junctor names a field the schema lacks": (
        {
            "type": "object",
            "properties": {"a": STR},
            "anyOf": [{"properties": {"b": {"maxLength": 1}}}],
        },
        f"{SCHEMA_PATH}.properties[b]: Required value: because it is defined in "
        f"{SCHEMA_PATH}.anyOf[0].properties[b]",
    ),
    "metadata beyond name and generateName": (
        {"type": "object", "properties": {"metadata": {"type": "object", "description": "m"}}},
        f"{SCHEMA_PATH}.properties[metadata]: Forbidden: must not specify anything other than "
        "name and generateName, but metadata is implicitly specified",
    ),
    "metadata in a nested context": (
        spec_with(
            a={
                "type": "object",
                "properties": {"metadata": {"type": "object"}},
                "anyOf": [{"properties": {"metadata": {"maxProperties": 1}}}],
            }
        ),
        f"{A}.anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context",
    ),
    "kind not a string": (
        {"type": "object", "properties": {"kind": INT}},
        f'{SCHEMA_PATH}.properties[kind].type: Invalid value: "integer": must be string',
    ),
    "embedded resource not an object": (
        spec_with(
            a={
                "type": "array",
                "items": STR,
                "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        ),
        f'{A}.type: Invalid value: "array": must be object if x-kubernetes-embedded-resource is '
        "true",
    ),
    "embedded resource with nothing known": (
        spec_with(a={"type": "object", "x-kubernetes-embedded-resource": True}),
        f"{A}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is "
        "true without x-kubernetes-preserve-unknown-fields",
    ),
    "int-or-string preserving unknown fields": (
        spec_with(a={**INT_OR_STRING, "x-kubernetes-preserve-unknown-fields": True}),
        f"{A}.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if "
        "x-kubernetes-int-or-string is true",
    ),
    "pattern RE2 cannot compile": (
        spec_with(a={"type": S, "pattern": "^(?!x)"}),
        f'{A}.pattern: Invalid value: "^(?!x)": must be a valid regular expression, but isn\'t: '
        "invalid or unsupported Perl syntax: `(?!`",
    ),
    # the OpenAPI rules and x-kubernetes-* placement
    "unknown type": (
        spec_with(a={"type": "int"}),
        f'{A}.type: Unsupported value: "int": supported values: "array", "boolean", "integer", '
        '"number", "object", "string"',
    ),
    "unknown keyword": (
        spec_with(a={"type": S, "maxlength": 3}),
        f'{A}.maxlength: strict decoding error: unknown field "maxlength"',
    ),
    "uniqueItems": (
        spec_with(a={"type": "array", "items": STR, "uniqueItems": True}),
        f"{A}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime "
        "complexity becomes quadratic",
    ),
    "properties with additionalProperties": (
        spec_with(a={"type": "object", "properties": {"b": STR}, "additionalProperties": STR}),
        f"{A}.additionalProperties: Forbidden: additionalProperties and properties are mutual "
        "exclusive",
    ),
    "preserve-unknown-fields false": (
        spec_with(a={"type": "object", "x-kubernetes-preserve-unknown-fields": False}),
        f"{A}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or "
        "undefined",
    ),
    "list type on an object": (
        spec_with(a={"type": "object", "x-kubernetes-list-type": "set"}),
        f'{A}.type: Invalid value: "object": must be array if x-kubernetes-list-type is specified',
    ),
    "unknown list type": (
        spec_with(a={"type": "array", "items": STR, "x-kubernetes-list-type": "bag"}),
        f'{A}.x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", '
        '"set", "map"',
    ),
    "map keys without map list": (
        spec_with(a={"type": "array", "items": STR, "x-kubernetes-list-map-keys": ["k"]}),
        f"{A}.x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys "
        "is non-empty",
    ),
    "map list without keys": (
        spec_with(
            a={"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map"}
        ),
        f"{A}.x-kubernetes-list-map-keys: Required value: must not be empty if "
        "x-kubernetes-list-type is map",
    ),
    "map list key not a property": (
        spec_with(
            a={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {"n": STR}},
            }
        ),
        f'{A}.x-kubernetes-list-map-keys: Invalid value: ["k"]: entries must all be names of item '
        "properties",
    ),
    "map list key neither required nor defaulted": (
        spec_with(
            a={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {"k": STR}},
            }
        ),
        f"{A}.items.properties[k].default: Required value: this property is in "
        "x-kubernetes-list-map-keys, so it must have a default or be a required property",
    ),
    "set of granular objects": (
        spec_with(
            a={
                "type": "array",
                "x-kubernetes-list-type": "set",
                "items": {"type": "object", "properties": {"k": STR}},
            }
        ),
        f'{A}.items.x-kubernetes-map-type: Invalid value: "set": must be atomic as item of a list '
        "with x-kubernetes-list-type=set",
    ),
    "map type on a string": (
        spec_with(a={"type": S, "x-kubernetes-map-type": "atomic"}),
        f'{A}.type: Invalid value: "string": must be object if x-kubernetes-map-type is specified',
    ),
    "default in top-level metadata": (
        {"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}},
        f"{SCHEMA_PATH}.properties[metadata].default: Forbidden: must not be set in top-level "
        "metadata",
    ),
    "nullable root": (
        {**spec_with(), "nullable": True},
        f"{SCHEMA_PATH}.nullable: Forbidden: nullable cannot be true at the root",
    ),
    # x-kubernetes-validations, compiled
    "empty rule": (
        spec_with(a={"type": S, "x-kubernetes-validations": rules(" ")}),
        f"{A}.x-kubernetes-validations[0].rule: Required value: rule is not specified",
    ),
    "message with a line break": (
        spec_with(
            a={"type": S, "x-kubernetes-validations": rules({"rule": "true", "message": "a\nb"})}
        ),
        f'{A}.x-kubernetes-validations[0].message: Invalid value: "a\\nb": must not contain line '
        "breaks",
    ),
    "multi-line rule without message": (
        spec_with(a={"type": S, "x-kubernetes-validations": rules("true &&\ntrue")}),
        f"{A}.x-kubernetes-validations[0].message: Required value: message must be specified if "
        "rule contains line breaks",
    ),
    "unknown reason": (
        spec_with(
            a={"type": S, "x-kubernetes-validations": rules({"rule": "true", "reason": "Wrong"})}
        ),
        f'{A}.x-kubernetes-validations[0].reason: Unsupported value: "Wrong": supported values: '
        '"FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid", "FieldValueDuplicate"',
    ),
    "fieldPath to nowhere": (
        spec_with(
            a={
                "type": "object",
                "properties": {"b": STR},
                "x-kubernetes-validations": rules({"rule": "true", "fieldPath": ".c"}),
            }
        ),
        f'{A}.x-kubernetes-validations[0].fieldPath: Invalid value: ".c": must be a valid path',
    ),
    "syntax error": (
        spec_with(a={"type": S, "x-kubernetes-validations": rules("self ==")}),
        f'{A}.x-kubernetes-validations[0].rule: Invalid value: {{"rule":"self =="}}: compilation '
        "failed: Syntax error: self == ^",
    ),
    "undefined field": (
        spec_with(
            a={
                "type": "object",
                "properties": {"b": STR},
                "x-kubernetes-validations": rules("self.c == 'x'"),
            }
        ),
        f'{A}.x-kubernetes-validations[0].rule: Invalid value: {{"rule":"self.c == \'x\'"}}: '
        "compilation failed: undefined field 'c'",
    ),
    "comparing a string with a number": (
        spec_with(a={"type": S, "x-kubernetes-validations": rules("self == 1")}),
        f'{A}.x-kubernetes-validations[0].rule: Invalid value: {{"rule":"self == 1"}}: compilation '
        "failed: found no matching overload for '_==_' applied to '(string, int)'",
    ),
    "not a bool": (
        spec_with(a={"type": S, "x-kubernetes-validations": rules("self + 'x'")}),
        f'{A}.x-kubernetes-validations[0].rule: Invalid value: {{"rule":"self + \'x\'"}}: cel '
        "expression must evaluate to a bool",
    ),
    "unknown function": (
        spec_with(a={"type": S, "x-kubernetes-validations": rules("self.shout() == 'A'")}),
        f'{A}.x-kubernetes-validations[0].rule: Invalid value: {{"rule":"self.shout() == \'A\'"}}: '
        "compilation failed: undeclared reference to 'shout' (not known to this offline checker)",
    ),
    "oldSelf in an atomic list's items": (
        spec_with(
            a={
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": S,
                    "maxLength": 3,
                    "x-kubernetes-validations": rules("self == oldSelf"),
                },
            }
        ),
        f'{A}.items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf '
        f"cannot be used on the uncorrelatable portion of the schema within {A}",
    ),
    "optionalOldSelf without oldSelf": (
        spec_with(
            a={
                "type": S,
                "x-kubernetes-validations": rules({"rule": "true", "optionalOldSelf": True}),
            }
        ),
        f"{A}.x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may not be set if "
        "oldSelf is not used in rule",
    ),
    "messageExpression not a string": (
        spec_with(
            a={
                "type": S,
                "x-kubernetes-validations": rules({"rule": "true", "messageExpression": "1"}),
            }
        ),
        f'{A}.x-kubernetes-validations[0].messageExpression: Invalid value: "1": messageExpression '
        "must evaluate to a string",
    ),
    # CEL cost
    "quadratic rule over an unbounded list": (
        spec_with(
            a={
                "type": "array",
                "items": {"type": S, "maxLength": 8},
                "x-kubernetes-validations": rules("self.all(x, self.exists(y, x == y))"),
            }
        ),
        f"{A}.x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by "
        f"factor of more than 100x{COST_ADVICE}",
    ),
    "rule under an unbounded list is multiplied by its cardinality": (
        spec_with(
            a={
                "type": "array",
                "items": {
                    "type": S,
                    "maxLength": 1000,
                    "x-kubernetes-validations": rules("self.matches('^a+$')"),
                },
            }
        ),
        f"{A}.items.x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds "
        f"budget by factor of 42.2x{COST_ADVICE}",
    ),
    "rule just over budget": (
        spec_with(
            a={
                "type": S,
                "maxLength": 8660,
                "x-kubernetes-validations": rules("self.contains(self)"),
            }
        ),
        f"{A}.x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by "
        f"factor of 1.199930x{COST_ADVICE}",
    ),
    # defaults, as written
    "default of the wrong type": (
        spec_with(a={"type": "integer", "default": "x"}),
        f"{A}.default: Invalid value: \"x\": 'x' is not of type 'integer'",
    ),
    "default outside the enum": (
        spec_with(a={"type": S, "enum": ["a", "b"], "default": "c"}),
        f'{A}.default: Unsupported value: "c": supported values: "a", "b"',
    ),
    "default above the maximum": (
        spec_with(a={"type": "integer", "maximum": 3, "default": 4}),
        f"{A}.default: Invalid value: 4: 4 is greater than the maximum of 3",
    ),
    "default against the pattern": (
        spec_with(a={"type": S, "pattern": "^[a-z]+$", "default": "A"}),
        f"{A}.default: Invalid value: \"A\": 'A' does not match '^[a-z]+$'",
    ),
    "default of the wrong format": (
        spec_with(a={"type": S, "format": "date-time", "default": "yesterday"}),
        f"{A}.default: Invalid value: \"yesterday\": 'yesterday' is not a 'date-time'",
    ),
    "null default, not nullable": (
        spec_with(a={"type": S, "default": None}),
        f"{A}.default: Invalid value: null: None is not of type 'string'",
    ),
    "default the server would prune": (
        spec_with(a={"type": "object", "properties": {"b": STR}, "default": {"b": "x", "c": "y"}}),
        f'{A}.default: Invalid value: {{"b":"x","c":"y"}}: must not have unknown fields',
    ),
    "default without a required field": (
        spec_with(a={"type": "object", "required": ["b"], "properties": {"b": STR}, "default": {}}),
        f"{A}.default.b: Required value",
    ),
    "default breaking its own rule": (
        spec_with(
            a={
                "type": "integer",
                "default": -1,
                "x-kubernetes-validations": rules(
                    {"rule": "self >= 0", "message": "must not be negative"}
                ),
            }
        ),
        f"{A}.default: Invalid value: -1: must not be negative",
    ),
    "default breaking a child's rule": (
        spec_with(
            a={
                "type": "object",
                "default": {"b": -1},
                "properties": {
                    "b": {"type": "integer", "x-kubernetes-validations": rules("self >= 0")}
                },
            }
        ),
        f"{A}.default.b: Invalid value: -1: failed rule: self >= 0",
    ),
    "default missing what its rule reads (a child's default is not applied)": (
        spec_with(
            a={
                "type": "object",
                "default": {},
                "properties": {"b": {"type": "integer", "default": 1}},
                "x-kubernetes-validations": rules(
                    {"rule": "self.b > 0", "message": "b must be positive"}
                ),
            }
        ),
        f'{A}.default: Invalid value: "object": no such key: b evaluating rule: b must be positive',
    ),
    "default a rule cannot be checked on here": (
        spec_with(
            a={
                "type": S,
                "maxLength": 10,
                "default": "A",
                "x-kubernetes-validations": rules("self.lowerAscii() == 'a'"),
            }
        ),
        f'{A}.default: Invalid value: "string": cannot be checked offline (cel-python has no '
        "lowerAscii) evaluating rule: self.lowerAscii() == 'a'",
    ),
    "embedded resource default without kind": (
        spec_with(
            a={
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True,
                "default": {"apiVersion": "v1"},
            }
        ),
        f"{A}.default.kind: Required value",
    ),
}


@pytest.mark.parametrize("name", REFUSED_SCHEMAS)
def test_a_schema_breaking_one_rule_is_refused(name):
    schema, expected = REFUSED_SCHEMAS[name]
    errors = acceptance_errors(crd(schema))
    assert expected in errors, errors


ACCEPTED_SCHEMAS: dict[str, dict[str, Any]] = {
    "int-or-string pattern": spec_with(a=INT_OR_STRING),
    "int-or-string under allOf": spec_with(
        a={"x-kubernetes-int-or-string": True, "allOf": [{"anyOf": INT_OR_STRING["anyOf"]}]}
    ),
    "junctor over known fields": {
        "type": "object",
        "properties": {"a": STR, "b": STR},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
    },
    "metadata restricting the name": {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": S, "maxLength": 9}}}
        },
    },
    "nullable default null": spec_with(a={"type": S, "nullable": True, "default": None}),
    "full default object for a rule": spec_with(
        a={
            "type": "object",
            "default": {"b": 1},
            "properties": {"b": {"type": "integer", "default": 1}},
            "x-kubernetes-validations": rules("self.b > 0"),
        }
    ),
    "rule guarded with has()": spec_with(
        a={
            "type": "object",
            "default": {},
            "properties": {"b": {"type": "integer", "default": 1}},
            "x-kubernetes-validations": rules("!has(self.b) || self.b > 0"),
        }
    ),
    "an error absorbed by ||, as in CEL": spec_with(
        a={
            "type": "object",
            "default": {},
            "properties": {"b": STR},
            "x-kubernetes-validations": rules("self.b == 'x' || true"),
        }
    ),
    "preserved unknown fields in a default": spec_with(
        a={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "default": {"anything": 1},
        }
    ),
    "quadratic rule over a bounded list": spec_with(
        a={
            "type": "array",
            "maxItems": 20,
            "items": {"type": S, "maxLength": 8},
            "x-kubernetes-validations": rules("self.all(x, self.exists(y, x == y))"),
        }
    ),
    "oldSelf in a map list's items": spec_with(
        a={
            "type": "array",
            "maxItems": 3,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["k"],
            "items": {
                "type": "object",
                "required": ["k"],
                "properties": {"k": {"type": S, "maxLength": 3}},
                "x-kubernetes-validations": rules("self.k == oldSelf.k"),
            },
        }
    ),
    "status subresource with a plain root": {**spec_with(), "description": "d"},
}


@pytest.mark.parametrize("name", ACCEPTED_SCHEMAS)
def test_a_schema_keeping_the_rules_is_accepted(name):
    status = {"subresources": {"status": {}}} if "status" in name else {}
    assert acceptance_errors(crd(ACCEPTED_SCHEMAS[name], **status)) == []


def test_status_subresource_restricts_the_root():
    schema = {**spec_with(), "anyOf": [{"required": ["spec"]}]}
    assert acceptance_errors(crd(schema)) == []
    (error,) = acceptance_errors(crd(schema, subresources={"status": {}}))
    assert error.startswith(f"{SCHEMA_PATH}: Invalid value: only ")
    assert error.endswith(
        "fields are allowed at the root of the schema if the status subresource is enabled"
    )


def test_structural_errors_come_first_and_hide_defaults():
    """As on the server: defaults are checked only on a structural schema, CEL rules only
    once every default holds."""
    schema = spec_with(a={}, b={"type": "integer", "default": "x"})
    assert acceptance_errors(crd(schema)) == [
        f"{SPEC}.properties[a].type: Required value: must not be empty for specified object fields"
    ]
    costly = {
        "type": "array",
        "items": STR,
        "x-kubernetes-validations": rules("self.all(x, self.exists(y, x == y))"),
    }
    schema = spec_with(b={"type": "integer", "default": "x"}, c=costly)
    assert acceptance_errors(crd(schema)) == [
        f"{SPEC}.properties[b].default: Invalid value: \"x\": 'x' is not of type 'integer'"
    ]
    del schema["properties"]["spec"]["properties"]["b"]["default"]
    errors = acceptance_errors(crd(schema))
    assert errors[0].startswith(
        f"{SPEC}.properties[c].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost"
    )


def test_the_crd_total_budget():
    # Twelve rules each under the per-rule limit but together over the CRD's.
    each = {"type": S, "maxLength": 7500, "x-kubernetes-validations": rules("self.contains(self)")}
    errors = acceptance_errors(crd(spec_with(**{f"f{i}": each for i in range(12)})))
    contributed = [e for e in errors if "contributed to estimated rule cost total" in e]
    assert len(contributed) == 4  # the server names the four most expensive
    assert errors[-1] == (
        f"{SCHEMA_PATH}: Forbidden: x-kubernetes-validations estimated rule cost total for entire "
        f"OpenAPIv3 schema exceeds budget by factor of 1.080000x{COST_ADVICE}"
    )


def test_per_version_schemas_are_named_by_version():
    good, bad = spec_with(a=STR), spec_with(a={})
    doc = crd(good)
    doc["spec"]["versions"].append(
        {**copy.deepcopy(doc["spec"]["versions"][0]), "name": "v2", "storage": False}
    )
    doc["spec"]["versions"][1]["schema"]["openAPIV3Schema"] = bad
    assert acceptance_errors(doc) == [
        "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[a].type: Required "
        "value: "
        "must not be empty for specified object fields"
    ]


REFUSED_DEFINITIONS = {
    "name not plural.group": (
        {"metadata": {"name": "widget.example.com"}},
        'metadata.name: Invalid value: "widget.example.com": must be '
        'spec.names.plural+"."+spec.group',
    ),
    "group without a dot": (
        {"metadata": {"name": "widgets.example"}, "spec": {"group": "example"}},
        'spec.group: Invalid value: "example": should be a domain with at least one dot',
    ),
    "unknown scope": (
        {"spec": {"scope": "Global"}},
        'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"',
    ),
    "two storage versions": (
        {"spec": {"versions": "two storage"}},
        "spec.versions: Invalid value: must have exactly one version marked as storage version",
    ),
    "scale outside spec": (
        {
            "spec": {
                "versions": {
                    "subresources": {
                        "scale": {
                            "specReplicasPath": ".replicas",
                            "statusReplicasPath": ".status.replicas",
                        }
                    }
                }
            }
        },
        'spec.subresources.scale.specReplicasPath: Invalid value: ".replicas": should be a json '
        "path under .spec",
    ),
    "column of an unknown type": (
        {
            "spec": {
                "versions": {
                    "additionalPrinterColumns": [
                        {"name": "X", "type": "float", "jsonPath": ".spec.x"}
                    ]
                }
            }
        },
        'spec.additionalPrinterColumns[0].type: Invalid value: "float": must be one of '
        "boolean,date,integer,number,string",
    ),
}


@pytest.mark.parametrize("name", REFUSED_DEFINITIONS)
def test_a_definition_breaking_one_rule_is_refused(name):
    changes, expected = REFUSED_DEFINITIONS[name]
    doc = crd(spec_with(a=STR))
    doc["metadata"].update(changes.get("metadata", {}))
    for key, value in changes.get("spec", {}).items():
        if key != "versions":
            doc["spec"][key] = value
        elif value == "two storage":
            doc["spec"]["versions"].append({**doc["spec"]["versions"][0], "name": "v2"})
        else:
            doc["spec"]["versions"][0].update(value)
    assert expected in acceptance_errors(doc)
