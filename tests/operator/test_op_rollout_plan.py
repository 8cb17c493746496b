"""The rollout decision alone (operator/rollout.py, pure): what is remembered when, timeouts,
and what smoke off leaves behind. The flows against the emulator are test_op_rollout.py."""

from __future__ import annotations

import copy
import json
from typing import Any

from smolserve import labels
from smolserve.agent.report import FAILED, RUNNING, PodReport, SmokeReport
from smolserve.manifests import ServedTemplate, desired_state, template_inputs_hash
from smolserve.operator.agents import read_agent_reports
from smolserve.operator.apply import with_last_applied
from smolserve.operator.rollout import Failure, decide
from smolserve.spec import load_spec
from support.factories import operator_config

CONFIG = operator_config()
NOW = "2026-01-01T12:00:00Z"
HASH = labels.POD_TEMPLATE_HASH


def spec(rollout: dict[str, Any] | None = None, env: str = "a"):
    body = {
        "metadata": {"name": "smol", "namespace": "ns", "uid": "u"},
        "spec": {
            "replicas": 1,
            "rollout": rollout or {},
            "engine": {"env": [{"name": "V", "value": env}]},
        },
    }
    return load_spec(body)


def wanted(s) -> dict[str, Any]:
    template = ServedTemplate("smol-chat-template-1234abcd", "1234abcd")
    state = desired_state(
        s, CONFIG, inputs_hash=template_inputs_hash(s, CONFIG), template=template, publishing=False
    )
    return state.deployment


def live(deployment: dict[str, Any], *, complete: bool, annotations: dict[str, str] | None = None):
    """The Deployment as the API returns it once applied (rolled out, or not yet)."""
    obj = copy.deepcopy(with_last_applied(deployment))
    obj["metadata"]["generation"] = 2
    obj["metadata"]["annotations"].update(annotations or {})
    done = 1 if complete else 0
    obj["status"] = {
        "observedGeneration": 2 if complete else 1,
        "replicas": 1,
        "updatedReplicas": done,
        "availableReplicas": 1,
        "readyReplicas": 1,
    }
    return obj


def template_hash(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["metadata"]["annotations"][HASH]


def pod(name: str, template: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": name, "annotations": {HASH: template}}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"kind": "Pod", "metadata": meta, "status": {"phase": "Running", "ready": False}}


def reports(*items: PodReport) -> dict[str, Any]:
    return {"metadata": {"name": "smol-agent-status"}, "data": {r.pod: r.to_json() for r in items}}


def test_the_passed_template_is_written_only_with_the_move_to_another() -> None:
    first = wanted(spec())
    settled = live(first, complete=True)
    found = read_agent_reports(None, [], NOW)
    steady = decide(spec(), first, settled, found, NOW)
    assert steady.annotations is None  # passing costs no write of its own
    assert steady.status["passedPodTemplateHash"] == template_hash(first)
    moving = decide(spec(env="b"), wanted(spec(env="b")), settled, found, NOW)
    remembered = json.loads(moving.annotations[labels.PASSED_POD_TEMPLATE])
    assert remembered == first["spec"]["template"]
    assert moving.template is None  # the spec's own template: nothing failed


def test_a_failure_of_the_new_template_goes_back_and_is_remembered() -> None:
    first, second = wanted(spec()), wanted(spec(env="b"))
    passed = json.dumps(first["spec"]["template"])
    rolling = live(second, complete=False, annotations={labels.PASSED_POD_TEMPLATE: passed})
    report = PodReport(
        pod="p2",
        uid="p2",
        smoke=SmokeReport(FAILED, check="prompt-mode", observed="open", at=NOW),
        at=NOW,
    )
    found = read_agent_reports(reports(report), [pod("p2", template_hash(second))], NOW)
    decision = decide(spec(env="b"), second, rolling, found, NOW)
    assert decision.template == first["spec"]["template"]
    marker = Failure.from_json(decision.annotations[labels.SMOKE_FAILED])
    assert (marker.pod_template_hash, marker.check, marker.pod) == (
        template_hash(second), "prompt-mode", "p2",
    )  # fmt: skip
    assert (
        decision.degraded.reason == "SmokeTestFailed"
        and "prompt-mode: open" in decision.degraded.message
    )
    assert decision.status["failedPodTemplateHash"] == template_hash(second)
    assert "smol-chat-template-1234abcd" in decision.keep


def test_a_remembered_failure_of_another_template_is_forgotten() -> None:
    first = wanted(spec())
    marker = Failure("0000000000", "p", "adapters", "x").to_json()
    settled = live(first, complete=True, annotations={labels.SMOKE_FAILED: marker})
    decision = decide(spec(), first, settled, read_agent_reports(None, [], NOW), NOW)
    assert decision.annotations == {labels.SMOKE_FAILED: None} and decision.degraded is None


def test_a_running_battery_times_out_and_is_rechecked_until_then() -> None:
    first = wanted(spec({"smokeTimeout": "60s"}))
    settled = live(first, complete=False)
    pods = [pod("p", template_hash(first))]
    young = PodReport(
        pod="p", uid="p", healthy_since="2026-01-01T11:59:50Z", smoke=SmokeReport(RUNNING), at=NOW
    )
    decision = decide(
        spec({"smokeTimeout": "60s"}),
        first,
        settled,
        read_agent_reports(reports(young), pods, NOW),
        NOW,
    )
    assert decision.degraded is None and decision.recheck_after == 55  # 60 s + 5 s grace - 10 s
    old = young.but(healthy_since="2026-01-01T11:58:00Z")
    decision = decide(
        spec({"smokeTimeout": "60s"}),
        first,
        settled,
        read_agent_reports(reports(old), pods, NOW),
        NOW,
    )
    assert (
        "smoke check timeout: no verdict 120 s after vLLM became healthy"
        in decision.degraded.message
    )
    # A pod on its way out is not judged.
    leaving = [pod("p", template_hash(first), deleting=True)]
    decision = decide(
        spec({"smokeTimeout": "60s"}),
        first,
        settled,
        read_agent_reports(reports(old), leaving, NOW),
        NOW,
    )
    assert decision.degraded is None and decision.recheck_after is None


def test_smoke_off_leaves_no_rollout_memory() -> None:
    off = spec({"smoke": False})
    annotations = {labels.PASSED_POD_TEMPLATE: "{}", labels.SMOKE_FAILED: "{}"}
    decision = decide(
        off,
        wanted(off),
        live(wanted(off), complete=True, annotations=annotations),
        read_agent_reports(None, [], NOW),
        NOW,
    )
    assert decision.annotations == dict.fromkeys(annotations)
    assert decision.smoke is None and decision.status is None


def test_reports_of_vanished_pods_wait_out_their_grace() -> None:
    fresh = PodReport(pod="gone", at="2026-01-01T11:59:50Z")
    stale = PodReport(pod="old", at="2026-01-01T11:00:00Z")
    found = read_agent_reports(reports(fresh, stale), [], NOW)
    assert found.stale == ("old",) and found.recheck_after == 20
