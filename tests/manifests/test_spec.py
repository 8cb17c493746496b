"""``load_spec``: defaults, one-line errors naming the field, and a lossless ``to_dict``."""

from __future__ import annotations

from typing import Any

import pytest

from smolserve.errors import UsageError
from smolserve.spec import SpecError, crd, crd_schema, load_spec


def obj(spec: Any, name: str = "smol") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ai", "uid": "u"}, "spec": spec}


def test_identity_is_recorded():
    spec = load_spec(obj({}))
    assert (spec.name, spec.namespace, spec.uid) == ("smol", "ai", "u")


def test_spec_error_is_a_usage_error():
    assert issubclass(SpecError, UsageError)


def test_generate_only_defaults():
    assert load_spec(obj({})).template.variant == "fixed"
    assert load_spec(obj({})).template.close_system_turn is True
    inline = load_spec(obj({"template": {"source": "inline", "inline": "x"}})).template
    assert inline.variant is None and inline.close_system_turn is None


def test_adapters_are_sorted_by_name():
    spec = load_spec(
        obj({"lora": {"adapters": [{"name": "b", "source": "hf://o/b@1"},
                                   {"name": "a", "source": "pvc://c/a"}]}})
    )  # fmt: skip
    assert [a.name for a in spec.lora.adapters] == ["a", "b"]
    assert spec.lora.adapters[0].pvc.claim_name == "c"
    assert spec.lora.adapters[1].hf_repo == ("o/b", "1")


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"model": {"pvc": {"claimName": "m", "path": "/p/"}, "tokenSecretRef": {"name": "s"}}},
        {"template": {"source": "configMap", "configMapRef": {"name": "t", "key": "k"}}},
        {"engine": {"env": [{"name": "A", "value": "1"}], "extraArgs": ["--x"]}},
        {
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}
                    ]
                }
            },
            "runtimeClassName": "nvidia",
            "tolerations": [{"key": "k"}],
        },
        {"rollout": {"maxSurge": "10%", "maxUnavailable": "5%"}, "resources": {"cpu": 2}},
    ],
)
def test_to_dict_round_trips(spec):
    loaded = load_spec(obj(spec))
    assert load_spec(obj(loaded.to_dict())) == loaded


BAD = {
    "spec not a mapping": ([], "spec must be an object"),
    "section not a mapping": ({"model": "x"}, "spec.model: 'x' is not of type 'object'"),
    "replicas as string": ({"replicas": "3"}, "spec.replicas: '3' is not of type 'integer'"),
    "replicas as bool": ({"replicas": True}, "spec.replicas: True is not of type 'integer'"),
    "negative replicas": ({"replicas": -1}, "spec.replicas"),
    "unknown source": (
        {"template": {"source": "url"}},
        "spec.template.source: 'url' is not one of",
    ),
    "unknown dtype": ({"engine": {"dtype": "int4"}}, "spec.engine.dtype"),
    "utilization": ({"engine": {"gpuMemoryUtilization": 2}}, "gpuMemoryUtilization"),
    "extra args not strings": ({"engine": {"extraArgs": [1]}}, "extraArgs"),
    "rank": ({"lora": {"maxRank": 3}}, "spec.lora.maxRank"),
    "adapter without source": ({"lora": {"adapters": [{"name": "a"}]}}, "adapters[0]"),
    "adapter name a path": (
        {"lora": {"adapters": [{"name": "../../etc", "source": "pvc://c/p"}]}},
        "spec.lora.adapters[0].name: '../../etc' does not match",
    ),
    "percent": ({"rollout": {"maxSurge": "ten"}}, "spec.rollout.maxSurge"),
    "service port": ({"service": {"port": 0}}, "spec.service.port"),
    "service type": ({"service": {"type": "ExternalName"}}, "spec.service.type"),
    "pvc without claim": ({"model": {"pvc": {}}}, "spec.model.pvc: 'claimName' is a required"),
    "secret without name": (
        {"model": {"tokenSecretRef": {}}},
        "spec.model.tokenSecretRef: 'name' is a required",
    ),
    "cpu as list": ({"resources": {"cpu": [1]}}, "spec.resources.cpu"),
    "misspelt section": ({"parser": {}}, "spec: unknown field 'parser' (known: affinity,"),
    "misspelt field": ({"parsers": {"reasonning": "qwen3"}}, "spec.parsers: unknown field"),
    "misspelt nested field": (
        {"model": {"pvc": {"claimName": "m", "subPath": "x"}}},
        "spec.model.pvc: unknown field 'subPath'",
    ),
    "misspelt toleration field": (
        {"tolerations": [{"key": "k", "efect": "NoSchedule"}]},
        "spec.tolerations[0]: unknown field 'efect'",
    ),
    "long value": (
        {"template": {"source": "inline", "inline": "x" * 70000}},
        "spec.template.inline: breaks maxLength: 65536",
    ),
    # Found by tests/fuzz: affinity and env[].valueFrom were taken as they came, so the
    # Deployment carried what Kubernetes refuses.
    "misspelt affinity kind": (
        {"affinity": {"nodeAfinity": {}}},
        "spec.affinity: unknown field 'nodeAfinity'",
    ),
    "affinity term not a list": (
        {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution: {} is not",
    ),
    "node affinity without terms": (
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        "'nodeSelectorTerms' is a required property",
    ),
    "misspelt env source": (
        {"engine": {"env": [{"name": "X", "valueFrom": {"secretRef": {"name": "s"}}}]}},
        "spec.engine.env[0].valueFrom: unknown field 'secretRef'",
    ),
    # Found by tests/fuzz: Python's `$` also matches before a final newline, RE2's does not.
    "quantity with a final newline": (
        {"resources": {"cpu": "4\n"}},
        "spec.resources.cpu: '4\\n' does not match '^[0-9]+(\\\\.[0-9]+)?m?$'",
    ),
    "percentage with a final newline": (
        {"rollout": {"maxSurge": "25%\n"}},
        "spec.rollout.maxSurge: must be a non-negative integer",
    ),
    "adapter source with a final newline": (
        {"lora": {"adapters": [{"name": "a", "source": "hf://o/r@v1\n"}]}},
        "spec.lora.adapters[0].source: source must be",
    ),
    "misspelt adapter field": (
        {"lora": {"adapters": [{"name": "a", "source": "hf://o/r@1", "rank": 8}]}},
        "spec.lora.adapters[0]: unknown field 'rank'",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_specs_fail_with_one_line_naming_the_field(name):
    spec, expected = BAD[name]
    with pytest.raises(SpecError) as err:
        load_spec(obj(spec))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["", "Smol", "9lives", "a" * 46, "a_b", "smol\n"])
def test_bad_names(name):
    with pytest.raises(SpecError, match=r"metadata\.name"):
        load_spec(obj({}, name=name))


def test_null_fields_are_dropped_like_the_api_server_does():
    """A YAML ``key:`` with no value is null; the API server prunes it before defaulting."""
    nulls = {"model": None, "parsers": {"reasoning": None}, "runtimeClassName": None}
    assert load_spec(obj(nulls)) == load_spec(obj({}))


def test_the_schema_comes_from_the_packaged_crd():
    assert crd()["kind"] == "CustomResourceDefinition"
    assert crd_schema()["properties"]["spec"]["properties"]["model"]["default"] == {}


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"namespace": ["ai"]}, "metadata.namespace ['ai'] must be a DNS label"),
        ({"namespace": "AI space"}, "metadata.namespace 'AI space' must be a DNS label"),
        ({"uid": 7}, "metadata.uid 7 must be a non-empty string"),
    ],
)
def test_the_identity_the_children_carry_is_checked(meta, message):
    """Found by tests/fuzz: a namespace or uid of the wrong type reached the children."""
    with pytest.raises(SpecError) as err:
        load_spec({"metadata": {"name": "smol", **meta}})
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({1: "x", "metadata": {"name": "smol"}}, "unknown field 1 (known: apiVersion,"),
        ({"metadata": {"name": "smol", None: "x"}}, "metadata: field names must be strings, not"),
        (
            {"metadata": {"name": "smol"}, "spec": {"nodeSelector": {"gpu": "a", 1: "b"}}},
            "spec.nodeSelector: field names must be strings, not 1",
        ),
    ],
)
def test_field_names_that_are_not_strings_are_refused(body, message):
    """Found by tests/fuzz: YAML reads `1:` as a number, which failed with a TypeError or
    reached the Deployment."""
    with pytest.raises(SpecError) as err:
        load_spec(body)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("section", ["metadata", "spec"])
def test_values_nested_too_deep_are_refused(section):
    """Found by tests/fuzz: 500 levels were a RecursionError (``smolserve render -f`` reads any
    YAML)."""
    deep: Any = "x"
    for _ in range(500):
        deep = [deep]
    body = {
        "metadata": {"name": "smol"},
        section: {"labels" if section == "metadata" else "affinity": deep},
    }
    with pytest.raises(SpecError) as err:
        load_spec(body)
    assert str(err.value).endswith(": nested more than 64 levels deep")


def test_a_map_key_in_a_path_is_quoted_on_one_line():
    """Found by tests/fuzz: a key with a newline split the message in two."""
    with pytest.raises(SpecError) as err:
        load_spec({"metadata": {"name": "smol"}, "spec": {"nodeSelector": {"a\nb": 1}}})
    assert str(err.value) == "spec.nodeSelector['a\\nb']: 1 is not of type 'string'"


def test_not_a_mapping():
    with pytest.raises(SpecError):
        load_spec([])  # type: ignore[arg-type]


# --- unknown fields outside spec, as `kubectl apply --validate=strict` refuses them -------------

TOP_LEVEL = "apiVersion, kind, metadata, spec, status"
META = (
    "annotations, creationTimestamp, deletionGracePeriodSeconds, deletionTimestamp, finalizers, "
    "generateName, generation, labels, managedFields, name, namespace, ownerReferences, "
    "resourceVersion, selfLink, uid"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"metadata": {"name": "smol"}, "specs": {"replicas": 2}},
            f"unknown field 'specs' (known: {TOP_LEVEL})",
        ),
        (
            {"metadata": {"name": "smol", "lables": {"a": "b"}}},
            f"metadata: unknown field 'lables' (known: {META})",
        ),
        # The misspelt metadata is named, not the name it would have carried.
        ({"metdata": {"name": "smol"}}, f"unknown field 'metdata' (known: {TOP_LEVEL})"),
    ],
    ids=["top-level", "metadata", "misspelt-metadata"],
)
def test_unknown_fields_outside_spec_are_refused(body, message):
    with pytest.raises(SpecError) as err:
        load_spec(body)
    assert str(err.value) == message


def test_an_object_as_the_api_server_returns_it_loads():
    """What the operator receives: every field the server sets, status included."""
    served = {
        "apiVersion": "smolserve.dev/v1alpha1",
        "kind": "SmolServe",
        "metadata": {
            "name": "smol",
            "namespace": "ai",
            "uid": "0b8c-uid",
            "resourceVersion": "4711",
            "generation": 3,
            "creationTimestamp": "2026-01-15T00:00:00Z",
            "deletionTimestamp": "2026-01-16T00:00:00Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"app": "x"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"],
            "ownerReferences": [],
            "generateName": "smol-",
            "selfLink": "/apis/smolserve.dev/v1alpha1/namespaces/ai/smolserves/smol",
            "managedFields": [{"manager": "kubectl", "operation": "Update"}],
        },
        "spec": {},
        "status": {"phase": "Ready", "kopf": {"progress": {}}},
    }
    loaded = load_spec(served)
    assert (loaded.name, loaded.namespace, loaded.uid) == ("smol", "ai", "0b8c-uid")
    assert loaded.to_dict() == load_spec(obj({})).to_dict()
