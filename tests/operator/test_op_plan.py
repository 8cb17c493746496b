"""The pure parts of the operator: the reconcile planner, the status and the apply diff."""

from __future__ import annotations

import copy
from typing import Any

from smolserve import labels
from smolserve.manifests import (
    OperatorConfig,
    build_template_configmap,
    template_inputs_hash,
)
from smolserve.operator import status as st
from smolserve.operator.apply import contains, merge_patch_for, with_last_applied
from smolserve.operator.reconcile import Observed, Plan, plan
from smolserve.spec import load_spec

CONFIG = OperatorConfig(job_image="ghcr.io/smolserve/template-job:test")
NOW = "2026-11-25T12:00:00Z"
LATER = "2026-11-25T12:05:00Z"


def serve(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": labels.API_VERSION,
        "kind": labels.KIND,
        "metadata": {"name": "smol", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": {"model": {"pvc": {"claimName": "models", "path": "m"}}, **spec},
    }


def stored(obj: dict[str, Any], version: int) -> dict[str, Any]:
    """What the API server would hold after creating ``obj`` (plus defaults of its own)."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid=f"uid-{version}", resourceVersion=str(version), generation=1)
    live["metadata"]["creationTimestamp"] = f"2026-11-25T11:00:{version:02d}Z"
    if live["kind"] == "Service":
        live["spec"]["clusterIP"] = "10.0.0.1"  # a server default the operator must leave alone
    return live


def template_cm(body: dict[str, Any], text: str, version: int) -> dict[str, Any]:
    inputs = template_inputs_hash(load_spec(body), CONFIG)
    cm = build_template_configmap(
        serve="smol", namespace="ns", owner_uid="u-1", text=text, inputs_hash=inputs
    )
    return stored(cm, version)


def converge(body: dict[str, Any], children: list[dict[str, Any]]) -> tuple[Plan, list[dict]]:
    """Plan once and apply the plan to the children, as the API server would."""
    first = plan(Observed(body, children), CONFIG, NOW)
    live = list(children)
    for index, obj in enumerate(first.create):
        live.append(stored(obj, 50 + index))
    return first, live


def test_without_a_template_a_job_is_created_and_no_deployment() -> None:
    result = plan(Observed(serve(), []), CONFIG, NOW)
    kinds = [o["kind"] for o in result.create]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Job", "Service"]
    assert result.status["conditions"][0]["reason"] == st.TEMPLATE_JOB_RUNNING
    assert result.status["phase"] == st.PENDING


def test_a_ready_template_deploys_and_then_nothing_is_written() -> None:
    body = serve()
    cm = template_cm(body, "T1", 1)
    first, live = converge(body, [cm])
    assert "Job" not in [o["kind"] for o in first.create]  # a kept template needs no Job
    deployment = next(o for o in first.create if o["kind"] == "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "template",
        "configMap": {
            "name": cm["metadata"]["name"],
            "items": [{"key": "chat_template.jinja", "path": "chat_template.jinja"}],
        },
    } in volumes
    body["status"] = first.status
    again = plan(Observed(body, live), CONFIG, LATER)
    assert again.writes == 0 and again.events == []


def test_a_changed_spec_patches_only_what_changed() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    body["spec"]["replicas"] = 3
    result = plan(Observed(body, live), CONFIG, LATER)
    patches = {ref.kind: patch for ref, patch in result.patch}
    assert set(patches) == {"Deployment"} and patches["Deployment"]["spec"] == {"replicas": 3}
    assert result.create == [] and result.delete == []


def test_a_failed_job_degrades_and_leaves_the_deployment_alone() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    body["spec"]["template"] = {"variant": "seed"}
    job = next(o for o in plan(Observed(body, live), CONFIG, NOW).create if o["kind"] == "Job")
    failed = stored(job, 90)
    failed["status"] = {
        "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    }
    messages = {job["metadata"]["name"]: "template failed verification: tool-calls 0/20 FAIL"}
    result = plan(Observed(body, [*live, failed], job_messages=messages), CONFIG, LATER)
    assert result.create == [] and result.patch == []
    degraded = result.status["conditions"][3]
    assert (degraded["status"], degraded["reason"]) == ("True", st.TEMPLATE_JOB_FAILED)
    assert "tool-calls 0/20 FAIL" in degraded["message"]
    assert degraded["lastTransitionTime"] == LATER
    assert {e.type for e in result.events if e.reason == st.TEMPLATE_JOB_FAILED} == {"Warning"}


def test_pruning_keeps_the_one_in_use_and_the_newest() -> None:
    body = serve()
    old = [
        template_cm(serve(template={"variant": v}), f"T-{v}", i)
        for i, v in enumerate(["seed", "stock"], 1)
    ]
    in_use = template_cm(body, "T-fixed", 3)
    first, live = converge(body, [*old, in_use])
    body["status"] = first.status
    newest = template_cm(serve(template={"closeSystemTurn": False}), "T-open", 9)
    result = plan(Observed(body, [*live, newest]), CONFIG, LATER)
    assert [ref.name for ref in result.delete] == [old[0]["metadata"]["name"]]


def test_a_bad_spec_is_degraded_without_children() -> None:
    result = plan(Observed(serve(replicas="many"), []), CONFIG, NOW)
    assert result.create == [] and result.patch == []
    assert result.status["phase"] == st.DEGRADED_PHASE
    assert result.status["conditions"][3]["reason"] == st.INVALID_SPEC
    assert [e.type for e in result.events if e.reason == st.INVALID_SPEC] == ["Warning", "Warning"]


def test_a_refused_write_is_degraded_and_not_retried() -> None:
    body = serve()
    refused = "HTTP 403: roles.rbac.authorization.k8s.io is forbidden"
    result = plan(Observed(body, [], apply_error=refused), CONFIG, NOW)
    assert result.create == result.patch == result.delete == []
    degraded = result.status["conditions"][3]
    assert (degraded["status"], degraded["reason"], degraded["message"]) == (
        "True",
        st.APPLY_FAILED,
        refused,
    )


def test_contains_ignores_server_defaults_but_not_changes() -> None:
    assert contains({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}})
    assert contains([{"x": 1, "y": 2}], [{"x": 1}])
    assert not contains([{"x": 1}, {"x": 2}], [{"x": 1}])
    assert not contains({"a": "1"}, {"a": 1})
    canonical = {"resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": "1", "memory": "24Gi"}}}
    assert contains(canonical, {"resources": {"limits": {"cpu": "0.5", "nvidia.com/gpu": 1}}})
    assert not contains(canonical, {"resources": {"limits": {"cpu": "1"}}})


def test_the_apply_diff_removes_what_was_dropped_and_replaces_changed_lists() -> None:
    desired = {
        "kind": "Service",
        "metadata": {"name": "s", "labels": {"a": "1", "b": "2"}},
        "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"x": "y"}},
    }
    live = copy.deepcopy(with_last_applied(desired))
    live["spec"]["clusterIP"] = "10.0.0.1"
    live["spec"]["ports"][0]["protocol"] = "TCP"
    assert merge_patch_for(desired, live) is None
    changed = copy.deepcopy(desired)
    del changed["metadata"]["labels"]["b"]
    changed["spec"]["ports"] = [{"port": 80, "name": "http"}, {"port": 81, "name": "x"}]
    patch = merge_patch_for(changed, live)
    assert patch["metadata"]["labels"] == {"b": None}
    assert patch["spec"] == {"ports": changed["spec"]["ports"]}
    assert "clusterIP" not in patch["spec"]
