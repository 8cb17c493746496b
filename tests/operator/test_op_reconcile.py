"""The real operator (kopf, in a thread) against the emulator, with the tests playing the kubelet.

Template Jobs run for real: their container arguments go through ``smolserve.cli.main`` with
the test-kit tokenizer standing in for the model PVC, and publish the ConfigMap through the
API like the pod would.

A check that the operator wrote *nothing* first waits for a positive sign that it processed
the state in question: its reconciler's progress reaches the resourceVersion the test made or
read (``World.processed``). ``World.assert_steady`` makes such a sign on purpose (a change to a
child the operator does not own) and asserts that reconciling it wrote nothing.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from smolserve import labels
from smolserve.operator.overlay import resource_version
from support.running import OperatorThread, wait_for
from support.world import MERGE, NS, SOURCE_LABELS, World, mounted, template_annotation

GROUP, VERSION, PLURAL = labels.GROUP, labels.VERSION, labels.PLURAL


def test_create_runs_the_template_job_then_deploys(world: World) -> None:
    world.create()
    job = world.wait_job()
    assert world.deployment() is None  # never before a verified template
    kinds = [("serviceaccounts", ""), ("roles", "rbac.authorization.k8s.io"), ("services", "")]
    counts = {"serviceaccounts": 2, "roles": 2, "services": 1}  # the template Job's, the agent's
    wait_for(
        lambda: all(len(world.children(p, g)) == counts[p] for p, g in kinds), what="the children"
    )
    wait_for(lambda: world.condition("TemplateReady").get("reason") == "TemplateJobRunning")
    assert world.deployment() is None

    cm = world.run_template()
    deployment = world.deployment()
    assert template_annotation(deployment) == cm["metadata"]["labels"][labels.TEMPLATE_HASH]
    serve_uid = world.serve()["metadata"]["uid"]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == serve_uid
    assert cm["immutable"] is True and job["metadata"]["ownerReferences"][0]["uid"] == serve_uid

    world.ready()
    status = world.serve()["status"]
    assert status["readyReplicas"] == 1 and status["observedGeneration"] == 1
    assert status["templateConfigMap"] == cm["metadata"]["name"]
    assert status["templateHash"] == cm["metadata"]["labels"][labels.TEMPLATE_HASH]
    assert cm["metadata"]["annotations"]["smolserve.dev/template-sha256"].startswith(
        status["templateHash"]
    )
    assert status["endpoint"] == "http://smol.default.svc:8000/v1"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "TemplateReady": "True",
        "Available": "True",
        "Progressing": "False",
        "Degraded": "False",
        "SmokeTested": "True",  # the pods were marked ready: their agents passed them
    }
    # A Job verified the template: an Event. The first rollout going well: none (checked once
    # the operator is at rest, so nothing is still on its way).
    verified = wait_for(lambda: world.events("TemplateVerified"), what="TemplateVerified")
    assert [e["type"] for e in verified] == ["Normal"]
    world.assert_steady()
    assert not world.events("MinimumReplicasAvailable") and not world.events("RolloutComplete")


def test_template_change_rolls_and_a_revert_reuses_the_kept_configmap(world: World) -> None:
    world.create()
    first = world.run_template()
    world.ready()
    first_job = world.job_names()

    world.patch_spec({"template": {"closeSystemTurn": False}})
    second = world.run_template(not_in=first_job)
    assert second["metadata"]["name"] != first["metadata"]["name"]
    rolled = world.deployment()
    assert template_annotation(rolled) == second["metadata"]["labels"][labels.TEMPLATE_HASH]
    assert rolled["metadata"]["generation"] == 2
    world.ready()  # a change rolled out: that is worth an Event
    wait_for(lambda: world.events("RolloutComplete"), what="the RolloutComplete Event")

    posts_before = world.job_posts()
    world.patch_spec({"template": {"closeSystemTurn": True}})
    wait_for(lambda: mounted(world.deployment()) == first["metadata"]["name"], what="the revert")
    assert world.job_posts() == posts_before  # the kept ConfigMap was reused: no Job
    assert world.condition("TemplateReady")["status"] == "True"


def test_a_failed_template_job_keeps_the_last_good_template(world: World) -> None:
    world.create()
    good = world.run_template()
    world.ready()
    before = world.deployment()
    old_jobs = world.job_names()

    world.patch_spec({"template": {"source": "inline", "inline": "{{ messages[0]['content'] }}"}})
    job = world.wait_job(not_in=old_jobs)
    code, message = world.kubelet.run_job(job)
    assert code != 0 and message
    degraded = wait_for(
        lambda: world.condition("Degraded").get("status") == "True" and world.condition("Degraded")
    )
    assert degraded["reason"] == "TemplateJobFailed"
    assert message in degraded["message"]
    failed = wait_for(lambda: world.events("TemplateJobFailed"), what="the TemplateJobFailed Event")
    assert {e["type"] for e in failed} == {"Warning"}
    after = world.deployment()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert mounted(after) == good["metadata"]["name"]
    world.assert_steady()


def test_only_the_last_three_templates_are_kept(world: World) -> None:
    world.create()
    names = [world.run_template()["metadata"]["name"]]
    variants = [{"closeSystemTurn": False}, {"variant": "seed"}, {"variant": "stock"}]
    for variant in variants:
        seen = world.job_names()
        world.patch_spec({"template": variant})
        names.append(world.run_template(not_in=seen)["metadata"]["name"])
    assert len(set(names)) == 4
    wait_for(lambda: len(world.templates()) == 3, what="pruning to three")
    assert {c["metadata"]["name"] for c in world.templates()} == set(names[1:])


CHILD_KINDS = [
    ("deployments", "apps"),
    ("services", ""),
    ("jobs", "batch"),
    ("configmaps", ""),
    ("serviceaccounts", ""),
    ("roles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
]


def test_deleting_the_smolserve_removes_its_children(world: World) -> None:
    world.create()
    world.wait_job()
    rbac = [("serviceaccounts", ""), ("roles", "rbac.authorization.k8s.io")]

    def job_rbac(plural: str, group: str) -> list[dict[str, Any]]:
        found = world.children(plural, group)
        return [o for o in found if o["metadata"]["labels"][labels.COMPONENT] == "template"]

    wait_for(lambda: all(job_rbac(p, g) for p, g in rbac), what="the Job's RBAC")
    world.run_template()
    wait_for(lambda: not job_rbac(*rbac[0]), what="the Job's RBAC gone once published")
    assert world.children("deployments", "apps") and world.children("jobs", "batch")
    reconciler = world.operator.reconciler
    assert reconciler is not None
    wait_for(reconciler.idle, what="the operator to finish what it is doing")
    start = world.log_length()
    world.delete()
    wait_for(lambda: not any(world.children(p, g) for p, g in CHILD_KINDS), what="children gone")
    wait_for(lambda: reconciler.tracked() == 0, what="the operator to forget the SmolServe")
    # The garbage collector did the deleting; the operator never fought it by re-creating or
    # touching a child. (A status write racing the deletion is refused with 404 and counts
    # for nothing: only the children's paths are checked.)
    children_paths = [f"/{plural}" for plural, _ in CHILD_KINDS]
    touched = [w for w in world.writes(start) if any(p in w[1] for p in children_paths)]
    assert touched == []


def test_a_smolserve_recreated_under_the_same_name_starts_over(world: World) -> None:
    world.create()
    world.run_template()
    world.delete()
    kinds = [("deployments", "apps"), ("jobs", "batch"), ("configmaps", "")]
    wait_for(lambda: not any(world.children(p, g) for p, g in kinds), what="children gone")
    world.create()
    world.run_template()  # the old template went with its owner: a new Job publishes it again
    world.ready()
    assert world.serve()["status"]["observedGeneration"] == 1
    world.assert_steady()


def test_a_restart_creates_nothing_and_writes_nothing(
    world: World, operator: OperatorThread
) -> None:
    world.create()
    world.run_template()
    world.ready()
    world.assert_steady()
    before = {p: len(world.children(p, g)) for p, g in CHILD_KINDS}
    operator.stop()
    start = world.log_length()
    operator.start()
    # The positive sign: the new operator's resume handler reconciled the SmolServe as it is.
    progress = world.processed(resource_version(world.serve()))
    assert (progress.writes, progress.events) == (0, 0), progress
    assert world.writes(start) == []
    assert {p: len(world.children(p, g)) for p, g in CHILD_KINDS} == before


def test_static_lora_flags_and_adapter_order(world: World) -> None:
    adapters = [
        {"name": "sql", "source": "pvc://adapters/sql"},
        {"name": "chat", "source": "pvc://adapters/chat"},
    ]
    lora = {"adapters": adapters, "maxRank": 8, "maxLoras": 2, "mode": "static"}
    world.create({"lora": lora})
    world.run_template()
    args = world.deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-lora" in args
    assert args[args.index("--max-lora-rank") + 1] == "8"
    assert args[args.index("--max-loras") + 1] == "2"
    modules = [json.loads(m) for m in args[args.index("--lora-modules") + 1 :][:2]]
    assert [m["name"] for m in modules] == ["chat", "sql"]
    assert all(m["base_model_name"] == "smollm3" for m in modules)
    version = world.deployment()["metadata"]["resourceVersion"]
    patched = world.patch_spec({"lora": {**lora, "adapters": adapters[::-1]}})
    world.processed(int(patched["metadata"]["resourceVersion"]))
    assert world.serve()["status"]["observedGeneration"] == 2
    assert world.deployment()["metadata"]["resourceVersion"] == version


def test_a_bad_spec_is_degraded_with_an_event_and_no_children(world: World) -> None:
    world.create({"template": {"source": "configMap"}})  # the CRD's CEL would refuse this
    degraded = wait_for(
        lambda: world.condition("Degraded").get("status") == "True" and world.condition("Degraded")
    )
    assert degraded["reason"] == "InvalidSpec" and "configMapRef" in degraded["message"]
    assert world.serve()["status"]["phase"] == "Degraded"
    invalid = wait_for(lambda: world.events("InvalidSpec"), what="the InvalidSpec Event")
    assert {e["type"] for e in invalid} == {"Warning"}
    assert all(
        not world.children(p, g)
        for p, g in [("jobs", "batch"), ("services", ""), ("serviceaccounts", "")]
    )


def _two_templates(tokenizer_root: Path) -> tuple[str, str]:
    from smolserve.template import generate_template, load_tokenizer

    tokenizer = load_tokenizer(str(tokenizer_root / "SmolLM3-3B"))
    first, second = (generate_template(tokenizer, close_system_turn=c).text for c in (True, False))
    return first, second


def test_a_configmap_source_change_rolls_the_pods(world: World, tokenizer_root: Path) -> None:
    text, edited = _two_templates(tokenizer_root)
    world.core.create_namespaced_config_map(
        NS, {"metadata": {"name": "mine", "labels": SOURCE_LABELS}, "data": {"t.jinja": text}}
    )
    world.create(
        {"template": {"source": "configMap", "configMapRef": {"name": "mine", "key": "t.jinja"}}}
    )
    first = world.run_template()
    jobs = world.job_names()
    world.core.patch_namespaced_config_map(
        "mine", NS, {"data": {"t.jinja": edited}}, _content_type=MERGE
    )
    second = world.run_template(not_in=jobs)
    assert second["metadata"]["name"] != first["metadata"]["name"]


def test_an_unlabelled_configmap_source_says_so_until_it_is_labelled(
    world: World, tokenizer_root: Path
) -> None:
    text, _ = _two_templates(tokenizer_root)
    world.create(
        {"template": {"source": "configMap", "configMapRef": {"name": "mine", "key": "t.jinja"}}}
    )
    missing = wait_for(
        lambda: world.condition("Degraded").get("status") == "True" and world.condition("Degraded")
    )
    assert missing["reason"] == "SourceConfigMapMissing"
    assert "'mine' not found" in missing["message"] and "part-of=smolserve" in missing["message"]
    world.core.create_namespaced_config_map(
        NS, {"metadata": {"name": "mine"}, "data": {"t.jinja": text}}
    )
    world.patch_spec({"servedModelName": "smol"})  # any change makes it look again
    wait_for(
        lambda: "not labelled" in world.condition("Degraded").get("message", ""),
        what="the unlabelled source reported",
    )
    assert not world.children("jobs", "batch")
    world.core.patch_namespaced_config_map(
        "mine", NS, {"metadata": {"labels": SOURCE_LABELS}}, _content_type=MERGE
    )
    world.run_template()  # labelled: the operator sees it, and its edits from now on
    assert world.condition("Degraded")["status"] == "False"


def test_a_rollout_undo_behind_the_operators_back_is_reverted(world: World) -> None:
    world.create()
    cm = world.run_template()
    world.ready()
    body = {"spec": {"template": {"metadata": {"annotations": {labels.TEMPLATE_HASH: "00000000"}}}}}
    world.apps.patch_namespaced_deployment("smol", NS, body, _content_type=MERGE)
    wanted = cm["metadata"]["labels"][labels.TEMPLATE_HASH]
    wait_for(
        lambda: template_annotation(world.deployment()) == wanted,
        what="the operator's template back",
    )


def test_a_rollout_restart_is_left_alone(world: World) -> None:
    world.create()
    world.run_template()
    world.ready()
    world.assert_steady()
    start = world.log_length()
    stamp = {"kubectl.kubernetes.io/restartedAt": "2026-11-25T12:00:00Z"}
    body = {"spec": {"template": {"metadata": {"annotations": stamp}}}}
    restarted = world.apps.patch_namespaced_deployment("smol", NS, body, _content_type=MERGE)
    world.processed(int(restarted.metadata.resource_version))
    # A real rollout starts (the status may say RollingOut), but the operator does not undo it.
    assert not [w for w in world.writes(start) if "/deployments/" in w[1]]
    annotations = world.deployment()["spec"]["template"]["metadata"]["annotations"]
    assert stamp.items() <= annotations.items()


def test_new_inputs_with_the_same_template_text_reuse_its_configmap(world: World) -> None:
    world.create()
    cm = world.run_template()
    world.ready()
    jobs = world.job_names()
    text = cm["data"]["chat_template.jinja"]
    # New inputs (the same text, given inline) publish the same ConfigMap: it is reused.
    world.patch_spec({"template": {"source": "inline", "inline": text}})
    job = world.wait_job(not_in=jobs)
    assert world.kubelet.run_job(job)[0] == 0
    ready = lambda: world.condition("TemplateReady").get("status") == "True"  # noqa: E731
    wait_for(ready, timeout=5, what="ready again")
    assert mounted(world.deployment()) == cm["metadata"]["name"]
    assert [t["metadata"]["name"] for t in world.templates()] == [cm["metadata"]["name"]]

    # Reverting to the first inputs finds the ConfigMap by its inputs history: no new Job.
    posts_before = world.job_posts()
    reverted = world.patch_spec({"template": {"source": "generate", "inline": None}})
    world.processed(int(reverted["metadata"]["resourceVersion"]))
    assert ready()
    assert world.job_posts() == posts_before
    assert mounted(world.deployment()) == cm["metadata"]["name"]


@pytest.mark.parametrize("cluster", [{"gc_delay": None}], indirect=True)
def test_deleted_smolserves_are_forgotten_without_their_childrens_events(world: World) -> None:
    """The garbage collector never runs here, so no child's deletion ever triggers a
    reconcile: the SmolServe's own deletion must make the operator forget it, children or
    not, and leave no thread (a recheck timer) behind."""
    reconciler = world.operator.reconciler
    assert reconciler is not None
    threads = _own_threads()
    bad = ["bad-1", "bad-2", "bad-3"]  # an invalid spec: no children at all
    for name in bad:
        world.create({"template": {"source": "configMap"}}, name=name)
    world.create()  # a valid one, with children
    world.wait_job()
    wait_for(
        lambda: all(world.condition("Degraded", name).get("status") == "True" for name in bad),
        what="the bad specs reported",
    )
    wait_for(lambda: reconciler.tracked() == 4, what="the operator to track all four")
    for name in [*bad, "smol"]:
        world.delete(name)
    wait_for(lambda: reconciler.tracked() == 0, what="the operator to forget all four")
    assert world.children("jobs", "batch")  # the collector did not run: no child event came
    wait_for(lambda: reconciler.idle(), what="nothing running")
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert _own_threads() == threads


def _own_threads() -> set[str]:
    """The threads alive, but the workers of thread pools (bounded; kopf's and asyncio's)."""
    pools = ("ThreadPoolExecutor-", "asyncio_")
    return {t.name for t in threading.enumerate() if not t.name.startswith(pools)}
