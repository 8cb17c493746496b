"""The autoscaler's and the InferencePool's conditions, from what their controllers report. Pure.

Each feature the spec turns on gets a condition of its own (``AutoscalerReady``,
``InferencePoolReady``), absent while the feature is off:

- the cluster does not serve the kind (KEDA or the Inference Extension is not installed):
  ``False``/``APINotServed``, nothing is written, and ``Degraded`` says so too (the spec asks
  for something only a person can provide);
- the object is being created, or its controller has not reported yet: ``False``, waiting;
- its controller reports a problem (KEDA's ``Ready=False``, the HPA's ``ScalingActive=False``
  or ``AbleToScale=False``, a gateway that did not accept the pool): ``False`` with the
  controller's own reason and message;
- otherwise ``True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from smolserve.kinds import BY_KIND, Ref
from smolserve.manifests.autoscaling import VLLM_SERIES, enabled_autoscaling
from smolserve.manifests.common import HTTP_PORT
from smolserve.operator import status as st
from smolserve.spec import SmolServeSpec

# What a person installs to get each optional kind served.
PROVIDERS = {
    "ScaledObject": "KEDA (keda.sh)",
    "InferencePool": "the Gateway API Inference Extension's InferencePool CRD",
}


@dataclass(frozen=True)
class FleetFindings:
    conditions: tuple[st.Condition, ...] = ()
    degraded: st.Condition | None = None  # only for a kind the cluster does not serve


def _by_type(conditions: Any) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in conditions or [] if isinstance(c, dict)}


def _conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return _by_type(((obj or {}).get("status") or {}).get("conditions"))


def _not_served(kind: str, type_: str) -> st.Condition:
    resource = BY_KIND[kind]
    return st.Condition(
        type_,
        False,
        st.API_NOT_SERVED,
        f"the cluster does not serve {resource.api_version} {kind}: install "
        f"{PROVIDERS[kind]}, then restart the operator (it reads the served APIs when it "
        f"starts); no {kind} is written",
    )


def _keda(obj: dict[str, Any], scope: str) -> st.Condition:
    ready = _conditions(obj).get("Ready")
    if ready is None or ready.get("status") == "Unknown":
        message = f"ScaledObject {obj['metadata']['name']} exists; waiting for KEDA to report"
        return st.Condition(st.AUTOSCALER_READY, False, st.WAITING_FOR_AUTOSCALER, message)
    if ready.get("status") != "True":
        text = f"KEDA: {ready.get('reason', 'NotReady')}: {ready.get('message', '')}".rstrip(": ")
        return st.Condition(st.AUTOSCALER_READY, False, st.AUTOSCALER_FAILING, text)
    active = _conditions(obj).get("Active") or {}
    state = "active" if active.get("status") == "True" else "idle"
    return st.Condition(st.AUTOSCALER_READY, True, st.AUTOSCALER_ACTIVE, f"KEDA ({state}) {scope}")


def _hpa(obj: dict[str, Any], scope: str) -> st.Condition:
    reported = _conditions(obj)
    if not reported:
        message = (
            f"HorizontalPodAutoscaler {obj['metadata']['name']} exists; waiting for it to report"
        )
        return st.Condition(st.AUTOSCALER_READY, False, st.WAITING_FOR_AUTOSCALER, message)
    for type_ in ("AbleToScale", "ScalingActive"):
        cond = reported.get(type_)
        if cond is not None and cond.get("status") == "False":
            text = f"{type_}=False: {cond.get('reason', '')}: {cond.get('message', '')}".rstrip(
                ": "
            )
            return st.Condition(st.AUTOSCALER_READY, False, st.AUTOSCALER_FAILING, text)
    return st.Condition(st.AUTOSCALER_READY, True, st.AUTOSCALER_ACTIVE, f"the HPA {scope}")


def _autoscaler(
    spec: SmolServeSpec, live: dict[Ref, dict[str, Any]], unserved: frozenset[str]
) -> st.Condition | None:
    autoscaling = enabled_autoscaling(spec)
    if autoscaling is None:
        return None
    kind = "ScaledObject" if autoscaling.engine == "keda" else "HorizontalPodAutoscaler"
    if kind in unserved:
        return _not_served(kind, st.AUTOSCALER_READY)
    obj = live.get(Ref(kind, spec.namespace, spec.name))
    if obj is None:
        return st.Condition(
            st.AUTOSCALER_READY, False, st.WAITING_FOR_AUTOSCALER, f"creating {kind} {spec.name}"
        )
    scope = (
        f"scales Deployment {spec.name} between {autoscaling.min_replicas} and "
        f"{autoscaling.max_replicas} pods on {VLLM_SERIES[autoscaling.metric]} "
        f"(target {autoscaling.target} per pod)"
    )
    return _keda(obj, scope) if kind == "ScaledObject" else _hpa(obj, scope)


def _pool(
    spec: SmolServeSpec, live: dict[Ref, dict[str, Any]], unserved: frozenset[str]
) -> st.Condition | None:
    if spec.inference_pool is None or not spec.inference_pool.enabled:
        return None
    if "InferencePool" in unserved:
        return _not_served("InferencePool", st.INFERENCE_POOL_READY)
    obj = live.get(Ref("InferencePool", spec.namespace, spec.name))
    if obj is None:
        return st.Condition(
            st.INFERENCE_POOL_READY,
            False,
            st.WAITING_FOR_POOL,
            f"creating InferencePool {spec.name}",
        )
    parents = ((obj.get("status") or {}).get("parents")) or []
    accepted = []
    for parent in parents:
        ref = parent.get("parentRef") or {}
        who = f"{ref.get('kind', 'Gateway')} {ref.get('name', '?')}"
        for type_ in ("Accepted", "ResolvedRefs"):
            cond = _by_type(parent.get("conditions")).get(type_)
            if cond is not None and cond.get("status") == "False":
                text = f"{who}: {type_}=False: {cond.get('reason', '')}: {cond.get('message', '')}"
                return st.Condition(
                    st.INFERENCE_POOL_READY, False, st.POOL_NOT_ACCEPTED, text.rstrip(": ")
                )
        accepted.append(who)
    picker = spec.inference_pool.endpoint_picker
    where = f"pods of {spec.name} on port {HTTP_PORT}, endpoint picker {picker.name}:{picker.port}"
    if not accepted:
        message = f"InferencePool {spec.name} ({where}); no gateway reports on it yet"
    else:
        message = f"InferencePool {spec.name} ({where}); accepted by {', '.join(accepted)}"
    return st.Condition(st.INFERENCE_POOL_READY, True, st.POOL_READY, message)


def fleet_findings(
    spec: SmolServeSpec, children: Iterable[dict[str, Any]], unserved: frozenset[str]
) -> FleetFindings:
    """The conditions of the autoscaler and the pool the spec asks for (none when off)."""
    live = {Ref.of(obj): obj for obj in children}
    found = [c for c in (_autoscaler(spec, live, unserved), _pool(spec, live, unserved)) if c]
    missing = [c.message for c in found if c.reason == st.API_NOT_SERVED]
    degraded = (
        st.Condition(st.DEGRADED, True, st.API_NOT_SERVED, "; ".join(missing)) if missing else None
    )
    return FleetFindings(tuple(found), degraded)
