"""The emulated controllers (Deployment, ReplicaSet, Job, the kubelet), checked over real HTTP."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import EmulatedCluster
from support.controllers import (
    HASH_LABEL,
    JOB_TRACKING,
    fenceposts,
    pod_template_hash,
    scaled_value,
)
from support.kubelet import Kubelet
from support.objects import find_condition, is_active, is_ready
from support.rawapi import JSON_PATCH, MERGE, Api
from support.running import wait_for

NS = "ns"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
REPLICASETS = f"/apis/apps/v1/namespaces/{NS}/replicasets"
PODS = f"/api/v1/namespaces/{NS}/pods"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path / "kubeconfig") as cluster:
        yield cluster


@pytest.fixture()
def api(cluster: EmulatedCluster) -> Api:
    return Api(cluster.url)


@pytest.fixture()
def kubelet(cluster: EmulatedCluster, tmp_path: Path) -> Kubelet:
    return Kubelet(cluster, {}, tmp_path)


def deployment(name: str = "web", replicas: int = 1, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "annotations": {"team": "x"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "tier": "web"}, "annotations": {"a": "1"}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
            },
            **spec,
        },
    }


def new_image(api: Api, image: str, name: str = "web") -> None:
    containers = [{"name": "c", "image": image}]
    body = {"spec": {"template": {"spec": {"containers": containers}}}}
    assert api("PATCH", f"{DEPLOYMENTS}/{name}", body, MERGE)[0] == 200


def status(api: Api, name: str = "web") -> dict[str, Any]:
    return api.get(f"{DEPLOYMENTS}/{name}").get("status") or {}


def reasons(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def complete(api: Api, replicas: int, name: str = "web") -> bool:
    st = status(api, name)
    return (
        reasons(st).get("Progressing") == ("True", "NewReplicaSetAvailable")
        and st.get("updatedReplicas", 0) == replicas
        and st.get("availableReplicas", 0) == replicas
        and st.get("replicas", 0) == replicas
    )


# --- pure arithmetic ---------------------------------------------------------------------------


def test_int_or_percent_rounds_surge_up_and_unavailable_down() -> None:
    assert scaled_value("25%", 3, True) == 1 and scaled_value("25%", 3, False) == 0
    assert scaled_value("50%", 5, True) == 3 and scaled_value("50%", 5, False) == 2
    assert scaled_value(2, 10, False) == 2
    with pytest.raises(ValueError, match="not a percentage"):
        scaled_value("3", 10, True)
    d = deployment(replicas=3)
    assert fenceposts(d) == (1, 0)  # the API's defaults, 25 % / 25 %
    zero = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "10%", "maxUnavailable": "10%"}}
    assert fenceposts(deployment(replicas=3, strategy=zero)) == (1, 0)
    none = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}
    assert fenceposts(deployment(replicas=3, strategy=none)) == (0, 1)  # never both 0


def test_pod_template_hash_is_stable_and_safe() -> None:
    template = deployment()["spec"]["template"]
    first = pod_template_hash(template)
    assert first == pod_template_hash(copy.deepcopy(template))
    assert 1 <= len(first) <= 10 and set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert pod_template_hash(template, 1) != first


# --- Deployment and ReplicaSet -----------------------------------------------------------------


def test_a_deployment_gets_a_replicaset_pods_and_status_in_steps(
    api: Api, kubelet: Kubelet
) -> None:
    code, created = api("POST", DEPLOYMENTS, deployment(replicas=2))
    assert code == 201
    since = created["metadata"]["resourceVersion"]
    kubelet.settle()
    (rs,) = kubelet.replicasets(NS, "web")
    meta = rs["metadata"]
    template_hash = meta["labels"][HASH_LABEL]
    assert meta["name"] == f"web-{template_hash}"
    assert meta["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["annotations"] == {
        "team": "x",  # the Deployment's own annotations are copied
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "2",
        "deployment.kubernetes.io/max-replicas": "3",  # 2 + 25 % rounded up
    }
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: template_hash}
    pods = kubelet.pods(NS, "Deployment", "web")
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"{meta['name']}-")
        assert pod["metadata"]["labels"] == {"app": "web", "tier": "web", HASH_LABEL: template_hash}
        assert pod["metadata"]["annotations"] == {"a": "1"}
        assert pod["metadata"]["ownerReferences"][0]["name"] == meta["name"]
        assert pod["status"]["phase"] == "Running" and not is_ready(pod)
    live = api.get(f"{DEPLOYMENTS}/web")
    assert live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert live["metadata"]["generation"] == 1  # the controller's writes are not spec changes
    st = live["status"]
    assert (st["observedGeneration"], st["replicas"], st["updatedReplicas"]) == (1, 2, 2)
    assert st["unavailableReplicas"] == 2 and "readyReplicas" not in st
    assert reasons(st) == {
        "Available": ("False", "MinimumReplicasUnavailable"),
        "Progressing": ("True", "ReplicaSetUpdated"),
    }

    kubelet.deployment_ready(NS, "web")
    st = status(api)
    assert (st["readyReplicas"], st["availableReplicas"]) == (2, 2)
    assert "unavailableReplicas" not in st
    assert reasons(st) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    progressing = find_condition(st, "Progressing")
    assert progressing["message"] == f'ReplicaSet "{meta["name"]}" has successfully progressed.'

    # The watch shows each step as its own change: first the ReplicaSet and the revision,
    # then the observed generation, the counts, and readiness.
    events = api.lines(f"{DEPLOYMENTS}?watch=true&resourceVersion={since}&timeoutSeconds=1")
    steps = [reasons(e["object"].get("status") or {}).get("Progressing") for e in events]
    assert steps[0] == ("True", "NewReplicaSetCreated")
    assert "observedGeneration" not in (events[0]["object"].get("status") or {})
    assert steps[-1] == ("True", "NewReplicaSetAvailable") and len(events) >= 4


def test_a_rolling_update_keeps_within_max_surge_and_max_unavailable(
    cluster: EmulatedCluster, api: Api, kubelet: Kubelet
) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    api("POST", DEPLOYMENTS, deployment(replicas=4, strategy=strategy))
    kubelet.deployment_ready(NS, "web")
    seen: dict[str, int] = {"most_pods": 0, "fewest_ready": 4}

    def check(group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
        pods = [p for p in cluster.emulator.objects("pods") if is_active(p)]
        seen["most_pods"] = max(seen["most_pods"], len(pods))
        seen["fewest_ready"] = min(seen["fewest_ready"], sum(is_ready(p) for p in pods))

    cluster.call(lambda emulator: emulator.listeners.append(check))
    new_image(api, "img:2")
    while not complete(api, 4):
        kubelet.settle()
        pending = [
            p for p in kubelet.pods(NS, "Deployment", "web") if is_active(p) and not is_ready(p)
        ]
        if pending:  # one new pod at a time becomes ready
            kubelet.set_ready(NS, pending[0]["metadata"]["name"])
    cluster.call(lambda emulator: emulator.listeners.remove(check))
    assert seen == {"most_pods": 5, "fewest_ready": 3}
    old, new = kubelet.replicasets(NS, "web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 4)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert kubelet.pods(NS, "ReplicaSet", old["metadata"]["name"]) == []
    assert len(kubelet.pods(NS, "ReplicaSet", new["metadata"]["name"])) == 4
    assert all(
        p["spec"]["containers"][0]["image"] == "img:2"
        for p in kubelet.pods(NS, "Deployment", "web")
    )


def test_percentages_are_resolved_against_the_replicas(api: Api, kubelet: Kubelet) -> None:
    # 3 replicas, 25 %/25 %: one pod more at most, none less.
    api("POST", DEPLOYMENTS, deployment(replicas=3))
    kubelet.deployment_ready(NS, "web")
    new_image(api, "img:2")
    kubelet.settle()
    old, new = kubelet.replicasets(NS, "web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 1)
    # 4 replicas, no surge, 50 % unavailable: two old pods go at once, two new ones come.
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}}
    api("POST", DEPLOYMENTS, deployment("half", replicas=4, strategy=strategy))
    kubelet.deployment_ready(NS, "half")
    new_image(api, "img:2", "half")
    kubelet.settle()
    old, new = kubelet.replicasets(NS, "half")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (2, 2)
    assert reasons(status(api, "half"))["Available"] == ("True", "MinimumReplicasAvailable")


def test_recreate_removes_every_old_pod_before_the_new_ones(api: Api, kubelet: Kubelet) -> None:
    api("POST", DEPLOYMENTS, deployment(replicas=2, strategy={"type": "Recreate"}))
    kubelet.deployment_ready(NS, "web")
    old_pods = {p["metadata"]["name"] for p in kubelet.pods(NS, "Deployment", "web")}
    _, before = api("GET", PODS)
    since = before["metadata"]["resourceVersion"]
    new_image(api, "img:2")
    kubelet.deployment_ready(NS, "web")
    events = api.lines(f"{PODS}?watch=true&resourceVersion={since}&timeoutSeconds=1")
    order = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    deleted = [i for i, (kind, name) in enumerate(order) if kind == "DELETED" and name in old_pods]
    added = [i for i, (kind, name) in enumerate(order) if kind == "ADDED"]
    assert len(deleted) == 2 and len(added) == 2 and max(deleted) < min(added)
    old, new = kubelet.replicasets(NS, "web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 2)
    assert reasons(status(api))["Available"] == ("True", "MinimumReplicasAvailable")


def test_scaling_keeps_the_replicaset(api: Api, kubelet: Kubelet) -> None:
    api("POST", DEPLOYMENTS, deployment(replicas=1))
    kubelet.deployment_ready(NS, "web")
    (before,) = kubelet.replicasets(NS, "web")
    api("PATCH", f"{DEPLOYMENTS}/web", {"spec": {"replicas": 3}}, MERGE)
    kubelet.deployment_ready(NS, "web")
    (after,) = kubelet.replicasets(NS, "web")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"]["replicas"] == 3
    annotations = after["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert annotations["deployment.kubernetes.io/revision"] == "1"
    assert len(kubelet.pods(NS, "Deployment", "web")) == 3
    api("PATCH", f"{DEPLOYMENTS}/web", {"spec": {"replicas": 0}}, MERGE)
    wait_for(lambda: not kubelet.pods(NS, "Deployment", "web"), what="scaled to 0")
    wait_for(lambda: complete(api, 0), what="complete at 0")


def test_an_old_template_brings_back_its_replicaset_and_history_is_pruned(
    api: Api, kubelet: Kubelet
) -> None:
    api("POST", DEPLOYMENTS, deployment(replicas=0, revisionHistoryLimit=1))
    kubelet.settle()
    (first,) = kubelet.replicasets(NS, "web")
    new_image(api, "img:2")
    kubelet.settle()
    new_image(api, "img:1")  # back to the first template: its ReplicaSet, with a new revision
    kubelet.settle()
    names = [rs["metadata"]["name"] for rs in kubelet.replicasets(NS, "web")]
    assert names[-1] == first["metadata"]["name"] and len(names) == 2
    back = kubelet.replicasets(NS, "web")[-1]["metadata"]["annotations"]
    assert back["deployment.kubernetes.io/revision"] == "3"
    assert back["deployment.kubernetes.io/revision-history"] == "1"
    revision = api.get(f"{DEPLOYMENTS}/web")["metadata"]["annotations"]
    assert revision["deployment.kubernetes.io/revision"] == "3"
    new_image(api, "img:3")
    new_image(api, "img:4")
    kubelet.settle()
    kept = kubelet.replicasets(NS, "web")
    assert len(kept) == 2  # the current one and revisionHistoryLimit=1 old one
    assert kept[-1]["spec"]["template"]["spec"]["containers"][0]["image"] == "img:4"


def test_the_progress_deadline_passes_on_the_clock(
    cluster: EmulatedCluster, api: Api, kubelet: Kubelet
) -> None:
    api("POST", DEPLOYMENTS, deployment(replicas=1, progressDeadlineSeconds=60))
    kubelet.settle()
    cluster.advance(30)
    kubelet.settle()
    assert reasons(status(api))["Progressing"] == ("True", "ReplicaSetUpdated")
    cluster.advance(31)
    wait_for(
        lambda: reasons(status(api))["Progressing"] == ("False", "ProgressDeadlineExceeded"),
        what="ProgressDeadlineExceeded",
    )
    (rs,) = kubelet.replicasets(NS, "web")
    message = find_condition(status(api), "Progressing")["message"]
    assert message == f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.'
    kubelet.deployment_ready(NS, "web")
    assert reasons(status(api))["Progressing"] == ("True", "NewReplicaSetAvailable")


def test_availability_follows_the_pods(api: Api, kubelet: Kubelet) -> None:
    api("POST", DEPLOYMENTS, deployment(replicas=2))  # 25 % of 2: none may be unavailable
    kubelet.deployment_ready(NS, "web")
    first, second = kubelet.pods(NS, "Deployment", "web")
    kubelet.set_ready(NS, first["metadata"]["name"], False)
    wait_for(lambda: status(api).get("unavailableReplicas") == 1, what="one unavailable")
    assert reasons(status(api))["Available"] == ("False", "MinimumReplicasUnavailable")
    kubelet.exit_container(NS, second["metadata"]["name"], 137, "OOMKilled")
    pod = api.get(f"{PODS}/{second['metadata']['name']}")
    (container,) = pod["status"]["containerStatuses"]
    assert container["restartCount"] == 1 and container["ready"] is False
    assert container["lastState"]["terminated"]["exitCode"] == 137
    assert container["lastState"]["terminated"]["message"] == "OOMKilled"
    assert pod["status"]["phase"] == "Running"
    wait_for(lambda: "readyReplicas" not in status(api), what="no pod ready")
    api("DELETE", f"{PODS}/{first['metadata']['name']}")  # the ReplicaSet replaces it
    kubelet.settle()
    names = {p["metadata"]["name"] for p in kubelet.pods(NS, "Deployment", "web")}
    assert len(names) == 2 and first["metadata"]["name"] not in names
    kubelet.deployment_ready(NS, "web")
    assert reasons(status(api))["Available"] == ("True", "MinimumReplicasAvailable")


def test_readiness_gates_hold_a_ready_container_back(api: Api, kubelet: Kubelet) -> None:
    gate = "smolserve.dev/smoke-tested"
    body = deployment(replicas=1)
    body["spec"]["template"]["spec"]["readinessGates"] = [{"conditionType": gate}]
    api("POST", DEPLOYMENTS, body)
    (pod,) = kubelet.wait_running(NS, "Deployment", "web")
    name = pod["metadata"]["name"]
    kubelet.set_ready(NS, name)

    def ready_condition() -> dict[str, Any]:
        return find_condition(api.get(f"{PODS}/{name}")["status"], "Ready")

    conditions = api.get(f"{PODS}/{name}")["status"]["conditions"]
    assert find_condition({"conditions": conditions}, "ContainersReady")["status"] == "True"
    assert ready_condition()["reason"] == "ReadinessGatesNotReady"
    assert ready_condition()["message"] == (
        f"corresponding condition of pod readiness gate '{gate}' does not exist."
    )
    ops = [
        {"op": "add", "path": "/status/conditions/-", "value": {"type": gate, "status": "False"}}
    ]
    assert api("PATCH", f"{PODS}/{name}/status", ops, JSON_PATCH)[0] == 200
    wait_for(lambda: "but False" in ready_condition().get("message", ""), what="gate False")
    assert ready_condition()["message"] == (
        f'the status of pod readiness gate "{gate}" is not "True", but False'
    )
    live = api.get(f"{PODS}/{name}")["status"]["conditions"]
    index = next(i for i, c in enumerate(live) if c["type"] == gate)
    ops = [{"op": "replace", "path": f"/status/conditions/{index}/status", "value": "True"}]
    assert api("PATCH", f"{PODS}/{name}/status", ops, JSON_PATCH)[0] == 200
    wait_for(lambda: ready_condition()["status"] == "True", what="Ready")
    wait_for(lambda: status(api).get("readyReplicas") == 1, what="the Deployment sees it")
    live = api.get(f"{PODS}/{name}")["status"]["conditions"]
    assert find_condition({"conditions": live}, gate)["status"] == "True"  # others' kept


def test_auto_readiness_makes_a_deployment_available_by_itself(tmp_path: Path) -> None:
    with EmulatedCluster(tmp_path / "kubeconfig", readiness="auto", ready_delay=0.1) as cluster:
        api = Api(cluster.url)
        _, created = api("POST", DEPLOYMENTS, deployment(replicas=2))
        wait_for(lambda: complete(api, 2), what="available without help")
        since = created["metadata"]["resourceVersion"]
        events = api.lines(f"{PODS}?watch=true&resourceVersion={since}&timeoutSeconds=1")
        first = events[0]["object"]["metadata"]["name"]
        phases = [
            ((e["object"].get("status") or {}).get("phase"), is_ready(e["object"]))
            for e in events
            if e["object"]["metadata"]["name"] == first
        ]
        assert phases == [(None, False), ("Pending", False), ("Running", False), ("Running", True)]


def test_a_readiness_policy_can_decide_per_pod(api: Api, kubelet: Kubelet) -> None:
    def policy(pod: dict[str, Any]) -> float | None:
        """The new image's pods wait for the test; the others are ready at once."""
        return None if pod["spec"]["containers"][0]["image"] == "img:2" else 0.0

    kubelet.set_readiness(policy)
    api("POST", DEPLOYMENTS, deployment(replicas=1))
    wait_for(lambda: complete(api, 1), what="ready by itself")
    new_image(api, "img:2")
    kubelet.settle()
    old, new = kubelet.replicasets(NS, "web")
    (held,) = kubelet.pods(NS, "ReplicaSet", new["metadata"]["name"])
    assert held["status"]["phase"] == "Running" and not is_ready(held)
    assert old["spec"]["replicas"] == 1  # the rollout waits for it
    kubelet.set_ready(NS, held["metadata"]["name"])
    wait_for(lambda: complete(api, 1), what="rolled out")


# --- Job ---------------------------------------------------------------------------------------


def job(name: str = "work", **spec: Any) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"role": "worker"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "img"}]},
    }
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


def job_conditions(api: Api, name: str = "work") -> list[tuple[str, str]]:
    status = api.get(f"{JOBS}/{name}").get("status") or {}
    return [(c["type"], c["reason"]) for c in status.get("conditions") or []]


def test_a_job_runs_one_pod_and_completes_in_steps(api: Api, kubelet: Kubelet) -> None:
    _, created = api("POST", JOBS, job(backoffLimit=0))
    uid = created["metadata"]["uid"]
    (pod,) = kubelet.wait_running(NS, "Job", "work")
    meta = pod["metadata"]
    assert meta["name"].startswith("work-") and len(meta["name"]) == len("work-") + 5
    assert meta["labels"] == {
        "role": "worker",
        "job-name": "work",
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": "work",
        "batch.kubernetes.io/controller-uid": uid,
    }
    assert meta["finalizers"] == [JOB_TRACKING]
    assert meta["ownerReferences"][0]["uid"] == uid
    st = api.get(f"{JOBS}/work")["status"]
    assert st["startTime"] and st["active"] == 1 and st["ready"] == 0 and "conditions" not in st
    kubelet.exit_container(NS, meta["name"], 0, "done")
    wait_for(lambda: ("Complete", "CompletionsReached") in job_conditions(api), what="Complete")
    assert job_conditions(api) == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    st = api.get(f"{JOBS}/work")["status"]
    assert st["succeeded"] == 1 and "active" not in st and st["completionTime"]
    finished = api.get(f"{PODS}/{meta['name']}")
    assert finished["status"]["phase"] == "Succeeded" and "finalizers" not in finished["metadata"]
    terminated = finished["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (0, "done")
    events = api.lines(f"{JOBS}?watch=true&resourceVersion=1&timeoutSeconds=1")
    kinds = [
        [c["type"] for c in (e["object"].get("status") or {}).get("conditions") or []]
        for e in events
    ]
    assert ["SuccessCriteriaMet"] in kinds  # the interim condition was a step of its own


def test_a_failing_job_retries_within_its_backoff_limit(api: Api, kubelet: Kubelet) -> None:
    api("POST", JOBS, job(backoffLimit=1))
    names = []
    for _ in range(2):
        (pod,) = [
            p for p in kubelet.wait_running(NS, "Job", "work") if p["metadata"]["name"] not in names
        ]
        names.append(pod["metadata"]["name"])
        kubelet.exit_container(NS, names[-1], 3, "it broke")
    wait_for(lambda: ("Failed", "BackoffLimitExceeded") in job_conditions(api), what="Failed")
    assert job_conditions(api) == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    st = api.get(f"{JOBS}/work")["status"]
    assert st["failed"] == 2 and "completionTime" not in st
    pods = kubelet.pods(NS, "Job", "work")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    message = pods[-1]["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert message == "it broke"


def test_the_active_deadline_passes_on_the_clock(
    cluster: EmulatedCluster, api: Api, kubelet: Kubelet
) -> None:
    api("POST", JOBS, job(activeDeadlineSeconds=100))
    (pod,) = kubelet.wait_running(NS, "Job", "work")
    cluster.advance(101)
    wait_for(lambda: ("Failed", "DeadlineExceeded") in job_conditions(api), what="Failed")
    assert job_conditions(api)[0] == ("FailureTarget", "DeadlineExceeded")
    assert api("GET", f"{PODS}/{pod['metadata']['name']}")[0] == 404  # killed and removed
    assert api.get(f"{JOBS}/work")["status"]["failed"] == 1


def test_deleting_a_job_orphans_its_pods_unless_told_otherwise(api: Api, kubelet: Kubelet) -> None:
    for name in ("kept", "gone"):
        api("POST", JOBS, job(name))
        kubelet.wait_running(NS, "Job", name)
    (kept,) = kubelet.pods(NS, "Job", "kept")
    assert api("DELETE", f"{JOBS}/kept")[0] == 200  # batch/v1's default: orphan the pods
    wait_for(lambda: api("GET", f"{JOBS}/kept")[0] == 404, what="the Job gone")
    path = f"{PODS}/{kept['metadata']['name']}"
    wait_for(lambda: "finalizers" not in api.get(path)["metadata"], what="the finalizer gone")
    assert "ownerReferences" not in api.get(path)["metadata"]
    assert api.get(path)["status"]["phase"] == "Running"  # an orphan, still running
    (gone,) = kubelet.pods(NS, "Job", "gone")
    api("DELETE", f"{JOBS}/gone", {"propagationPolicy": "Background"})
    wait_for(lambda: api("GET", f"{PODS}/{gone['metadata']['name']}")[0] == 404, what="pod gone")


def test_the_test_kubelet_runs_a_job_through_its_pods(
    cluster: EmulatedCluster, api: Api, tmp_path: Path
) -> None:
    """``Kubelet.run_job`` runs every attempt's container in-process and reports each one
    through that attempt's pod (here a command that fails for want of a kubeconfig)."""
    body = job(backoffLimit=1)
    args = ["job", "publish-template", "--serve", "s", "--inputs-hash", "h", "--tokenizer", "t"]
    container = {
        "name": "main",
        "image": "img",
        "command": ["smolserve"],
        "args": args,
        "env": [{"name": "KUBECONFIG", "value": str(tmp_path / "missing")}],
    }
    body["spec"]["template"]["spec"]["containers"] = [container]
    _, created = api("POST", JOBS, body)
    code, message = Kubelet(cluster, {}, tmp_path).run_job(created)
    assert code != 0 and message.startswith("no Kubernetes configuration")
    assert job_conditions(api)[-1] == ("Failed", "BackoffLimitExceeded")
    assert api.get(f"{JOBS}/work")["status"]["failed"] == 2  # both attempts ran
    pods = api.get(f"{PODS}?labelSelector=job-name%3Dwork")["items"]
    messages = {p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] for p in pods}
    assert messages == {message} and len(pods) == 2


def test_orphans_are_adopted_and_one_that_stops_matching_is_released(
    api: Api, kubelet: Kubelet
) -> None:
    """The controllers find what they may adopt (no controller) and what they own (theirs)
    through the emulator's owner index: both must follow every change of ownership."""
    web = deployment(replicas=1)
    stray = {
        "metadata": {"name": "stray", "labels": {"app": "web", "tier": "web"}},
        "spec": copy.deepcopy(web["spec"]["template"]["spec"]),
    }
    assert api("POST", PODS, stray)[0] == 201
    orphan = {
        "metadata": {"name": "web-orphan", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": copy.deepcopy(web["spec"]["template"]),
        },
    }
    assert api("POST", REPLICASETS, orphan)[0] == 201
    code, created = api("POST", DEPLOYMENTS, web)
    assert code == 201
    kubelet.settle()
    (adopted,) = kubelet.replicasets(NS, "web")
    assert adopted["metadata"]["name"] == "web-orphan"
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert adopted["spec"]["replicas"] == 1
    pods = kubelet.pods(NS, "ReplicaSet", "web-orphan")
    assert [p["metadata"]["name"] for p in pods] == ["stray"]  # adopted: no second pod

    relabelled = {"metadata": {"labels": {"app": "other"}}}
    assert api("PATCH", f"{REPLICASETS}/web-orphan", relabelled, MERGE)[0] == 200
    kubelet.settle()
    assert not api.get(f"{REPLICASETS}/web-orphan")["metadata"].get("ownerReferences")
    (replacement,) = kubelet.replicasets(NS, "web")
    assert replacement["metadata"]["name"] != "web-orphan"
    assert api.get(f"{PODS}/stray")["metadata"]["ownerReferences"][0]["name"] == "web-orphan"
