"""The CEL cost estimate, checked against the costs Kubernetes' own tests expect.

Each case is a schema, a rule and the worst-case cost kube-apiserver estimates for it
(apiextensions-apiserver's TestCostEstimation, as of Kubernetes 1.37): the same rule once on
an unbounded schema (sizes from the 3 MiB request limit) and once with maxItems / maxLength /
maxProperties set.
"""

from __future__ import annotations

from typing import Any

import pytest

from .celcost import (
    UNBOUNDED,
    CelCompileError,
    Decl,
    escape,
    estimate,
    max_cardinality,
    schema_decl,
)


def array(items: dict[str, Any], bound: int | None = None) -> dict[str, Any]:
    return {"type": "array", "items": items, **({"maxItems": bound} if bound is not None else {})}


def mapping(values: dict[str, Any], bound: int | None = None) -> dict[str, Any]:
    extra = {"maxProperties": bound} if bound is not None else {}
    return {"type": "object", "additionalProperties": values, **extra}


def string(bound: int | None = None, **more: Any) -> dict[str, Any]:
    return {"type": "string", **({"maxLength": bound} if bound is not None else {}), **more}


NUMBER, BOOLEAN, INTEGER = {"type": "number"}, {"type": "boolean"}, {"type": "integer"}
INT_OR_STRING = {"x-kubernetes-int-or-string": True}
DURATION, DATE = string(format="duration"), string(format="date")
DATE_TIME = string(format="date-time")
OBJECT = {
    "type": "object",
    "required": ["required"],
    "properties": {"required": string(), "optional": string()},
}
REPLACE = {
    "type": "object",
    "properties": {"str": string(), "before": string(2), "after": string(4)},
}
REPLACE_BOUNDED = {**REPLACE, "properties": {**REPLACE["properties"], "str": string(4)}}
SPLIT = {"type": "object", "properties": {"str": string(), "separator": string()}}
SPLIT_BOUNDED = {"type": "object", "properties": {"str": string(10), "separator": string(10)}}
ENUM = string(enum=["A", "B", "C", "LongValue"])

# (schema, rule, cost)
KUBERNETES_COSTS = [
    (array(NUMBER), "self.all(x, true)", 4718591),
    (array(NUMBER, 10), "self.all(x, true)", 32),
    (array(string()), "self.all(x, true)", 3145727),
    (array(string(), 20), "self.all(x, true)", 62),
    (array(BOOLEAN), "self.all(x, true)", 1887437),
    (array(BOOLEAN, 5), "self.all(x, true)", 17),
    (array(OBJECT), "self.all(x, true)", 555128),
    (array(OBJECT, 50), "self.all(x, true)", 152),
    (mapping(NUMBER), "self.all(x, true)", 1348169),
    (mapping(NUMBER, 10), "self.all(x, true)", 32),
    (mapping(string()), "self.all(x, true)", 1179647),
    (mapping(string(), 3), "self.all(x, true)", 11),
    (mapping(BOOLEAN), "self.all(x, true)", 943718),
    (mapping(BOOLEAN, 100), "self.all(x, true)", 302),
    (string(), "self.contains('test')", 314574),
    (string(10), "self.contains('test')", 5),
    (string(), "self.startsWith('test')", 2),
    (string(), 'size(self + "hello") > size("hello")', 314578),
    (string(4), 'size(self + "hello") > size("hello")', 7),
    (array(NUMBER), "self[1] == 0.0", 2),
    (array(string()), "self[1] == self[1]", 314577),
    (array(NUMBER, 10), "self.all(x, self.all(y, true))", 352),
    (array(NUMBER, 10), "self.all(x, self.all(y, self.all(z, true)))", 3552),
    (string(), 'self.matches("x")', 314574),
    (string(50), 'self.matches("x")', 22),
    (string(), '"".matches("(((((((((())))))))))[0-9]")', 7),
    (string(), 'self.matches("")', 1),
    (mapping(string()), "self.all(x, x.contains(self[x]))", 2752507),
    (mapping(string(10), 10), "self.all(x, x.contains(self[x]))", 72),
    (string(), 'self == "x"', 2),
    (string(0), 'self == "x"', 1),
    (array(NUMBER, 3 * 1024 * 2048), "self.all(x, x == 0.0)", 25165826),
    (array(NUMBER), "self.all(x, x == 0.0)", 6291454),
    (array(INT_OR_STRING), "self.all(x, true)", 4718591),
    (array(INT_OR_STRING), "self[0] == 5", 3),
    (array(BOOLEAN), "self[0] == false", 2),
    (array(OBJECT), "self[0] == null", 2),
    (array(mapping(NUMBER)), "self.all(x, x.y == 25.2)", 6291452),
    (array(mapping(NUMBER), 12), "self.all(x, x.y == 25.2)", 74),
    (array(mapping(NUMBER)), "self[0].x > 2.0", 4),
    (array(DURATION), "self.all(x, true)", 2359295),
    (array(DATE), "self.all(x, true)", 725936),
    (array(DATE_TIME), "self.all(x, true)", 428963),
    (array(DATE_TIME), "self[2].getMinutes() == 45", 4),
    (mapping(INT_OR_STRING), "self.all(x, true)", 1348169),
    (mapping(DURATION), "self.all(x, true)", 1048577),
    (mapping(DATE), "self.all(x, true)", 524288),
    (mapping(DATE_TIME), "self.all(x, true)", 349526),
    (mapping(INTEGER), "oldSelf.size() == self.size()", 5),
    (mapping(DATE_TIME), 'self["a"] == self["b"]', 8),
    (mapping(DURATION), 'self["c"] == self["d"]', 8),
    (ENUM, "self.contains('A')", 2),
    ({**ENUM, "maxLength": 1000}, "self.contains('A')", 401),
    # Kubernetes' own library functions
    (string(), "self.find('[0-9]+') == ''", 629147),
    (string(10), "self.find('[0-9]+') == ''", 11),
    (array(string()), "self.join(' ') == 'aa bb'", 329853068905),
    (array(string(10), 10), "self.join(' ') == 'aa bb'", 43),
    (array(string()), "self.isSorted() == true", 329854432052),
    (array(string(10), 10), "self.isSorted() == true", 52),
    (REPLACE, "self.str.replace(self.before, self.after) == 'does not matter'", 629154),
    (REPLACE_BOUNDED, "self.str.replace(self.before, self.after) == 'does not matter'", 12),
    (SPLIT, "self.str.split(self.separator) == []", 629160),
    (SPLIT_BOUNDED, "self.str.split(self.separator) == []", 22),
    (string(), "self.lowerAscii() == 'lower!'", 314575),
    (string(10), "self.lowerAscii() == 'lower!'", 6),
    (INT_OR_STRING, "isQuantity(self)", 314574),
]


@pytest.mark.parametrize(("schema", "rule", "cost"), KUBERNETES_COSTS)
def test_the_estimate_is_kubernetes(schema, rule, cost):
    assert estimate(rule, schema_decl(schema)).cost.hi == cost


def test_an_unknowable_size_is_unbounded():
    # A string converted from an int has no size CEL can know: matching it costs a tenth of
    # the largest cost there is (2**64 - 1).
    cost = estimate("string(self).matches('^0+$')", schema_decl(INTEGER)).cost.hi
    assert cost == pytest.approx(UNBOUNDED / 10)


def test_sizes_come_from_the_schema():
    assert schema_decl(string(8)).max_elements == 32  # 4 bytes per character
    assert schema_decl(ENUM).max_elements == 9  # the longest value
    assert schema_decl(string()).max_elements == 3 * 1024 * 1024 - 2
    assert schema_decl(array(string())).max_elements == (3 * 1024 * 1024 - 2) // 3
    assert schema_decl(OBJECT).min_size == 2 + len("required") + 2 + 4
    # 1.30-1.33 ignore maxLength on int-or-string (1.34+ use it): the pessimistic one is used.
    assert schema_decl({**INT_OR_STRING, "maxLength": 8}).max_elements == 3 * 1024 * 1024 - 2
    assert max_cardinality(schema_decl(string())) == 3 * 1024 * 1024 // 3


def test_property_names_are_escaped_as_kubernetes_does():
    assert escape("in") == "__in__"
    assert escape("a-b.c/d") == "a__dash__b__dot__c__slash__d"
    assert escape("a__b") == "a__underscores__b"
    assert escape("1abc") is None
    decl = schema_decl({"type": "object", "properties": {"x-y": string(3)}})
    assert estimate("self.x__dash__y == 'a'", decl).type.kind == "bool"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("self.nope == 1", "undefined field 'nope'"),
        ("other == 1", "undeclared reference to 'other'"),
        ("self.name.shout()", "undeclared reference to 'shout'"),
        ("self.count == 'x'", "found no matching overload for '_==_' applied to '(int, string)'"),
        ("!self.name", "found no matching overload for '!_'"),
        ("self.count.all(x, true)", "cannot be the range of a comprehension"),
        ("has(self)", "invalid argument to has() macro"),
        ("self.name ==", "Syntax error"),
    ],
)
def test_rules_the_compiler_refuses(rule, problem):
    decl = schema_decl({"type": "object", "properties": {"name": string(10), "count": INTEGER}})
    with pytest.raises(CelCompileError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        estimate(rule, decl)


def test_the_result_type_is_known():
    decl = Decl("string", max_elements=10)
    assert estimate("self + 'x'", decl).type.kind == "string"
    assert estimate("self.size() > 1", decl).type.kind == "bool"
    assert estimate("[self].map(x, x + 'y')", decl).type.kind == "list"
