"""``smolserve render`` prints exactly what the operator creates.

Every example is applied to the emulator with the real operator running; the test plays the
template Job (publishes the template ConfigMap for the Job's inputs, as the Job's pod would),
waits for the Deployment, and compares the live children with ``render`` of the same object
(as the cluster holds it: with its uid and namespace) and the published template's name.
The only differences allowed are the fields the API server sets and the operator's own
last-applied record, which must equal what render printed. The cluster serves KEDA's and the
Inference Extension's APIs (stand-in CRDs), so an example that asks for an autoscaler or a
pool gets them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from chart.helpers import find_tool, run
from smolserve import labels
from smolserve.manifests import build_template_configmap
from smolserve.manifests.cli import render
from smolserve.operator.apply import LAST_APPLIED, applied_view, contains
from support import EmulatedCluster
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for

ROOT = Path(__file__).resolve().parents[2]
# What only the API server (or another controller) sets on an object.
SERVER_SET_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
CHILDREN = [
    ("serviceaccounts", ""),
    ("roles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
    ("jobs", "batch"),
    ("configmaps", ""),
    ("services", ""),
    ("deployments", "apps"),
    ("horizontalpodautoscalers", "autoscaling"),
    ("scaledobjects", "keda.sh"),
    ("inferencepools", "inference.networking.k8s.io"),
]


EXAMPLES = ROOT / "examples"
# Every example that holds a SmolServe; "gitops" is `kubectl kustomize examples/gitops/smol`.
EXAMPLE_NAMES = [
    *(p.name for p in sorted(EXAMPLES.glob("*.yaml")) if f"kind: {labels.KIND}" in p.read_text()),
    "gitops",
]


def example_stream(name: str) -> str:
    if name != "gitops":
        return (EXAMPLES / name).read_text()
    kubectl = find_tool("kubectl")
    return run([kubectl, "kustomize", EXAMPLES / "gitops" / "smol"])


def _apply(api_client: Any, doc: dict[str, Any]) -> dict[str, Any]:
    namespace = doc["metadata"].setdefault("namespace", "default")
    if doc["kind"] == labels.KIND:
        return kubernetes.client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            labels.GROUP, labels.VERSION, namespace, labels.PLURAL, doc
        )
    return kubernetes.utils.create_from_dict(api_client, doc, namespace=namespace)


def _stripped(live: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in live["metadata"].items() if k not in SERVER_SET_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**{k: v for k, v in live.items() if k != "status"}, "metadata": meta}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_render_is_what_the_operator_creates(
    name: str,
    cluster: EmulatedCluster,
    api_client: Any,
    fleet_operator: OperatorThread,
    kubelet: Kubelet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # render reads the template Job's image as the operator does (an input of the Job's hash).
    monkeypatch.setenv("SMOLSERVE_TEMPLATE_JOB_IMAGE", fleet_operator.config.job_image)
    docs = [d for d in yaml.safe_load_all(example_stream(name)) if d]
    serve_doc = next(d for d in docs if d["kind"] == labels.KIND)
    for doc in docs:  # the template source first, then the SmolServe
        if doc["kind"] != labels.KIND:
            _apply(api_client, doc)
    created = _apply(api_client, serve_doc)
    namespace, serve = created["metadata"]["namespace"], created["metadata"]["name"]

    def children() -> list[dict[str, Any]]:
        return [
            obj
            for plural, group in CHILDREN
            for obj in cluster.snapshot(plural, group, **{labels.SERVE: serve})
        ]

    job = wait_for(
        lambda: next((c for c in children() if c["kind"] == "Job"), None), what="the template Job"
    )
    # Play the Job's pod: publish a template for its inputs, then exit 0.
    published = build_template_configmap(
        serve=serve,
        namespace=namespace,
        owner_uid=created["metadata"]["uid"],
        text=f"{{# a template for {name} #}}{{{{ messages[0]['content'] }}}}",
        inputs_hash=job["metadata"]["annotations"][labels.INPUTS_HASH],
    )
    kubernetes.client.CoreV1Api(api_client).create_namespaced_config_map(namespace, published)
    (pod,) = kubelet.wait_running(namespace, "Job", job["metadata"]["name"])
    kubelet.exit_container(namespace, pod["metadata"]["name"], 0)
    wait_for(lambda: any(c["kind"] == "Deployment" for c in children()), what="the Deployment")

    live_serve = cluster.snapshot(labels.PLURAL, labels.GROUP)[0]
    text = yaml.safe_dump_all([*[d for d in docs if d["kind"] != labels.KIND], live_serve])
    rendered = [
        d
        for d in yaml.safe_load_all(render(text, template_configmap=published["metadata"]["name"]))
        if d
    ]
    operator_made = {
        (c["kind"], c["metadata"]["name"]): c
        for c in children()
        if c["metadata"]["name"] != published["metadata"]["name"]
    }
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == set(operator_made)
    for desired in rendered:
        live = operator_made[desired["kind"], desired["metadata"]["name"]]
        record = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
        view = applied_view(desired)
        del view["metadata"]["annotations"][LAST_APPLIED]
        if not view["metadata"]["annotations"]:
            del view["metadata"]["annotations"]
        assert record == view, desired["kind"]  # the operator applied exactly what render printed
        assert contains(_stripped(live), desired), desired["kind"]
