"""The SmolServe CRD, checked offline: structure, bounds, and a table of good and bad objects."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from smolserve import labels
from smolserve.spec import SpecError, load_spec

from .crdcheck import (
    CRD_PATH,
    admit,
    apply_defaults,
    cel_failures,
    load_crd,
    schema_errors,
    schema_of,
    structural_problems,
    walk,
)

CRD = load_crd()
SCHEMA = schema_of(CRD)


def smol(spec: dict[str, Any] | None = None, name: str = "smol") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": labels.API_VERSION,
        "kind": labels.KIND,
        "metadata": {"name": name, "namespace": "ai"},
    }
    if spec is not None:
        obj["spec"] = spec
    return obj


def test_names_and_version():
    spec = CRD["spec"]
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["metadata"]["name"] == f"{labels.PLURAL}.{labels.GROUP}"
    assert spec["group"] == labels.GROUP
    assert spec["names"]["kind"] == labels.KIND
    assert spec["names"]["plural"] == labels.PLURAL
    assert spec["names"]["shortNames"] == ["smol"]
    assert spec["scope"] == "Namespaced"
    (version,) = spec["versions"]
    assert version["name"] == labels.VERSION and version["served"] and version["storage"]


def test_subresources_and_printer_columns():
    (version,) = CRD["spec"]["versions"]
    assert version["subresources"]["status"] == {}
    scale = version["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Phase"] == ".status.phase"
    assert columns["Template"] == ".status.templateHash"
    assert columns["Age"] == ".metadata.creationTimestamp"
    # Every column points at a field the schema has.
    paths = {path for path, _ in walk(SCHEMA)}
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"] != ".metadata.creationTimestamp":
            assert column["jsonPath"] in paths, column


def test_schema_is_structural_and_described():
    assert structural_problems(SCHEMA) == []


def test_object_defaults_agree_with_their_fields_defaults():
    """A full default object (needed where the object's rules read its fields: the API server
    checks a default as written) says what the fields' own defaults say, so the two cannot drift
    apart: an absent object and an empty one get the same value."""
    full = 0
    for path, node in walk(SCHEMA):
        if isinstance(node.get("default"), dict) and "properties" in node:
            assert apply_defaults(node, node["default"]) == apply_defaults(node, {}), path
            full += bool(node["default"])
    assert full == 3  # template, parsers, rollout


def test_the_field_reference_shows_each_default():
    doc = (CRD_PATH.parents[1] / "docs" / "spec.md").read_text(encoding="utf-8")
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if line.startswith("| `spec.") and len(cells) >= 3:
            rows[cells[0].strip("| `")] = cells[2]
    for path, node in walk(SCHEMA["properties"]["spec"], "spec"):
        if "default" in node and path != "spec":
            shown = json.dumps(node["default"], separators=(", ", ": "))
            assert rows[path] == f"`{shown}`", path


# --- the CRD's defaults and load_spec's agree ---------------------------------------------------

DEFAULTING_CASES = [
    {},
    {"model": {}},
    {"model": {"pvc": {"claimName": "models"}, "tokenSecretRef": {"name": "hf"}}},
    {"template": {"source": "inline", "inline": "{{ x }}"}},
    {"template": {"source": "configMap", "configMapRef": {"name": "t"}}},
    {
        "lora": {
            "adapters": [
                {"name": "b", "source": "hf://o/r@v1"},
                {"name": "a", "source": "pvc://c/p"},
            ]
        }
    },
    {"engine": {"extraArgs": ["--enforce-eager"]}, "service": {"annotations": {"a": "b"}}},
    {"rollout": {"maxSurge": "25%"}},
    {
        "autoscaling": {"maxReplicas": 4, "prometheus": {"serverAddress": "http://prom:9090"}},
        "inferencePool": {"endpointPickerRef": {"name": "epp"}},
    },
]


@pytest.mark.parametrize("spec", DEFAULTING_CASES)
def test_load_spec_defaults_match_the_crd(spec):
    raw = smol(spec)
    defaulted = apply_defaults(SCHEMA, raw)
    from_code = load_spec(raw).to_dict()
    # Everything the API server fills in, load_spec fills in with the same value ...
    _assert_contains(from_code, defaulted["spec"], "spec")
    # ... and reading the server-defaulted object gives the same spec.
    assert load_spec(defaulted) == load_spec(raw)


def _assert_contains(actual: Any, expected: Any, path: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key}: defaulted by the CRD, missing in load_spec"
            _assert_contains(actual[key], value, f"{path}.{key}")
    else:
        assert actual == expected, f"{path}: CRD gives {expected!r}, load_spec {actual!r}"


def test_every_crd_default_is_exercised():
    """Each CRD default is reached by some case above, so the comparison covers all of them."""
    defaulted = [apply_defaults(SCHEMA, smol(spec)) for spec in DEFAULTING_CASES]
    for path, node in walk(SCHEMA):
        if "default" not in node or "[]" in path or "{}" in path:
            continue
        assert any(_has_path(obj, path) for obj in defaulted), f"{path}: no case reaches it"


def _has_path(obj: Any, path: str) -> bool:
    for part in path.strip(".").split("."):
        if not isinstance(obj, dict) or part not in obj:
            return False
        obj = obj[part]
    return True


# --- a table of objects the API server accepts or rejects ----------------------------------------

GOOD = {
    "empty spec": smol({}),
    "no spec": smol(),
    "full": smol(
        {
            "model": {
                "id": "HuggingFaceTB/SmolLM3-3B",
                "revision": "abc123",
                "tokenSecretRef": {"name": "hf", "key": "token"},
            },
            "servedModelName": "smol",
            "template": {"source": "generate", "variant": "stock", "closeSystemTurn": False},
            "parsers": {
                "toolCall": "hermes",
                "reasoning": "smollm3",
                "autoToolChoice": True,
                "contentFormat": "string",
            },
            "thinking": {"default": "noThink"},
            "lora": {
                "adapters": [
                    {"name": "sql", "source": "hf://org/sql-lora@v1.0"},
                    {"name": "local", "source": "pvc://adapters/local/v2"},
                ],
                "maxRank": 64,
                "maxLoras": 2,
            },
            "engine": {
                "image": "vllm/vllm-openai:v0.32.0",
                "maxModelLen": 32768,
                "gpuMemoryUtilization": 0.85,
                "dtype": "bfloat16",
                "extraArgs": ["--enforce-eager", "--max-num-seqs=64"],
                "env": [
                    {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
            },
            "resources": {
                "gpus": 2,
                "gpuResourceName": "amd.com/gpu",
                "cpu": "8",
                "memory": "48Gi",
            },
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
                        ]
                    }
                }
            },
            "runtimeClassName": "nvidia",
            "replicas": 3,
            "rollout": {"maxSurge": "25%", "maxUnavailable": 1},
            "service": {"type": "LoadBalancer", "port": 80, "annotations": {"a": "b"}},
        }
    ),
    "pvc model": smol({"model": {"pvc": {"claimName": "models", "path": "SmolLM3-3B"}}}),
    "inline": smol({"template": {"source": "inline", "inline": "{{ messages }}"}}),
    "configMap": smol({"template": {"source": "configMap", "configMapRef": {"name": "mine"}}}),
    "surge 0, unavailable 1": smol({"rollout": {"maxSurge": 0, "maxUnavailable": 1}}),
    "no tool parsing": smol({"parsers": {"toolCall": "none", "autoToolChoice": False}}),
    "no GPU": smol({"resources": {"gpus": 0}}),
    "45-character name": smol({}, name="a" * 45),
    "keda to zero on the KV cache": smol(
        {
            "autoscaling": {
                "minReplicas": 0,
                "maxReplicas": 8,
                "metric": "kvCacheUsage",
                "target": 0.8,
                "prometheus": {"serverAddress": "http://prom:9090", "query": "sum(up)"},
                "keda": {"pollingInterval": 15, "cooldownPeriod": 600},
            }
        }
    ),
    "hpa": smol(
        {
            "autoscaling": {
                "engine": "hpa",
                "maxReplicas": 3,
                "hpa": {"metricName": "vllm_num_requests_waiting"},
            }
        }
    ),
    "autoscaling off": smol({"autoscaling": {"enabled": False, "engine": "hpa", "maxReplicas": 2}}),
    "inference pool": smol(
        {
            "inferencePool": {
                "endpointPickerRef": {"name": "smol-epp", "port": 9003, "failureMode": "FailOpen"}
            }
        }
    ),
}

PROM = {"serverAddress": "http://p:9090"}
KEDA = {"maxReplicas": 2, "prometheus": PROM}
BAD = {
    "configMap without ref": (
        {"template": {"source": "configMap"}}, "configMapRef is required"),
    "ref without configMap": (
        {"template": {"configMapRef": {"name": "x"}}}, "configMapRef is required"),
    "inline without text": ({"template": {"source": "inline"}}, "non-empty inline"),
    "inline empty": ({"template": {"source": "inline", "inline": ""}}, "non-empty inline"),
    "inline text with generate": ({"template": {"inline": "x"}}, "non-empty inline"),
    "variant with inline": (
        {"template": {"source": "inline", "inline": "x", "variant": "fixed"}},
        "apply only to source generate"),
    "unknown source": ({"template": {"source": "url"}}, "source"),
    "unknown variant": ({"template": {"variant": "best"}}, "variant"),
    "pvc and revision": (
        {"model": {"revision": "main", "pvc": {"claimName": "m"}}}, "revision applies to hub"),
    "pvc without claim": ({"model": {"pvc": {"path": "x"}}}, "claimName"),
    "bad hub id": ({"model": {"id": "not a repo"}}, "id"),
    "duplicate adapters": (
        {"lora": {"adapters": [{"name": "a", "source": "hf://o/r@1"},
                               {"name": "a", "source": "hf://o/s@1"}]}},
        "adapter names must be unique"),
    "adapter without revision": (
        {"lora": {"adapters": [{"name": "a", "source": "hf://o/r"}]}}, "hf://org/repo@revision"),
    "adapter http source": (
        {"lora": {"adapters": [{"name": "a", "source": "https://x/y"}]}}, "hf://org/repo@revision"),
    "adapter path traversal": (
        {"lora": {"adapters": [{"name": "a", "source": "pvc://c/../etc"}]}}, "'..'"),
    "adapter name not a DNS label": (
        {"lora": {"adapters": [{"name": "My_Adapter", "source": "hf://o/r@1"}]}}, "name"),
    "adapter without source": ({"lora": {"adapters": [{"name": "a"}]}}, "source"),
    "rank not allowed": ({"lora": {"maxRank": 24}}, "maxRank"),
    "zero loras": ({"lora": {"maxLoras": 0}}, "maxLoras"),
    "surge and unavailable both 0": (
        {"rollout": {"maxSurge": 0, "maxUnavailable": "0%"}}, "cannot both be 0"),
    "percent without %": ({"rollout": {"maxSurge": "5"}}, "percentage"),
    "negative surge": ({"rollout": {"maxSurge": -1}}, "percentage"),
    "unknown reasoning parser": ({"parsers": {"reasoning": "magic"}}, "reasoning"),
    "auto tool choice without parser": (
        {"parsers": {"toolCall": "none"}}, "autoToolChoice needs a toolCall parser"),
    "tool parser with spaces": ({"parsers": {"toolCall": "her mes"}}, "toolCall"),
    "content format": ({"parsers": {"contentFormat": "markdown"}}, "contentFormat"),
    "thinking mode": ({"thinking": {"default": "maybe"}}, "default"),
    "utilization above 1": ({"engine": {"gpuMemoryUtilization": 1.5}}, "gpuMemoryUtilization"),
    "utilization 0": ({"engine": {"gpuMemoryUtilization": 0}}, "gpuMemoryUtilization"),
    "reserved extra arg": ({"engine": {"extraArgs": ["--port=9000"]}}, "set by smolserve"),
    "reserved extra arg, separate value": (
        {"engine": {"extraArgs": ["--model", "x"]}}, "set by smolserve"),
    "reserved env": ({"engine": {"env": [{"name": "HF_TOKEN", "value": "x"}]}}, "set by smolserve"),
    "env without name": ({"engine": {"env": [{"value": "x"}]}}, "name"),
    "unknown dtype": ({"engine": {"dtype": "int4"}}, "dtype"),
    "negative gpus": ({"resources": {"gpus": -1}}, "gpus"),
    "memory not a quantity": ({"resources": {"memory": "lots"}}, "memory"),
    "negative replicas": ({"replicas": -1}, "replicas"),
    "service type": ({"service": {"type": "ExternalName"}}, "type"),
    "service port": ({"service": {"port": 70000}}, "port"),
    "toleration operator": ({"tolerations": [{"operator": "Maybe"}]}, "operator"),
    "nodeSelector value not a string": ({"nodeSelector": {"a": 1}}, "nodeSelector"),
    "autoscaling min above max": (
        {"autoscaling": {**KEDA, "minReplicas": 3}}, "not be more than maxReplicas"),
    "hpa to zero": (
        {"autoscaling": {**KEDA, "engine": "hpa", "minReplicas": 0}}, "needs engine keda"),
    "kv-cache target above 1": (
        {"autoscaling": {**KEDA, "metric": "kvCacheUsage", "target": 2}},
        "fraction of the KV cache"),
    "keda without prometheus": (
        {"autoscaling": {"maxReplicas": 2}}, "needs prometheus.serverAddress"),
    "autoscaling without max": ({"autoscaling": {"engine": "hpa"}}, "maxReplicas"),
    "autoscaling unknown engine": (
        {"autoscaling": {"engine": "knative", "maxReplicas": 2}}, "engine"),
    "autoscaling target 0": ({"autoscaling": {**KEDA, "target": 0}}, "target"),
    "prometheus address not a URL": (
        {"autoscaling": {"maxReplicas": 2, "prometheus": {"serverAddress": "prom:9090"}}},
        "serverAddress"),
    "affinity without node selector terms": (  # Kubernetes refuses the Deployment
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        "nodeSelectorTerms"),
    "affinity term not a list": (
        {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        "requiredDuringSchedulingIgnoredDuringExecution"),
    "pool without picker": ({"inferencePool": {"enabled": True}}, "endpointPickerRef"),
    "pool picker not a DNS name": (
        {"inferencePool": {"endpointPickerRef": {"name": "Bad_Name"}}}, "name"),
}  # fmt: skip


@pytest.mark.parametrize("name", GOOD)
def test_good_objects_are_admitted(name):
    obj, errors = admit(SCHEMA, GOOD[name])
    assert errors == []
    load_spec(obj)  # and the operator can act on them


@pytest.mark.parametrize("name", BAD)
def test_bad_objects_are_rejected(name):
    spec, expected = BAD[name]
    _, errors = admit(SCHEMA, smol(copy.deepcopy(spec)))
    assert errors, f"{name}: admitted"
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("name", ["a" * 46, "1abc"])
def test_bad_names_are_rejected(name):
    _, errors = admit(SCHEMA, smol({}, name=name))
    assert any("the name must start with a letter" in e for e in errors), errors


# Cross-field rules also live in load_spec: the emulator and `smolserve render` never run CEL.
def _rejected_by_cel_only(spec: dict[str, Any]) -> bool:
    obj = apply_defaults(SCHEMA, smol(copy.deepcopy(spec)))
    return not schema_errors(SCHEMA, obj) and bool(cel_failures(SCHEMA, obj))


CEL_CASES = [name for name, (spec, _) in BAD.items() if _rejected_by_cel_only(spec)]


def test_cel_cases_are_most_of_the_cross_field_rules():
    assert len(CEL_CASES) >= 10, CEL_CASES


@pytest.mark.parametrize("name", CEL_CASES)
def test_load_spec_rejects_what_cel_rejects_with_the_crd_message(name):
    spec, _ = BAD[name]
    obj = smol(copy.deepcopy(spec))
    with pytest.raises(SpecError) as err:
        load_spec(obj)
    # cel_failures names paths `.spec.x`; load_spec `spec.x`.
    assert f".{err.value}" in cel_failures(SCHEMA, apply_defaults(SCHEMA, obj))


def test_every_cel_rule_of_the_spec_has_a_case():
    messages = {
        " ".join(rule["message"].split())
        for _, node in walk(SCHEMA["properties"]["spec"])
        for rule in node.get("x-kubernetes-validations") or []
    }
    reached = {
        failure.split(": ", 1)[1]
        for name in CEL_CASES
        for failure in cel_failures(SCHEMA, apply_defaults(SCHEMA, smol(BAD[name][0])))
    }
    assert messages - reached == set()


def test_the_field_reference_documents_every_spec_field():
    doc = (CRD_PATH.parents[1] / "docs" / "spec.md").read_text(encoding="utf-8")
    spec = SCHEMA["properties"]["spec"]
    missing = [path for path, _ in walk(spec, "spec") if path != "spec" and f"`{path}`" not in doc]
    assert missing == []


def _example_serves() -> list[tuple[str, dict[str, Any]]]:
    import yaml

    found = []
    for path in sorted((CRD_PATH.parents[1] / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == labels.KIND:
                found.append((str(path.relative_to(CRD_PATH.parents[1])), doc))
    return found


def test_the_examples_are_admitted_and_loadable():
    examples = _example_serves()
    assert examples, "no SmolServe in examples/"
    for where, doc in examples:
        obj, errors = admit(SCHEMA, doc)
        assert errors == [], where
        load_spec(obj)


def test_the_crd_is_a_valid_kubernetes_object():
    import kubernetes_validate

    kubernetes_validate.validate(CRD, "1.37.0", strict=True)


def test_load_spec_reads_this_crd():
    from smolserve.spec import crd

    assert crd() == CRD


def test_generate_defaults_are_what_the_crd_describes():
    """variant and closeSystemTurn have no CRD default (they apply to one source only)."""
    from smolserve.spec import GENERATE_DEFAULTS
    from smolserve.template.generate import VARIANTS

    template = SCHEMA["properties"]["spec"]["properties"]["template"]["properties"]
    assert tuple(template["variant"]["enum"]) == VARIANTS
    for name, value in GENERATE_DEFAULTS.items():
        assert "default" not in template[name]
        assert f"(default {str(value).lower()})" in template[name]["description"], name


@pytest.mark.parametrize("name", GOOD)
def test_good_objects_hold_no_field_load_spec_refuses(name):
    load_spec(GOOD[name])  # without the API server's defaulting
