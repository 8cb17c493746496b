"""The pure parts of the operator: the reconcile planner, the status and the apply diff."""

from __future__ import annotations

import copy
from typing import Any

from smolserve.manifests import (
    build_parser_configmap,
    build_template_configmap,
    template_inputs_hash,
)
from smolserve.operator import status as st
from smolserve.operator.apply import contains, merge_patch_for, with_last_applied
from smolserve.operator.reconcile import (
    Observed,
    Plan,
    SourceState,
    plan,
    read_spec,
    refused,
    split_owned,
)
from smolserve.spec import load_spec
from support.factories import PVC_MODEL, operator_config, smolserve

CONFIG = operator_config()
UID = "u-1"
NOW = "2026-11-25T12:00:00Z"
LATER = "2026-11-25T12:05:00Z"


def serve(uid: str = UID, **spec: Any) -> dict[str, Any]:
    return smolserve({"model": PVC_MODEL, **spec}, namespace="ns", uid=uid, generation=1)


def observed(body: dict[str, Any], children: list[dict[str, Any]], **kw: Any) -> Observed:
    """What the reconciler hands the planner: the spec loaded once, the children split."""
    owned, foreign = split_owned(children, body["metadata"]["uid"])
    return Observed(body, read_spec(body), owned, foreign, **kw)


def stored(obj: dict[str, Any], version: int, **status: Any) -> dict[str, Any]:
    """What the API server would hold after creating ``obj`` (plus defaults of its own)."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid=f"uid-{version}", resourceVersion=str(version), generation=1)
    live["metadata"]["creationTimestamp"] = f"2026-11-25T11:00:{version:02d}Z"
    if live["kind"] == "Service":
        live["spec"]["clusterIP"] = "10.0.0.1"  # a server default the operator must leave alone
    if status:
        live["status"] = status
    return live


def template_cm(body: dict[str, Any], text: str, version: int) -> dict[str, Any]:
    inputs = template_inputs_hash(load_spec(body), CONFIG)
    cm = build_template_configmap(
        serve="smol",
        namespace="ns",
        owner_uid=body["metadata"]["uid"],
        text=text,
        inputs_hash=inputs,
    )
    return stored(cm, version)


def converge(body: dict[str, Any], children: list[dict[str, Any]]) -> tuple[Plan, list[dict]]:
    """Plan once and apply the plan to the children, as the API server would."""
    first = plan(observed(body, children), CONFIG, NOW)
    live = list(children)
    for index, obj in enumerate(first.create):
        live.append(stored(obj, 50 + index))
    return first, live


def condition(result: Plan, type_: str) -> dict[str, Any]:
    assert result.status is not None
    return next(c for c in result.status["conditions"] if c["type"] == type_)


def test_without_a_template_a_job_is_created_and_no_deployment() -> None:
    result = plan(observed(serve(), []), CONFIG, NOW)
    kinds = [o["kind"] for o in result.create]
    assert kinds == [
        *["ServiceAccount"] * 2, *["Role"] * 2, *["RoleBinding"] * 2,  # template Job's, agent's
        "Job", *["ConfigMap"] * 3, "Service",  # agent config and status, parser plugin
    ]  # fmt: skip
    assert condition(result, st.TEMPLATE_READY)["reason"] == st.TEMPLATE_JOB_RUNNING
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
    again = plan(observed(body, live), CONFIG, LATER)
    assert again.writes == 0 and again.events == []


def test_a_changed_spec_patches_only_what_changed() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    body["spec"]["replicas"] = 3
    result = plan(observed(body, live), CONFIG, LATER)
    patches = {ref.kind: patch for ref, patch in result.patch}
    assert set(patches) == {"Deployment"} and patches["Deployment"]["spec"] == {"replicas": 3}
    assert result.create == [] and result.delete == []


def test_a_failed_job_degrades_and_leaves_the_deployment_alone() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    body["spec"]["template"] = {"variant": "seed"}
    started = plan(observed(body, live), CONFIG, NOW).create  # the Job and its RBAC
    assert [o["kind"] for o in started] == ["ServiceAccount", "Role", "RoleBinding", "Job"]
    job = started[-1]
    failed = stored(job, 90)
    failed["status"] = {
        "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    }
    messages = {job["metadata"]["name"]: "template failed verification: tool-calls 0/20 FAIL"}
    rbac = [stored(o, 80 + i) for i, o in enumerate(started[:-1])]
    result = plan(observed(body, [*live, *rbac, failed], job_messages=messages), CONFIG, LATER)
    assert result.create == [] and result.patch == []
    degraded = condition(result, st.DEGRADED)
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
    result = plan(observed(body, [*live, newest]), CONFIG, LATER)
    assert [ref.name for ref in result.delete] == [old[0]["metadata"]["name"]]


def test_a_bad_spec_is_degraded_without_children() -> None:
    result = plan(observed(serve(replicas="many"), []), CONFIG, NOW)
    assert result.create == [] and result.patch == []
    assert result.status["phase"] == st.DEGRADED_PHASE
    assert condition(result, st.DEGRADED)["reason"] == st.INVALID_SPEC
    assert [e.type for e in result.events if e.reason == st.INVALID_SPEC] == ["Warning", "Warning"]


def test_a_refused_write_is_degraded_and_not_retried() -> None:
    body = serve()
    error = "HTTP 403: roles.rbac.authorization.k8s.io is forbidden"
    result = refused(plan(observed(body, []), CONFIG, NOW), error, body, NOW)
    assert result.create == result.patch == result.delete == []
    degraded = condition(result, st.DEGRADED)
    assert (degraded["status"], degraded["reason"], degraded["message"]) == (
        "True",
        st.APPLY_FAILED,
        error,
    )
    # The rest of the status is what the plan found: the template Job is still to run.
    assert condition(result, st.TEMPLATE_READY)["reason"] == st.TEMPLATE_JOB_RUNNING


def _predecessors(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same children, owned by a deleted SmolServe of the same name (another uid)."""
    old = copy.deepcopy(children)
    for obj in old:
        for ref in obj["metadata"].get("ownerReferences") or []:
            ref["uid"] = "u-old"
    return old


def test_a_predecessors_children_are_never_touched_and_their_names_wait() -> None:
    previous = serve(uid="u-old")
    _, old_live = converge(previous, [template_cm(previous, "T1", 1)])
    body = serve()  # re-created under the same name: a new uid
    result = plan(observed(body, _predecessors(old_live)), CONFIG, NOW)
    # Nothing of the predecessor is patched or deleted, and no desired name it holds is created.
    assert result.patch == [] and result.delete == []
    created = {(o["kind"], o["metadata"]["name"]) for o in result.create}
    held = {(o["kind"], o["metadata"]["name"]) for o in old_live}
    assert not created & held
    # Its template ConfigMap is not this SmolServe's: no Deployment is built from it.
    assert "Deployment" not in {kind for kind, _ in created}
    waiting = condition(result, st.PROGRESSING)
    assert (waiting["status"], waiting["reason"]) == ("True", st.WAITING_FOR_PREDECESSOR)
    assert "Service ns/smol" in waiting["message"]
    assert condition(result, st.DEGRADED)["status"] == "False"


def test_once_the_predecessor_is_collected_the_new_smolserve_gets_its_own_children() -> None:
    body = serve()
    result = plan(observed(body, []), CONFIG, NOW)
    job = next(o for o in result.create if o["kind"] == "Job")
    assert job["metadata"]["ownerReferences"][0]["uid"] == UID
    assert condition(result, st.PROGRESSING)["reason"] == st.TEMPLATE_JOB_RUNNING


def test_a_labelled_object_nobody_handed_over_is_a_name_conflict() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    stranger = copy.deepcopy(next(o for o in live if o["kind"] == "Service"))
    stranger["metadata"]["ownerReferences"] = []
    children = [o for o in live if o["kind"] != "Service"] + [stranger]
    body["status"] = first.status
    result = plan(observed(body, children), CONFIG, LATER)
    assert not any(ref.kind == "Service" for ref, _ in result.patch)
    assert not any(o["kind"] == "Service" for o in result.create)
    degraded = condition(result, st.DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", st.NAME_CONFLICT)
    assert "Service ns/smol" in degraded["message"]


def test_a_deployment_whose_template_configmap_is_gone_is_degraded() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    without = [o for o in live if o["metadata"]["name"] != first.status["templateConfigMap"]]
    result = plan(observed(body, without), CONFIG, LATER)
    degraded = condition(result, st.DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", st.TEMPLATE_CONFIGMAP_MISSING)
    assert first.status["templateConfigMap"] in degraded["message"]
    assert not any(ref.kind == "Deployment" for ref, _ in result.patch)  # rolls nothing
    # publishes it again (the Job, with its RBAC while it runs)
    assert [o["kind"] for o in result.create] == ["ServiceAccount", "Role", "RoleBinding", "Job"]


def test_a_succeeded_job_whose_configmap_vanished_runs_again() -> None:
    body = serve()
    job = next(o for o in plan(observed(body, []), CONFIG, NOW).create if o["kind"] == "Job")
    done = {
        "conditions": [{"type": "Complete", "status": "True"}],
        "completionTime": "2026-11-25T11:59:50Z",
    }
    live = [stored(job, 40, **done)]
    soon = plan(observed(body, live), CONFIG, NOW)  # 10 s: the ConfigMap may just be late
    assert soon.delete == [] and "waiting for its ConfigMap" in soon.findings.template.message
    later = plan(observed(body, live), CONFIG, LATER)
    assert [(r.kind, r.name) for r in later.delete] == [("Job", job["metadata"]["name"])]


def test_a_parser_configmap_no_longer_wanted_goes_once_nothing_mounts_it() -> None:
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    old_plugin = stored(
        build_parser_configmap(load_spec(body), operator_config(parser_plugin="# old")), 70
    )
    result = plan(observed(body, [*live, old_plugin]), CONFIG, LATER)
    assert [r.name for r in result.delete] == [old_plugin["metadata"]["name"]]
    # While the live Deployment still mounts it (a rollout pending), it stays.
    deployment = next(o for o in live if o["kind"] == "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    mounting = next(v for v in volumes if v["name"] == "parsers")
    mounting["configMap"]["name"] = old_plugin["metadata"]["name"]
    body["spec"]["template"] = {"variant": "seed"}  # a new template is pending: no roll yet
    pending = plan(observed(body, [*live, old_plugin]), CONFIG, LATER)
    assert old_plugin["metadata"]["name"] not in [r.name for r in pending.delete]


def test_a_missing_configmap_source_is_degraded_with_the_reason() -> None:
    body = serve(template={"source": "configMap", "configMapRef": {"name": "mine"}})
    problem = "ConfigMap 'mine' is not labelled app.kubernetes.io/part-of=smolserve"
    result = plan(observed(body, [], source=SourceState(None, problem)), CONFIG, NOW)
    assert "Job" not in [o["kind"] for o in result.create]
    degraded = condition(result, st.DEGRADED)
    assert (degraded["reason"], degraded["message"]) == (st.SOURCE_CONFIGMAP_MISSING, problem)
    # With the text known, its hash is an input: an edit is a new Job.
    one = plan(observed(body, [], source=SourceState("a" * 64)), CONFIG, NOW)
    two = plan(observed(body, [], source=SourceState("b" * 64)), CONFIG, NOW)
    jobs = [next(o for o in p.create if o["kind"] == "Job") for p in (one, two)]
    assert jobs[0]["metadata"]["name"] != jobs[1]["metadata"]["name"]


def _reported(deployment: dict[str, Any], generation: int, ready: int) -> dict[str, Any]:
    """The live Deployment at ``generation`` as its controller reports it."""
    live = copy.deepcopy(deployment)
    live["metadata"]["generation"] = generation
    replicas = live["spec"]["replicas"]
    live["status"] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    return live


def test_a_new_smolserve_coming_up_well_posts_no_event() -> None:
    """Bring-up: every transition of the first rollout resolves by itself; nothing is posted."""
    body = serve()
    first, live = converge(body, [template_cm(body, "T1", 1)])
    assert first.events == []  # a kept template, first sight
    body["status"] = first.status
    deployment = next(o for o in live if o["kind"] == "Deployment")
    live = [o for o in live if o is not deployment] + [_reported(deployment, 1, 1)]
    up = plan(observed(body, live), CONFIG, LATER)
    assert up.status["phase"] == st.READY and up.events == []


def test_a_change_rolled_out_and_lost_availability_are_events() -> None:
    body = serve()
    _, live = converge(body, [template_cm(body, "T1", 1)])
    deployment = next(o for o in live if o["kind"] == "Deployment")
    others = [o for o in live if o is not deployment]
    body["status"] = plan(
        observed(body, [*others, _reported(deployment, 1, 1)]), CONFIG, NOW
    ).status
    rolling = {**_reported(deployment, 2, 1)}
    rolling["status"] = {**rolling["status"], "observedGeneration": 1}
    body["status"] = plan(observed(body, [*others, rolling]), CONFIG, NOW).status
    assert condition_of(body, st.PROGRESSING)["status"] == "True"
    done = plan(observed(body, [*others, _reported(deployment, 2, 1)]), CONFIG, LATER)
    assert [(e.type, e.reason) for e in done.events] == [("Normal", st.ROLLOUT_COMPLETE)]
    body["status"] = done.status
    lost = plan(observed(body, [*others, _reported(deployment, 2, 0)]), CONFIG, LATER)
    assert ("Warning", st.DEPLOYMENT_UNAVAILABLE) in [(e.type, e.reason) for e in lost.events]


def test_zero_replicas_are_available_at_once() -> None:
    body = serve(replicas=0)
    first, _ = converge(body, [template_cm(body, "T1", 1)])
    assert condition(first, st.AVAILABLE)["status"] == "True"


def condition_of(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == type_)


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
