"""Hypothesis strategies for SmolServe documents and the template engine's inputs.

Near-valid SmolServes are drawn from the CRD's own schema (every field, enums, bounds, patterns;
optional fields sometimes left out), then sometimes mutated at one field: null, a wrong type, a
huge or unicode string, a trailing newline, an unknown extra field, deep nesting. Wild ones are
arbitrary JSON. Nothing here knows the CEL rules: breaking them is part of the input space.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from smolserve import labels
from smolserve.spec import crd_schema
from smolserve.spec.types import HF_SOURCE_RE, PVC_SOURCE_RE

# Leaves of arbitrary JSON; text includes every unicode category hypothesis draws from.
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
# Mapping keys as YAML reads them: mostly strings, sometimes a number, a boolean or null.
KEYS = st.text(max_size=12) | st.integers(-3, 3) | st.booleans() | st.none()
JSON = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.sampled_from(["", " ", "\n", "\x00", "ß", "名前", "🙂", "a\nb", "${x}", "{{ x }}", "%"]),
    st.integers(min_value=1, max_value=70_000).map(lambda n: "x" * n),  # over every maxLength
)
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
    st.lists(JSON_LEAVES, max_size=3),
    st.dictionaries(st.text(max_size=8), JSON_LEAVES, max_size=3),
)


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"n": value} if i % 2 else [value]
    return value


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), node.get("maxLength", 64)
    if "pattern" in node:
        strategy = st.from_regex(node["pattern"], fullmatch=True)
        return strategy.filter(lambda s: low <= len(s) <= high)
    return st.text(min_size=low, max_size=min(high, 40))


def _number(node: dict[str, Any], *, integer: bool) -> st.SearchStrategy[Any]:
    low, high = node.get("minimum"), node.get("maximum")
    if integer:
        return st.integers(min_value=low, max_value=high)
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min=bool(node.get("exclusiveMinimum")),
        allow_nan=False,
        allow_infinity=False,
    ) | st.integers(min_value=int(low or 0) + 1, max_value=int(high or 10**6))


# Fields whose form only a CEL rule states: values that pass it are drawn as well as values
# from the schema alone, so that accepted specs with every feature are reached.
CEL_FORMS: dict[str, st.SearchStrategy[Any]] = {
    ".lora.adapters[].source": st.from_regex(HF_SOURCE_RE, fullmatch=True)
    | st.from_regex(PVC_SOURCE_RE, fullmatch=True),
    ".rollout.maxSurge": st.integers(0, 4) | st.from_regex(r"[0-9]{1,3}%", fullmatch=True),
    ".rollout.maxUnavailable": st.integers(0, 4) | st.from_regex(r"[0-9]{1,3}%", fullmatch=True),
    ".autoscaling.minReplicas": st.integers(0, 3),
    ".autoscaling.target": st.floats(0.001, 1),
}


def from_schema(node: dict[str, Any], path: str = "") -> st.SearchStrategy[Any]:
    """Values the schema node admits (CEL rules aside): every field possible, optional ones
    sometimes absent, required ones always there."""
    strategy = _from_schema(node, path)
    return CEL_FORMS[path] | strategy if path in CEL_FORMS else strategy


def _from_schema(node: dict[str, Any], path: str) -> st.SearchStrategy[Any]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "anyOf" in node:  # int-or-string: the pattern (if any) applies to the string form
        string = {k: v for k, v in node.items() if k in ("pattern", "maxLength", "minLength")}
        return st.integers(min_value=0, max_value=100) | _string(string)
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties")
        if properties:
            required = set(node.get("required", []))
            return st.fixed_dictionaries(
                {k: from_schema(v, f"{path}.{k}") for k, v in properties.items() if k in required},
                optional={
                    k: from_schema(v, f"{path}.{k}")
                    for k, v in properties.items()
                    if k not in required
                },
            )
        if isinstance(node.get("additionalProperties"), dict):
            return st.dictionaries(
                st.text(min_size=1, max_size=20),
                from_schema(node["additionalProperties"], f"{path}{{}}"),
                max_size=min(node.get("maxProperties", 4), 4),
            )
        return st.dictionaries(st.text(max_size=10), JSON, max_size=3)  # preserve-unknown
    if kind == "array":
        items = from_schema(node["items"], f"{path}[]")
        return st.lists(items, max_size=min(node.get("maxItems", 3), 3))
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return _number(node, integer=True)
    if kind == "number":
        return _number(node, integer=False)
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"no strategy for schema node {node}")


NAMES = st.from_regex(r"[a-z]([-a-z0-9]{0,43}[a-z0-9])?", fullmatch=True)


# The optional sections that turn features on (the agent is on by default: rollout.smoke).
FEATURES = ("autoscaling", "inferencePool", "lora")


@st.composite
def schema_smolserves(draw: st.DrawFn, *, featured: bool = False) -> dict[str, Any]:
    """A SmolServe whose every field the CRD's schema admits (its CEL rules may fail); with
    ``featured``, every section in ``FEATURES`` is there."""
    node = crd_schema()["properties"]["spec"]
    if featured:
        node = {**node, "required": [*node.get("required", []), *FEATURES]}
    spec = draw(from_schema(node))
    if featured:
        _meet_the_cel_rules(spec)
    metadata = {"name": draw(NAMES), "namespace": draw(st.sampled_from(["default", "ai"]))}
    if draw(st.booleans()):
        metadata["uid"] = draw(st.uuids()).hex
    return {
        "apiVersion": labels.API_VERSION,
        "kind": labels.KIND,
        "metadata": metadata,
        "spec": spec,
    }


def _meet_the_cel_rules(spec: dict[str, Any]) -> None:
    """Edit a schema-valid spec so that its cross-field rules mostly pass: the featured specs
    are then mostly accepted, and their objects built and checked."""
    model, template = spec.get("model", {}), spec.get("template", {})
    if "pvc" in model:
        model.pop("revision", None)
    source = template.get("source", "generate")
    if source == "configMap" and "configMapRef" not in template:
        template["configMapRef"] = {"name": "template"}
    if source == "inline" and not template.get("inline"):
        template["inline"] = "{{ messages }}"
    for field in ("configMapRef", "inline", "variant", "closeSystemTurn"):
        if {"configMapRef": "configMap", "inline": "inline"}.get(field, "generate") != source:
            template.pop(field, None)
    adapters = spec["lora"].get("adapters", [])
    spec["lora"]["adapters"] = list({a["name"]: a for a in adapters}.values())
    scaling = spec["autoscaling"]
    if "serverAddress" not in scaling.get("prometheus", {}):
        scaling["engine"] = "hpa"
    if scaling.get("engine") == "hpa":
        scaling["minReplicas"] = max(1, scaling.get("minReplicas", 1))
    scaling["minReplicas"] = min(scaling.get("minReplicas", 1), scaling["maxReplicas"])
    if scaling.get("metric") == "kvCacheUsage":
        scaling["target"] = min(scaling.get("target", 1), 1)


def _paths(doc: Any) -> list[tuple[Any, ...]]:
    """Every path into ``doc``, the root first (iteratively: a mutation may nest thousands deep)."""
    found, todo = [], [((), doc)]
    while todo:
        path, value = todo.pop()
        found.append(path)
        if isinstance(value, dict):
            todo += [((*path, key), child) for key, child in value.items()]
        elif isinstance(value, list):
            todo += [((*path, i), child) for i, child in enumerate(value)]
    return found


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


MUTATIONS = (
    "null",
    "wrong type",
    "odd text",
    "trailing newline",
    "extra field",
    "odd key",
    "deep",
    "drop",
)


@st.composite
def mutated_smolserves(draw: st.DrawFn) -> dict[str, Any]:
    """A schema-valid SmolServe with one to three fields broken in one way each."""
    doc = draw(schema_smolserves())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(doc)[1:]))  # the root: WILD_SMOLSERVES
        here = doc
        for step in path:
            here = here[step]
        how = draw(st.sampled_from(MUTATIONS))
        if how == "null":
            doc = _set(doc, path, None)
        elif how == "wrong type":
            doc = _set(doc, path, draw(WRONG_TYPES))
        elif how == "odd text":
            doc = _set(doc, path, draw(ODD_TEXT))
        elif how == "trailing newline" and isinstance(here, str):
            doc = _set(doc, path, here + "\n")
        elif how == "extra field" and isinstance(here, dict):
            here[draw(st.text(min_size=1, max_size=12))] = draw(JSON)
        elif how == "odd key" and isinstance(here, dict):
            here[draw(KEYS.filter(lambda k: not isinstance(k, str)))] = draw(JSON_LEAVES)
        elif how == "deep":
            doc = _set(doc, path, _deep(draw(st.sampled_from([2, 10, 63, 64, 65, 300, 3000]))))
        elif how == "drop" and path and isinstance(here, dict | list | str | int | float):
            parent = doc
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
    return doc


WILD_SMOLSERVES = JSON | st.fixed_dictionaries(
    {"apiVersion": st.just(labels.API_VERSION), "kind": st.just(labels.KIND)},
    optional={"metadata": JSON | st.fixed_dictionaries({"name": JSON}), "spec": JSON},
)
