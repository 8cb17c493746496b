"""What each account smolserve creates may do, exactly, and that none of them can read Secrets:
the template Job's Role, the agent's Role, and the operator's ClusterRole (or Roles, in a
namespaced install) from the chart. Checked with the RBAC evaluator of support/rbac.py.

The operator needs no Secret access: the hub token reaches pods only as a ``secretKeyRef`` the
kubelet resolves; the operator never reads the Secret (nor checks that it exists).
"""

from __future__ import annotations

from typing import Any

import pytest

from smolserve.manifests.agent import build_agent_rbac
from smolserve.manifests.template import build_template_rbac
from smolserve.spec import load_spec
from support.factories import smolserve
from support.rbac import can, grants

from .pods import FEATURES

READ = ("get", "list", "watch")
ALL_VERBS = (*READ, "create", "update", "patch", "delete", "deletecollection")
SPEC = load_spec(smolserve(FEATURES["dynamic-lora-no-smoke"], name="smol", namespace="ai"))
NAMESPACED_ROLES = ("Role", "ClusterRole")


def role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] in NAMESPACED_ROLES]
    return found


def assert_no_secrets(rules: list[dict[str, Any]]) -> None:
    for verb in ALL_VERBS:
        assert not can(rules, verb, "secrets"), verb
        assert not can(rules, verb, "secrets", name="hf-token"), verb


def test_the_template_job_may_only_read_and_write_configmaps() -> None:
    rules = role(build_template_rbac(SPEC))["rules"]
    assert grants(rules) == {
        ("", "configmaps", "get", "*"),
        ("", "configmaps", "create", "*"),
        ("", "configmaps", "patch", "*"),
    }
    assert_no_secrets(rules)


def test_the_agent_may_only_read_its_config_and_patch_its_status() -> None:
    rules = role(build_agent_rbac(SPEC))["rules"]
    assert grants(rules) == {
        ("", "configmaps", "get", "smol-agent-config"),
        ("", "configmaps", "list", "smol-agent-config"),
        ("", "configmaps", "watch", "smol-agent-config"),
        ("", "configmaps", "get", "smol-agent-status"),
        ("", "configmaps", "patch", "smol-agent-status"),
    }
    assert_no_secrets(rules)
    assert not can(rules, "get", "configmaps", name="smol-chat-template-00000000")


# What the operator does, each grant with its reason (docs/security.md).
MANAGED = {"list", "watch", "create", "patch", "delete"}  # children it also prunes
OPERATOR_GRANTS = {
    ("smolserve.dev", "smolserves"): {"get", "list", "watch"},  # kopf writes nothing to them
    ("smolserve.dev", "smolserves/status"): {"get", "patch"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},  # the template Jobs
    # children, template sources (watched), template ConfigMaps (pruned)
    ("", "configmaps"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments"): {"list", "watch", "create", "patch"},
    ("", "services"): {"list", "watch", "create", "patch"},
    ("", "serviceaccounts"): {"list", "watch", "create", "patch"},  # template Job, agent
    ("rbac.authorization.k8s.io", "roles"): {"list", "watch", "create", "patch"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"list", "watch", "create", "patch"},
    ("", "pods"): {"list", "watch"},  # rollout and adapter status
    ("", "events"): {"create"},
    ("autoscaling", "horizontalpodautoscalers"): MANAGED,
    ("keda.sh", "scaledobjects"): MANAGED,
    ("inference.networking.k8s.io", "inferencepools"): MANAGED,
}
PEERING = {"get", "list", "watch", "patch"}


def as_table(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb, name in grants(rules):
        assert name == "*", (group, resource, verb, name)
        table.setdefault((group, resource), set()).add(verb)
    return table


@pytest.mark.tools
@pytest.mark.parametrize(
    ("values", "kind", "namespaces", "peering"),
    [
        ("defaults", "ClusterRole", [None], "clusterkopfpeerings"),
        ("namespaced-values.yaml", "Role", ["team-a", "team-b"], "kopfpeerings"),
        ("standalone-values.yaml", "ClusterRole", [None], None),
    ],
)
def test_the_operator_may_do_exactly_its_list_and_nothing_with_secrets(
    chart_objects: dict[str, list[dict[str, Any]]],
    values: str,
    kind: str,
    namespaces: list[str | None],
    peering: str | None,
) -> None:
    objects = chart_objects[values]
    roles = [o for o in objects if o["kind"] in NAMESPACED_ROLES]
    assert [(r["kind"], r["metadata"].get("namespace")) for r in roles] == [
        (kind, ns) for ns in namespaces
    ]
    expected = dict(OPERATOR_GRANTS)
    if peering is not None:
        expected[("kopf.dev", peering)] = PEERING
    for found in roles:
        rules = found["rules"]
        assert as_table(rules) == expected
        assert_no_secrets(rules)
        # No escalation: it cannot grant what it lacks, nor impersonate, nor exec into pods.
        assert not can(rules, "escalate", "roles", "rbac.authorization.k8s.io", name="r")
        assert not can(rules, "bind", "roles", "rbac.authorization.k8s.io", name="r")
        assert not can(rules, "impersonate", "serviceaccounts", name="default")
        assert not can(rules, "create", "pods/exec", name="p")
        assert not can(rules, "create", "pods")


@pytest.mark.tools
def test_every_chart_values_file_keeps_the_operator_off_secrets(
    chart_objects: dict[str, list[dict[str, Any]]],
) -> None:
    for label, objects in chart_objects.items():
        for found in (o for o in objects if o["kind"] in NAMESPACED_ROLES):
            assert found["rules"], label
            assert_no_secrets(found["rules"])
