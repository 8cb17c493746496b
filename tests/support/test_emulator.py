"""The realism layer: the API rules the operator and kopf rely on, checked over real HTTP."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from support import EmulatedCluster
from support.emulator import _Collection
from support.rawapi import MERGE, Api

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    },
}
WIDGETS = "/apis/example.dev/v1/namespaces/ns/widgets"
CONFIGMAPS = "/api/v1/namespaces/ns/configmaps"


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path / "kubeconfig") as cluster:
        yield cluster


@pytest.fixture()
def api(cluster: EmulatedCluster) -> Api:
    api = Api(cluster.url)
    assert api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)[0] == 201
    return api


def widget(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"size": 1}}


def test_create_sets_identity_and_answers_201_then_409(api: Api) -> None:
    code, obj = api("POST", WIDGETS, widget("a"))
    assert code == 201
    meta = obj["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    assert (meta["generation"], meta["namespace"], obj["kind"]) == (1, "ns", "Widget")
    code, err = api("POST", WIDGETS, widget("a"))
    assert (code, err["reason"]) == (409, "AlreadyExists")
    code, obj = api("POST", WIDGETS, {"metadata": {"generateName": "w-"}})
    assert code == 201 and obj["metadata"]["name"].startswith("w-")


def test_official_client_reads_created_objects(cluster: EmulatedCluster, api: Api) -> None:
    client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    created = kubernetes.client.CustomObjectsApi(client).create_namespaced_custom_object(
        "example.dev", "v1", "ns", "widgets", widget("b")
    )
    assert created["metadata"]["name"] == "b"  # None when create answered 200
    core = kubernetes.client.CoreV1Api(client)
    core.create_namespaced_config_map("ns", {"metadata": {"name": "c", "labels": {"x": "1"}}})
    items = core.list_namespaced_config_map("ns", label_selector="x=1").items
    assert [i.metadata.name for i in items] == ["c"]


def test_generation_tracks_spec_and_status_subresource_is_separate(api: Api) -> None:
    api("POST", WIDGETS, widget("a"))
    merge = "application/merge-patch+json"
    _, obj = api("PATCH", f"{WIDGETS}/a", {"spec": {"size": 2}, "status": {"x": 1}}, merge)
    assert obj["metadata"]["generation"] == 2 and "status" not in obj
    _, obj = api("PATCH", f"{WIDGETS}/a/status", {"status": {"x": 1}, "spec": {"size": 9}}, merge)
    assert obj["metadata"]["generation"] == 2
    assert (obj["status"], obj["spec"]) == ({"x": 1}, {"size": 2})
    version = obj["metadata"]["resourceVersion"]
    _, same = api("PATCH", f"{WIDGETS}/a", {"spec": {"size": 2}}, merge)
    assert same["metadata"]["resourceVersion"] == version  # a no-op write is no change


def test_conflicts_and_failed_json_patch_tests(api: Api) -> None:
    _, obj = api("POST", WIDGETS, widget("a"))
    stale = obj["metadata"]["resourceVersion"]
    api("PATCH", f"{WIDGETS}/a", {"spec": {"size": 3}}, "application/merge-patch+json")
    body = {"metadata": {"resourceVersion": stale}, "spec": {"size": 4}}
    assert api("PATCH", f"{WIDGETS}/a", body, "application/merge-patch+json")[0] == 409
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
    ]
    assert api("PATCH", f"{WIDGETS}/a", ops, "application/json-patch+json")[0] == 422
    code, _ = api("PATCH", f"{WIDGETS}/a", {"spec": {}}, "application/strategic-merge-patch+json")
    assert code == 415
    assert (
        api(
            "PUT",
            f"{WIDGETS}/a",
            {**widget("a"), "metadata": {"name": "a", "resourceVersion": stale}},
        )[0]
        == 409
    )


def test_selectors_and_list_kind(api: Api) -> None:
    for name, tier in [("a", "x"), ("b", "y"), ("c", "x")]:
        api("POST", WIDGETS, widget(name, tier=tier))
    _, listed = api("GET", f"{WIDGETS}?labelSelector=tier%3Dx")
    assert listed["kind"] == "WidgetList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "c"]
    _, listed = api("GET", f"{WIDGETS}?labelSelector=tier%20in%20(y),tier")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    _, listed = api("GET", "/apis/example.dev/v1/widgets?fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]


def test_discovery_lists_crds_and_core_group_version(api: Api) -> None:
    _, resources = api("GET", "/apis/example.dev/v1")
    names = {r["name"] for r in resources["resources"]}
    assert names == {"widgets", "widgets/status"}
    _, groups = api("GET", "/apis")
    assert "example.dev" in {g["name"] for g in groups["groups"]}
    _, core = api("GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    assert (
        api(
            "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev"
        )[0]
        == 200
    )
    assert api("GET", WIDGETS)[0] == 404


def test_finalizers_hold_deletion_until_removed(api: Api) -> None:
    api("POST", WIDGETS, {**widget("a"), "metadata": {"name": "a", "finalizers": ["f"]}})
    _, obj = api("DELETE", f"{WIDGETS}/a")
    assert obj["metadata"]["deletionTimestamp"]
    assert api("GET", f"{WIDGETS}/a")[0] == 200
    api("PATCH", f"{WIDGETS}/a", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert api("GET", f"{WIDGETS}/a")[0] == 404


def test_owner_references_cascade(api: Api) -> None:
    _, owner = api("POST", WIDGETS, widget("owner"))
    ref = {
        "apiVersion": "example.dev/v1",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    _, child = api("POST", CONFIGMAPS, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    grand_ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "child",
        "uid": child["metadata"]["uid"],
    }
    api("POST", CONFIGMAPS, {"metadata": {"name": "grandchild", "ownerReferences": [grand_ref]}})
    api("POST", CONFIGMAPS, {"metadata": {"name": "unrelated"}})
    api("DELETE", f"{WIDGETS}/owner")
    _, listed = api("GET", CONFIGMAPS)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["unrelated"]


def test_objects_created_for_a_gone_owner_are_collected(api: Api) -> None:
    ref = {"apiVersion": "example.dev/v1", "kind": "Widget", "name": "gone", "uid": "no-such-uid"}
    code, _ = api("POST", CONFIGMAPS, {"metadata": {"name": "late", "ownerReferences": [ref]}})
    assert code == 201
    assert api("GET", f"{CONFIGMAPS}/late")[0] == 404


def test_quantities_come_back_as_strings(api: Api) -> None:
    container = {
        "name": "c",
        "image": "i",
        "resources": {"limits": {"nvidia.com/gpu": 1, "cpu": 0.5}},
    }
    body = {"metadata": {"name": "p"}, "spec": {"containers": [container]}}
    _, pod = api("POST", "/api/v1/namespaces/ns/pods", body)
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {
        "nvidia.com/gpu": "1",
        "cpu": "0.5",
    }


def test_immutable_configmaps_refuse_new_data(api: Api) -> None:
    api("POST", CONFIGMAPS, {"metadata": {"name": "t"}, "immutable": True, "data": {"k": "1"}})
    code, _ = api("PATCH", f"{CONFIGMAPS}/t", {"data": {"k": "2"}}, "application/merge-patch+json")
    assert code == 422
    code, _ = api(
        "PATCH",
        f"{CONFIGMAPS}/t",
        {"metadata": {"labels": {"a": "b"}}},
        "application/merge-patch+json",
    )
    assert code == 200


def test_watch_resumes_from_a_resource_version(api: Api) -> None:
    _, first = api("POST", WIDGETS, widget("a", tier="x"))
    api("POST", WIDGETS, widget("b", tier="y"))
    api("PATCH", f"{WIDGETS}/a", {"spec": {"size": 5}}, "application/merge-patch+json")
    since = first["metadata"]["resourceVersion"]
    events = api.lines(
        f"{WIDGETS}?watch=true&resourceVersion={since}&timeoutSeconds=1&labelSelector=tier%3Dx"
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "a")]
    events = api.lines(f"{WIDGETS}?watch=true&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]


def test_watch_answers_410_for_forgotten_versions(cluster: EmulatedCluster, api: Api) -> None:
    def forget(emulator: Any) -> None:
        emulator.stores["example.dev", "widgets"].forgotten_up_to = 10**6

    api("POST", WIDGETS, widget("a"))
    cluster.call(forget)
    events = api.lines(f"{WIDGETS}?watch=true&resourceVersion=1&timeoutSeconds=1")
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]


def test_unversioned_watches_can_be_refused(tmp_path: Path) -> None:
    """As some API servers do: a client must list first and watch from that resourceVersion."""
    with EmulatedCluster(tmp_path / "kc", refuse_unversioned_watches=True) as cluster:
        api = Api(cluster.url)
        api("POST", CONFIGMAPS, {"metadata": {"name": "a"}})
        (event,) = api.lines(f"{CONFIGMAPS}?watch=true&timeoutSeconds=1")
        assert (event["type"], event["object"]["kind"]) == ("ERROR", "Status")
        version = api("GET", CONFIGMAPS)[1]["metadata"]["resourceVersion"]
        api("POST", CONFIGMAPS, {"metadata": {"name": "b"}})
        events = api.lines(f"{CONFIGMAPS}?watch=true&resourceVersion={version}&timeoutSeconds=1")
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]


def test_a_crd_scale_subresource_reads_and_writes_only_the_replicas(
    cluster: EmulatedCluster,
) -> None:
    """What `kubectl scale` and autoscalers use: an autoscaling/v1 Scale over the CRD's paths."""
    api = Api(cluster.url)
    crd = copy.deepcopy(CRD)
    crd["metadata"]["name"] = "gadgets.example.dev"
    crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    crd["spec"]["versions"][0]["subresources"]["scale"] = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201
    gadgets = "/apis/example.dev/v1/namespaces/ns/gadgets"
    api("POST", gadgets, {"metadata": {"name": "g"}, "spec": {"replicas": 1, "size": 4}})
    api("PATCH", f"{gadgets}/g/status", {"status": {"replicas": 1, "selector": "a=b"}}, MERGE)
    scale = api.get(f"{gadgets}/g/scale")
    assert (scale["kind"], scale["spec"], scale["status"]) == (
        "Scale",
        {"replicas": 1},
        {"replicas": 1, "selector": "a=b"},
    )
    code, scale = api("PATCH", f"{gadgets}/g/scale", {"spec": {"replicas": 3}}, MERGE)
    assert code == 200 and scale["spec"] == {"replicas": 3}
    obj = api.get(f"{gadgets}/g")
    assert obj["spec"] == {"replicas": 3, "size": 4} and obj["status"]["replicas"] == 1
    assert obj["metadata"]["generation"] == 2
    assert api("PATCH", f"{gadgets}/g/scale", {"spec": {"replicas": -1}}, MERGE)[0] == 422
    assert api("GET", f"{WIDGETS}/none/scale")[0] == 404  # widgets have no scale subresource


def test_lists_stay_right_through_relabels_deletes_and_recreates(api: Api) -> None:
    """Lists read the namespace index: it must follow every write, keeping creation order
    (a re-created object comes last, an updated one keeps its place)."""
    other = "/apis/example.dev/v1/namespaces/other/widgets"
    for name, tier in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "x")]:
        assert api("POST", WIDGETS, widget(name, tier=tier))[0] == 201
    assert api("POST", other, widget("a", tier="x"))[0] == 201
    assert api("PATCH", f"{WIDGETS}/b", {"metadata": {"labels": {"tier": "x"}}}, MERGE)[0] == 200
    assert api("PATCH", f"{WIDGETS}/c", {"metadata": {"labels": {"tier": "y"}}}, MERGE)[0] == 200
    assert api("DELETE", f"{WIDGETS}/a")[0] == 200
    assert api("POST", WIDGETS, widget("a", tier="x"))[0] == 201

    def names(path: str) -> list[tuple[str, str]]:
        return [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in api.get(path)["items"]]

    assert names(WIDGETS) == [("ns", "b"), ("ns", "c"), ("ns", "d"), ("ns", "a")]
    assert names(f"{WIDGETS}?labelSelector=tier%3Dx") == [("ns", "b"), ("ns", "d"), ("ns", "a")]
    assert names(f"{other}?labelSelector=tier%3Dx") == [("other", "a")]
    everywhere = names("/apis/example.dev/v1/widgets?labelSelector=tier%3Dx")
    assert everywhere == [("ns", "b"), ("ns", "d"), ("other", "a"), ("ns", "a")]
    assert api("DELETE", f"{other}/a")[0] == 200
    assert names(other) == []


def test_the_owner_index_follows_changes_of_controller() -> None:
    def obj(name: str, controller: str | None, *others: str) -> dict[str, Any]:
        refs = [{"uid": uid, "name": uid} for uid in others]
        if controller is not None:
            refs.append({"uid": controller, "name": controller, "controller": True})
        return {"metadata": {"name": name, "namespace": "ns", "ownerReferences": refs}}

    coll = _Collection()
    coll.put("ns", "a", obj("a", "u1"))
    coll.put("ns", "b", obj("b", None, "u1"))  # owned by u1, but not controlled: an orphan
    coll.put("ns", "c", obj("c", "u1"))
    coll.put("other", "d", obj("d", "u1"))

    def names(namespace: str, *uids: str | None) -> list[str]:
        return [o["metadata"]["name"] for o in coll.controlled(namespace, *uids)]

    assert (names("ns", "u1"), names("ns", None), names("other", "u1")) == (
        ["a", "c"],
        ["b"],
        ["d"],
    )
    coll.put("ns", "a", obj("a", "u2"))  # a new controller: a keeps its place
    coll.put("ns", "b", obj("b", "u1"))
    assert (names("ns", "u1"), names("ns", "u2"), names("ns", None)) == (["b", "c"], ["a"], [])
    assert names("ns", "u1", "u2", None) == ["a", "b", "c"]
    coll.drop("ns", "b")
    coll.put("ns", "b", obj("b", "u1"))  # re-created: last
    assert names("ns", "u1", "u2") == ["a", "c", "b"]
    for namespace, name in list(coll.objects):
        coll.drop(namespace, name)
    assert (coll.objects, coll.by_namespace, coll.by_controller) == ({}, {}, {})


def test_the_request_log_reads_from_a_record_on(api: Api) -> None:
    everything = api.get("/_emulator/requests")
    api.get(WIDGETS)
    fresh = api.get(f"/_emulator/requests?since={len(everything)}")
    assert [r["path"] for r in fresh] == [WIDGETS, "/_emulator/requests"]
    assert api.get("/_emulator/requests?since=0")[: len(everything)] == everything
