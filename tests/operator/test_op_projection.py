"""The indexes keep projections of the watched objects (``operator/projection.py``): the planner
plans exactly the same writes from them as from the full objects, step by step, for every
example, through creation, a spec edit, a template change and hand edits of the children."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from smolserve import labels
from smolserve.agent.report import agent_status_name
from smolserve.kinds import Ref
from smolserve.manifests import build_template_configmap
from smolserve.manifests.agent import agent_config_name
from smolserve.operator.apply import LAST_APPLIED
from smolserve.operator.projection import pack, project
from smolserve.operator.reconcile import Observed, Plan, plan, read_spec, split_owned
from support.factories import operator_config
from support.patching import merge_patch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))
CONFIG = operator_config()
NOW = "2026-11-25T12:00:00Z"
MANAGED = [{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:x": {}}}]
ROLLED_OUT = {
    "observedGeneration": 1,
    "replicas": 1,
    "readyReplicas": 1,
    "updatedReplicas": 1,
    "availableReplicas": 1,
    "conditions": [{"type": "Available", "status": "True"}],
}


class World:
    """One SmolServe and its children as an API server would hold them (full bodies)."""

    def __init__(self, example: str) -> None:
        documents = yaml.safe_load_all((ROOT / "examples" / example).read_text())
        body = next(d for d in documents if d and d.get("kind") == labels.KIND)
        body["metadata"].update(namespace="ns", uid="u-1", generation=1, managedFields=MANAGED)
        self.serve = body
        self.children: dict[Ref, dict[str, Any]] = {}
        self._versions = itertools.count(10)

    def store(self, obj: dict[str, Any], **status: Any) -> None:
        live = copy.deepcopy(obj)
        version = next(self._versions)
        live["metadata"].update(
            uid=f"uid-{version}",
            resourceVersion=str(version),
            generation=live["metadata"].get("generation", 0) + 1,
            creationTimestamp=f"2026-11-25T11:{version // 60:02d}:{version % 60:02d}Z",
            managedFields=MANAGED,
        )
        if live["kind"] == "Service":
            live["spec"]["clusterIP"] = "10.0.0.1"
        if status:
            live["status"] = status
        self.children[Ref.of(live)] = live

    def plans(self) -> tuple[Plan, Plan]:
        """The plan from the full objects, and the one from their packed projections."""
        full = list(self.children.values())
        return (
            _plan(self.serve, full),
            _plan(pack(self.serve).unpack(), [pack(obj).unpack() for obj in full]),
        )

    def apply(self, result: Plan) -> None:
        """Land a plan's writes; play each template Job (publish its ConfigMap, complete)."""
        for obj in result.create:
            status: dict[str, Any] = {}
            if obj["kind"] == "Deployment":
                status = ROLLED_OUT
            if obj["kind"] == "Job":
                status = {"conditions": [{"type": "Complete", "status": "True"}]}
                self.store(
                    build_template_configmap(
                        serve=self.serve["metadata"]["name"],
                        namespace="ns",
                        owner_uid="u-1",
                        text=f"template for {obj['metadata']['name']}",
                        inputs_hash=obj["metadata"]["annotations"][labels.INPUTS_HASH],
                    )
                )
            self.store(obj, **status)
        for ref, body in result.patch:
            patched = merge_patch(self.children[ref], body)
            patched["metadata"]["resourceVersion"] = str(next(self._versions))
            self.children[ref] = patched
        for ref in result.delete:
            self.children.pop(ref, None)
        if result.status is not None:
            self.serve["status"] = merge_patch(self.serve.get("status") or {}, result.status)

    def settle(self) -> int:
        """Plan and apply until nothing is left to write, checking every step; the steps."""
        for step in range(12):
            full, projected = self.plans()
            assert _writes(projected) == _writes(full)
            if not full.writes:
                return step
            self.apply(full)
        raise AssertionError("never settled")

    def edit(self, kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        ref = Ref(kind, "ns", name)
        change(self.children[ref])
        self.children[ref]["metadata"]["resourceVersion"] = str(next(self._versions))


def _plan(serve: dict[str, Any], children: list[dict[str, Any]]) -> Plan:
    owned, foreign = split_owned(children, serve["metadata"]["uid"])
    return plan(Observed(serve, read_spec(serve), owned, foreign), CONFIG, NOW)


def _writes(result: Plan) -> tuple[Any, ...]:
    return (
        result.create,
        result.patch,
        result.delete,
        result.status,
        result.events,
        result.recheck_after,
    )


def _hand_edit_deployment(deployment: dict[str, Any]) -> None:
    deployment["spec"]["replicas"] = 7
    deployment["spec"]["template"]["metadata"]["labels"]["extra"] = "x"


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_planner_writes_the_same_from_projections(example: str) -> None:
    world = World(example)
    assert world.settle() > 0
    name = world.serve["metadata"]["name"]
    world.edit("Deployment", name, _hand_edit_deployment)
    assert world.settle() > 0  # the drift is patched back, from the projection too
    world.serve["spec"]["replicas"] = 3
    world.serve["spec"]["template"] = {"variant": "seed"}
    world.serve["metadata"]["generation"] = 2
    assert world.settle() > 0  # a new template Job, its ConfigMap, the Deployment moves
    agent_config = Ref("ConfigMap", "ns", agent_config_name(name))
    if agent_config in world.children:  # the agent's ConfigMaps are read whole
        world.edit("ConfigMap", agent_config.name, lambda cm: cm.update(data={"x": "{}"}))
        world.edit("ConfigMap", agent_status_name(name), lambda cm: cm.update(data={"gone": "{}"}))
        full, projected = world.plans()
        assert {ref for ref, _ in full.patch} >= {agent_config}
        assert _writes(projected) == _writes(full)
        assert world.settle() > 0


def test_projections_drop_what_is_never_read() -> None:
    world = World("lora.yaml")
    world.settle()
    for ref, obj in world.children.items():
        kept = project(obj)
        meta = kept["metadata"]
        assert "managedFields" not in meta
        if ref.kind == "Job":
            assert "spec" not in kept and LAST_APPLIED not in meta["annotations"]
            assert kept["status"] == obj["status"]
        elif ref.kind == "ConfigMap" and obj.get("immutable"):  # plugin, guard, template
            assert "data" not in kept and kept["immutable"] is True
            assert LAST_APPLIED not in (meta.get("annotations") or {})
            assert meta["labels"] == obj["metadata"]["labels"]
        else:  # the patched kinds and the agent's ConfigMaps: all but managedFields
            assert kept == {**obj, "metadata": meta}
            assert meta.get("annotations") == obj["metadata"].get("annotations")
        if "-parsers-" in ref.name:
            assert len(str(kept)) < len(str(obj)) / 5  # the plugin's source is not kept
        assert pack(obj).unpack() == kept
