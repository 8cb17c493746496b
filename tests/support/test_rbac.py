"""The RBAC check tests use (support/rbac.py), on requests as the Kubernetes client sends them."""

from __future__ import annotations

from .rbac import allows, can, grants, request_attributes

CONFIG = "/api/v1/namespaces/ns/configmaps"
RULES = [
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["a"],
        "verbs": ["get", "watch"],
    },
    {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]},
]


def test_verbs_resources_and_names_are_read_as_the_api_server_reads_them() -> None:
    assert request_attributes("GET", f"{CONFIG}/a") == request_attributes("GET", f"{CONFIG}/a", "")
    get = request_attributes("GET", f"{CONFIG}/a")
    assert (get.verb, get.group, get.resource, get.namespace, get.name) == (
        "get", "", "configmaps", "ns", "a",
    )  # fmt: skip
    watch = request_attributes("GET", CONFIG, "fieldSelector=metadata.name%3Da&watch=true")
    assert (watch.verb, watch.name) == ("watch", "a")
    assert request_attributes("GET", CONFIG).verb == "list"
    status = request_attributes("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/status")
    assert (status.verb, status.group, status.resource) == ("patch", "apps", "deployments/status")


def test_resource_names_limit_even_a_watch() -> None:
    assert allows(RULES, request_attributes("GET", f"{CONFIG}/a"))
    assert allows(RULES, request_attributes("GET", CONFIG, "watch=1&fieldSelector=metadata.name=a"))
    assert not allows(RULES, request_attributes("GET", CONFIG, "watch=true"))  # every ConfigMap
    assert not allows(RULES, request_attributes("GET", f"{CONFIG}/b"))
    assert not allows(RULES, request_attributes("PATCH", f"{CONFIG}/a"))
    assert allows(
        RULES, request_attributes("PATCH", "/apis/apps/v1/namespaces/x/deployments/d/status")
    )
    assert not allows(
        RULES, request_attributes("PATCH", "/apis/apps/v1/namespaces/x/deployments/d")
    )


def test_wildcards_match_as_the_authorizer_matches_them() -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    assert can(everything, "get", "secrets")
    assert can(everything, "patch", "deployments/status", "apps", name="d")
    scale = [{"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}]
    assert can(scale, "update", "deployments/scale", "apps", name="d")
    assert not can(scale, "update", "deployments", "apps", name="d")
    assert not can(scale, "update", "deployments/status", "apps", name="d")
    core = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    assert not can(core, "get", "configmaps", "apps", name="a")  # another group
    assert not can(core, "get", "configmaps/x", name="a")  # a subresource is its own resource


def test_resource_names_never_allow_create_or_a_whole_list() -> None:
    named = [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"], "verbs": ["*"]}]
    assert can(named, "get", "secrets", name="s")
    assert not can(named, "create", "secrets")
    assert not can(named, "list", "secrets")
    assert not can(named, "get", "secrets", name="other")


def test_grants_lists_every_combination() -> None:
    assert grants(RULES) == {
        ("", "configmaps", "get", "a"),
        ("", "configmaps", "watch", "a"),
        ("apps", "deployments/status", "patch", "*"),
    }
