"""Fuzzed SmolServes: ``load_spec`` returns a spec or raises one ``SpecError`` naming a field
path, and every spec it accepts builds objects Kubernetes 1.30 admits (strict schema). Never
another exception."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import example, given, settings

from smolserve.manifests import ServedTemplate, desired_state, template_inputs_hash
from smolserve.spec import SmolServeSpec, SpecError, load_spec
from support.factories import operator_config

from .budget import examples
from .kube import is_builtin, schema_errors
from .strategies import WILD_SMOLSERVES, mutated_smolserves, schema_smolserves

CONFIG = operator_config()
SERVED = ServedTemplate("fuzz-chat-template-0123abcd", "0123abcd")
# What "names a field path" means, from the messages load_spec gives: a path into the object
# (`spec.lora.adapters[0].source: …`, `metadata.name …`, `spec: …`), or, for the object's own
# top level, the unknown field itself, or the object as a whole when it is not a mapping.
FIELD_PATH = re.compile(r"^(spec|metadata)(\.[^\s:]|\[|:| )")
TOP_LEVEL = re.compile(r"^unknown field .+ \(known: apiVersion, kind, metadata, spec, status\)$")
NOT_A_MAPPING = "a SmolServe must be a mapping"


def assert_names_a_field(error: SpecError) -> None:
    message = str(error)
    assert "\n" not in message, f"more than one line: {message!r}"
    assert FIELD_PATH.match(message) or TOP_LEVEL.match(message) or message == NOT_A_MAPPING, (
        f"names no field path: {message!r}"
    )


def objects_of(spec: SmolServeSpec, *, publishing: bool) -> list[dict[str, Any]]:
    """Every object the spec can have: its template served, its Job's inputs known."""
    inputs = template_inputs_hash(spec, CONFIG)
    desired = desired_state(
        spec, CONFIG, inputs_hash=inputs, template=SERVED, publishing=publishing
    )
    return desired.objects()


def check(doc: Any) -> SmolServeSpec | None:
    """The property: a spec whose objects Kubernetes admits, or one SpecError naming a field."""
    try:
        spec = load_spec(doc)
    except SpecError as error:
        assert_names_a_field(error)
        return None
    for publishing in (True, False):
        problems = [
            p for obj in objects_of(spec, publishing=publishing) for p in schema_errors(obj)
        ]
        assert problems == [], problems
    return spec


@settings(max_examples=examples(100))
@given(schema_smolserves())
def test_schema_valid_smolserves(doc: dict[str, Any]) -> None:
    check(doc)


@settings(max_examples=examples(150))
@given(mutated_smolserves())
def test_mutated_smolserves(doc: dict[str, Any]) -> None:
    check(doc)


@settings(max_examples=examples(150))
@example(None)
@example([])
@example({"metadata": None, "spec": None})
@example({"metadata": {"name": "smol"}, "spec": []})
@given(WILD_SMOLSERVES)
def test_wild_json(doc: Any) -> None:
    check(doc)


def test_the_strategies_reach_accepted_specs_with_every_feature() -> None:
    """The schema strategy is not all rejections: it reaches specs with each feature on, so
    their objects are checked too."""
    seen: set[str] = set()

    @settings(max_examples=examples(100))
    @given(schema_smolserves(featured=True))
    def collect(doc: dict[str, Any]) -> None:
        spec = check(doc)
        if spec is None:
            return
        seen.add("accepted")
        if spec.lora.dynamic:
            seen.add("dynamic lora")
        if spec.lora.static:
            seen.add("static lora")
        if spec.autoscaling is not None and spec.autoscaling.enabled:
            seen.add(f"autoscaling {spec.autoscaling.engine}")
        if spec.inference_pool is not None and spec.inference_pool.enabled:
            seen.add("inference pool")
        if spec.rollout.smoke:
            seen.add("agent")

    collect()
    assert seen >= {"accepted", "agent", "dynamic lora", "inference pool", "autoscaling hpa"}


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"bogus": 1}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}},
    ],
)
def test_the_cached_validator_refuses_what_kubernetes_validate_refuses(obj) -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
    assert schema_errors(obj) != []


def test_the_cached_validator_admits_what_kubernetes_validate_admits() -> None:
    spec = load_spec({"metadata": {"name": "smol", "namespace": "ai"}})
    objects = objects_of(spec, publishing=True)
    assert any(is_builtin(obj) for obj in objects)
    for obj in objects:
        if is_builtin(obj):
            kubernetes_validate.validate(obj, "1.30.0", strict=True)
        assert schema_errors(obj) == []
