"""The RBAC check tests use (support/rbac.py), on requests as the Kubernetes client sends them."""

from __future__ import annotations

from .rbac import allows, request_attributes

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
