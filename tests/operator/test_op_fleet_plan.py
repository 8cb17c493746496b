"""The planner's part in autoscaling and routing (pure): what it writes for the optional kinds,
served or not, and how the status reads a Deployment whose replicas an autoscaler owns."""

from __future__ import annotations

import copy
from typing import Any

from test_op_plan import NOW, converge, template_cm

from smolserve.operator import status as st
from smolserve.operator.reconcile import Observed, Plan, plan, read_spec, split_owned
from support.factories import PVC_MODEL, operator_config, smolserve

CONFIG = operator_config()
KEDA = {"maxReplicas": 4, "minReplicas": 2, "prometheus": {"serverAddress": "http://p:9090"}}
POOL = {"endpointPickerRef": {"name": "epp"}}


def serve(**spec: Any) -> dict[str, Any]:
    return smolserve({"model": PVC_MODEL, **spec}, namespace="ns", uid="u-1", generation=1)


def observed(body: dict[str, Any], children: list[dict[str, Any]], **kw: Any) -> Observed:
    owned, foreign = split_owned(children, body["metadata"]["uid"])
    return Observed(body, read_spec(body), owned, foreign, **kw)


def conditions(result: Plan) -> dict[str, dict[str, Any]]:
    assert result.status is not None
    return {c["type"]: c for c in result.status["conditions"]}


def settled(live: list[dict[str, Any]], replicas: int, ready: int) -> list[dict[str, Any]]:
    """The Deployment as its controller reports it: ``replicas`` pods, all of the current
    template, ``ready`` of them ready."""
    out = []
    for obj in live:
        if obj["kind"] == "Deployment":
            obj = copy.deepcopy(obj)
            obj["spec"]["replicas"] = replicas
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "conditions": [{"type": "Available", "status": "True"}],
            }
        out.append(obj)
    return out


def test_unserved_kinds_are_not_written_and_the_status_says_why() -> None:
    body = serve(autoscaling=KEDA, inferencePool=POOL)
    result = plan(
        observed(body, [], unserved=frozenset({"ScaledObject", "InferencePool"})), CONFIG, NOW
    )
    assert not {"ScaledObject", "InferencePool"} & {o["kind"] for o in result.create}
    found = conditions(result)
    assert found[st.AUTOSCALER_READY]["reason"] == st.API_NOT_SERVED
    assert found[st.INFERENCE_POOL_READY]["reason"] == st.API_NOT_SERVED
    assert (found[st.DEGRADED]["status"], found[st.DEGRADED]["reason"]) == (
        "True",
        st.API_NOT_SERVED,
    )
    served = plan(observed(body, []), CONFIG, NOW)
    assert {"ScaledObject", "InferencePool"} <= {o["kind"] for o in served.create}
    assert conditions(served)[st.DEGRADED]["status"] == "False"


def test_an_autoscaled_deployment_is_available_at_its_minimum_and_a_scale_up_is_no_rollout() -> (
    None
):
    body = serve(autoscaling=KEDA)
    first, live = converge(body, [template_cm(body, "T1", 1)])
    assert "replicas" not in next(o for o in first.create if o["kind"] == "Deployment")["spec"]
    body["status"] = first.status
    # The autoscaler asked for 4; 2 (its minimum) are ready: available, and not rolling out.
    found = conditions(plan(observed(body, settled(live, 4, 2)), CONFIG, NOW))
    assert found[st.AVAILABLE]["status"] == "True"
    assert found[st.AVAILABLE]["message"] == "2/4 replicas ready (the autoscaler's count)"
    assert found[st.PROGRESSING]["reason"] == st.ROLLOUT_COMPLETE
    below = conditions(plan(observed(body, settled(live, 4, 1)), CONFIG, NOW))
    assert below[st.AVAILABLE]["status"] == "False"
    # Scaled to zero by KEDA: available (nothing is missing that the autoscaler asked for).
    zero = conditions(plan(observed(body, settled(live, 0, 0)), CONFIG, NOW))
    assert zero[st.AVAILABLE]["status"] == "True"


def test_an_autoscaler_the_spec_no_longer_asks_for_is_deleted() -> None:
    body = serve(autoscaling=KEDA, inferencePool=POOL)
    first, live = converge(body, [template_cm(body, "T1", 1)])
    body["status"] = first.status
    body["spec"]["autoscaling"] = {**KEDA, "enabled": False}
    del body["spec"]["inferencePool"]
    result = plan(observed(body, live), CONFIG, NOW)
    assert {(r.kind, r.name) for r in result.delete} >= {
        ("ScaledObject", "smol"),
        ("InferencePool", "smol"),
    }
    patch = next(p for ref, p in result.patch if ref.kind == "Deployment")
    assert patch["spec"] == {"replicas": 1}  # spec.replicas again
    assert st.AUTOSCALER_READY not in conditions(result)


def test_keda_and_the_hpa_reports_become_the_condition() -> None:
    body = serve(autoscaling={**KEDA, "engine": "hpa"})
    _, live = converge(body, [template_cm(body, "T1", 1)])
    hpa = next(o for o in live if o["kind"] == "HorizontalPodAutoscaler")
    hpa["status"] = {
        "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
            {
                "type": "ScalingActive",
                "status": "False",
                "reason": "FailedGetPodsMetric",
                "message": "unable to get metric vllm:num_requests_waiting",
            },
        ]
    }
    found = conditions(plan(observed(body, live), CONFIG, NOW))[st.AUTOSCALER_READY]
    assert (found["status"], found["reason"]) == ("False", st.AUTOSCALER_FAILING)
    assert found["message"] == (
        "ScalingActive=False: FailedGetPodsMetric: unable to get metric vllm:num_requests_waiting"
    )
    hpa["status"]["conditions"][1].update(status="True", reason="ValidMetricFound", message="")
    found = conditions(plan(observed(body, live), CONFIG, NOW))[st.AUTOSCALER_READY]
    assert (found["status"], found["reason"]) == ("True", st.AUTOSCALER_ACTIVE)
    assert found["message"] == (
        "the HPA scales Deployment smol between 2 and 4 pods on vllm:num_requests_waiting "
        "(target 2 per pod)"
    )
