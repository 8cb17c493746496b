"""``x-kubernetes-validations`` rules evaluated on a value with cel-python, in the server's words.

The value is typed by its schema node the way Kubernetes hands it to CEL (numbers as doubles,
date-times as timestamps, escaped property names), and nothing is defaulted first. An error
is reported the way cel-go reports it: the first field a rule reads that is absent is
"no such key: <field>". cel-python is not Kubernetes' CEL: Kubernetes' library functions
(``quantity()``, ``isURL()``, ``lowerAscii()``, ...) are missing, and a rule that needs one is
reported as not checkable here instead of passing.
"""

from __future__ import annotations

import base64
from typing import Any

from .celcost import escape
from .fielderrors import OMIT, duplicate, forbidden, invalid, required


def rule_failures(node: dict[str, Any], value: Any, path: str) -> list[str]:
    """Every rule on ``node`` and below that ``value`` breaks or cannot be evaluated on.

    As in the server's validation of defaults, ``oldSelf`` is the value itself.
    """
    failures: list[str] = []
    _rules(node, value, path, failures)
    return failures


def _rules(node: dict[str, Any], value: Any, path: str, failures: list[str]) -> None:
    if value is None:
        return
    for rule in node.get("x-kubernetes-validations") or []:
        failure = _evaluate(node, rule, value, path)
        if failure is not None:
            failures.append(failure)
    if isinstance(value, dict):
        props, extra = node.get("properties") or {}, node.get("additionalProperties")
        for key, child in value.items():
            if isinstance(extra, dict):
                _rules(extra, child, f"{path}[{key}]", failures)
            if key in props:
                _rules(props[key], child, f"{path}.{key}", failures)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, child in enumerate(value):
            _rules(node["items"], child, f"{path}[{i}]", failures)


def _evaluate(node: dict[str, Any], rule: dict[str, Any], value: Any, path: str) -> str | None:
    """The error line for one rule on one value, or None when it holds."""
    kind = node.get("type", "")
    words = (rule.get("message") or rule["rule"]).strip()
    outcome, error = evaluate(rule["rule"], to_cel(node, value))
    if error is not None:
        return invalid(path, kind, f"{error} evaluating rule: {words}")
    if outcome:
        return None
    detail = (rule.get("message") or "").strip() or f"failed rule: {rule['rule'].strip()}"
    where = path + rule.get("fieldPath", "")
    shown = OMIT if kind in ("object", "array") else value
    reason = rule.get("reason")
    if reason == "FieldValueForbidden":
        return forbidden(where, detail)
    if reason == "FieldValueRequired":
        return required(where, detail)
    if reason == "FieldValueDuplicate":
        return duplicate(where, shown)
    return invalid(where, shown, detail)


def evaluate(rule: str, self_value: Any) -> tuple[bool, str | None]:
    """(result, None), or (False, the error in cel-go's words) for a rule on ``self``."""
    import celpy

    env = celpy.Environment(runner_class=_TracingRunner)
    try:
        program = env.program(env.compile(rule))
    except celpy.CELParseError as err:
        return False, f"rule compile error: {' '.join(str(err).split())}"
    try:
        result = program.evaluate({"self": self_value, "oldSelf": self_value})
    except celpy.CELEvalError as err:
        return False, _error_words(err, program.missing)
    if isinstance(result, celpy.CELEvalError):
        return False, _error_words(result, program.missing)
    if isinstance(result, bool | celpy.celtypes.BoolType):
        return bool(result), None
    return False, f"rule evaluated to {result!r}, not a bool"


def _error_words(err: Exception, missing: list[str]) -> str:
    text = repr(err.args)
    if missing:
        return f"no such key: {missing[0]}"
    if "undeclared reference to" in text:
        name = text.split("undeclared reference to '", 1)[1].split("'", 1)[0]
        return f"cannot be checked offline (cel-python has no {name})"
    if "IndexError" in text:
        return "index out of bounds"
    if "ZeroDivisionError" in text:
        return "division by zero"
    if "no matching overload" in text:
        return "no such overload"
    return str(err.args[0]) if err.args else type(err).__name__


def _tracing_classes() -> tuple[type, type]:
    """A cel-python runner that remembers which absent fields a rule read, in order.

    cel-python folds an error inside ``&&``, ``||`` or ``?:`` into a generic overload error;
    cel-go reports the first absent field instead, so the evaluator records them (not inside
    ``has()``, whose point is to test for absence).
    """
    import celpy
    from celpy.evaluation import CELEvalError, Evaluator

    class TracingEvaluator(Evaluator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.missing: list[str] = []
            self.in_has = 0

        def macro_has_eval(self, exprlist: Any) -> Any:
            self.in_has += 1
            try:
                return super().macro_has_eval(exprlist)
            finally:
                self.in_has -= 1

        def member_dot(self, tree: Any) -> Any:
            result = super().member_dot(tree)
            absent = isinstance(result, CELEvalError) and result.args[1] is KeyError
            if absent and not self.in_has and str(result.args[0]).startswith("no such member"):
                self.missing.append(str(tree.children[1]))
            return result

    class TracingRunner(celpy.InterpretedRunner):
        missing: list[str] = []

        def evaluate(self, context: Any) -> Any:
            evaluator = TracingEvaluator(ast=self.ast, activation=self.new_activation())
            self.missing = evaluator.missing
            return evaluator.evaluate(context)

    return TracingEvaluator, TracingRunner


_TracingEvaluator, _TracingRunner = _tracing_classes()


def to_cel(node: dict[str, Any] | None, value: Any) -> Any:
    """A JSON value as Kubernetes gives it to CEL: typed by its schema node."""
    import celpy
    from celpy import celtypes

    if node is None or value is None:
        return celpy.json_to_cel(value)
    if isinstance(value, dict):
        props, extra = node.get("properties") or {}, node.get("additionalProperties")
        out = {}
        for key, child in value.items():
            if key in props:
                name = escape(key)
                if name is not None:
                    out[celtypes.StringType(name)] = to_cel(props[key], child)
            else:
                sub = extra if isinstance(extra, dict) else None
                out[celtypes.StringType(key)] = to_cel(sub, child)
        return celtypes.MapType(out)
    if isinstance(value, list):
        items = node.get("items") if isinstance(node.get("items"), dict) else None
        return celtypes.ListType([to_cel(items, v) for v in value])
    kind, fmt = node.get("type"), node.get("format")
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "string" and isinstance(value, str):
        if fmt in ("date", "date-time"):
            return celtypes.TimestampType(value if fmt == "date-time" else f"{value}T00:00:00Z")
        if fmt == "duration":
            return celtypes.DurationType(value)
        if fmt == "byte":
            return celtypes.BytesType(base64.b64decode(value))
    return celpy.json_to_cel(value)
