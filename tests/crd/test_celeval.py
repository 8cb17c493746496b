"""Rules evaluated with cel-python the way cel-go reports them."""

from __future__ import annotations

from .celeval import evaluate, rule_failures, to_cel

OBJECT = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}


def test_the_first_absent_field_is_the_error():
    assert evaluate("self.a == 1 || self.b == 2", to_cel(OBJECT, {})) == (
        False,
        "no such key: a",
    )
    assert evaluate("self.a == 1 ? true : false", to_cel(OBJECT, {})) == (False, "no such key: a")


def test_has_tests_for_absence_without_an_error():
    assert evaluate("has(self.a) ? self.a > 0 : self.b > 0", to_cel(OBJECT, {})) == (
        False,
        "no such key: b",
    )
    assert evaluate("!has(self.a) || self.a > 0", to_cel(OBJECT, {})) == (True, None)


def test_errors_are_absorbed_as_cel_absorbs_them():
    assert evaluate("self.a == 1 || true", to_cel(OBJECT, {})) == (True, None)
    assert evaluate("self.a == 1 && false", to_cel(OBJECT, {})) == (False, None)


def test_values_are_typed_by_their_schema():
    assert evaluate("type(self) == double", to_cel({"type": "number"}, 1)) == (True, None)
    assert evaluate("type(self) == int", to_cel({"x-kubernetes-int-or-string": True}, 1)) == (
        True,
        None,
    )
    stamp = {"type": "string", "format": "date-time"}
    assert evaluate(
        "self > timestamp('2020-01-01T00:00:00Z')", to_cel(stamp, "2021-01-01T00:00:00Z")
    )[0]
    dashed = {"type": "object", "properties": {"x-y": {"type": "string"}}}
    assert evaluate("self.x__dash__y == 'v'", to_cel(dashed, {"x-y": "v"})) == (True, None)


def test_failures_name_the_field_and_the_rule_message():
    node = {
        "type": "object",
        "properties": {
            "xs": {
                "type": "array",
                "items": {
                    "type": "integer",
                    "x-kubernetes-validations": [{"rule": "self > 0", "message": "positive"}],
                },
            }
        },
    }
    assert rule_failures(node, {"xs": [1, -2]}, "x.default") == [
        "x.default.xs[1]: Invalid value: -2: positive"
    ]
