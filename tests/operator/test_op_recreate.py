"""A SmolServe deleted and re-created under the same name, at every stage of its life cycle.

On a real cluster the owner goes first and the garbage collector removes its children a little
later; GitOps tools delete and re-create objects. Here the emulator collects garbage only when
the test says so, so the re-created SmolServe meets all of its predecessor's children. It must
never patch, delete or adopt them (children are its own by controller uid, not by name), wait
for the names they hold, and then get its own Job, template ConfigMap and Deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.running import wait_for
from support.world import NS, World, mounted

CHILD_KINDS = [
    ("deployments", "apps"),
    ("services", ""),
    ("jobs", "batch"),
    ("configmaps", ""),
    ("serviceaccounts", ""),
    ("roles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
]
BAD_TEMPLATE = {"template": {"source": "inline", "inline": "{{ messages[0]['content'] }}"}}


def _job_running(world: World) -> dict[str, Any]:
    world.create()
    world.wait_job()
    wait_for(lambda: world.children("services"), what="the Service, created after the Job")
    return {}


def _template_published(world: World) -> dict[str, Any]:
    world.create()
    world.run_template()
    return {}


def _ready(world: World) -> dict[str, Any]:
    world.create()
    world.run_template()
    world.ready()
    return {}


def _rolling_out(world: World) -> dict[str, Any]:
    world.create()
    world.run_template()
    world.ready()
    spec = {"template": {"closeSystemTurn": False}}
    jobs = world.job_names()
    world.patch_spec(spec)
    world.run_template(not_in=jobs)  # the Deployment now rolls onto the new template
    return spec


def _job_failed(world: World) -> dict[str, Any]:
    world.create()
    world.run_template()
    world.ready()
    jobs = world.job_names()
    world.patch_spec(BAD_TEMPLATE)
    assert world.kubelet.run_job(world.wait_job(not_in=jobs))[0] != 0
    wait_for(lambda: world.condition("Degraded").get("reason") == "TemplateJobFailed")
    return BAD_TEMPLATE


STAGES: dict[str, Callable[[World], dict[str, Any]]] = {
    "job-running": _job_running,
    "template-published": _template_published,
    "ready": _ready,
    "rolling-out": _rolling_out,
    "job-failed": _job_failed,
}


def _children(world: World) -> list[dict[str, Any]]:
    return [obj for plural, group in CHILD_KINDS for obj in world.children(plural, group)]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _versions(world: World) -> dict[tuple[str, str], str]:
    return {_key(o): o["metadata"]["resourceVersion"] for o in _children(world)}


def _controller(obj: dict[str, Any]) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return next((r["uid"] for r in refs if r.get("controller")), None)


@pytest.mark.parametrize("cluster", [{"gc_delay": None}], indirect=True)
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_recreated_smolserve_never_adopts_its_predecessors_children(
    world: World, stage: str
) -> None:
    spec = STAGES[stage](world)
    reconciler = world.operator.reconciler
    assert reconciler is not None
    wait_for(reconciler.idle, what="the first SmolServe's reconcile to finish")
    old_uid = world.serve()["metadata"]["uid"]
    old = _versions(world)
    assert old and all(_controller(o) == old_uid for o in _children(world))

    world.delete()
    start = world.log_length()
    new_uid = world.create(spec)["metadata"]["uid"]
    assert new_uid != old_uid

    # The positive sign: the new SmolServe says it waits for its predecessor's children.
    waiting = wait_for(
        lambda: (
            world.condition("Progressing").get("reason") == "WaitingForPredecessor"
            and world.condition("Progressing")
        ),
        what="WaitingForPredecessor",
    )
    assert "deleted SmolServe of this name" in waiting["message"]
    assert world.condition("Degraded").get("status") == "False"
    assert world.serve()["status"].get("templateConfigMap") is None  # none of the old ones
    # Nothing of the predecessor was patched, deleted or adopted; what the new one made (names
    # the predecessor does not hold, e.g. its Job's RBAC) is its own.
    now = _versions(world)
    assert {k: now.get(k) for k in old} == old
    assert all(_controller(o) == new_uid for o in _children(world) if _key(o) not in old)
    held = {f"/{name}" for _, name in old}
    assert not [w for w in world.writes(start) if any(w[1].endswith(h) for h in held)]

    # The collector removes the predecessor's children: the new one gets its own.
    world.cluster.collect_garbage()
    if spec == BAD_TEMPLATE:
        job = world.wait_job()
        assert _controller(job) == new_uid
        code, message = world.kubelet.run_job(job)
        assert code != 0
        degraded = wait_for(
            lambda: (
                world.condition("Degraded").get("reason") == "TemplateJobFailed"
                and world.condition("Degraded")
            ),
            what="its own Job's failure",
        )
        assert job["metadata"]["name"] in degraded["message"] and message in degraded["message"]
        assert world.deployment() is None  # no template of its own yet: nothing to serve
    else:
        cm = world.run_template()
        assert _controller(cm) == new_uid
        assert mounted(world.deployment()) == cm["metadata"]["name"]
        world.kubelet.deployment_ready(NS, "smol")
        wait_for(lambda: world.serve()["status"].get("phase") == "Ready", what="Ready")
        assert world.serve()["status"]["templateConfigMap"] == cm["metadata"]["name"]
        world.assert_steady()
    assert all(_controller(o) == new_uid for o in _children(world))
