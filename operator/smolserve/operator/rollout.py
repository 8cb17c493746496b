"""Smoke-gated rollouts: which pod template the Deployment runs, judged by the agents. Pure.

With ``rollout.smoke`` on, every vLLM pod carries the agent, which keeps the pod unready until
the smoke battery passed on it, so a rolling update (``maxUnavailable: 0``) never replaces an
old pod before a new one passed. This module decides the rest, from the live Deployment and
the agents' reports (``agents.py``), each reconcile:

- **passed**: the Deployment's rollout of a smoke-gated pod template is complete (every pod
  updated and available, hence passed). That template is the last one that passed. It is
  remembered only when the Deployment moves on to another template: the patch that does so
  also writes it, as JSON, into the Deployment's annotation ``smolserve.dev/passed-pod-template``
  (no extra write);
- **failed**: a pod of the pod template the spec asks for reports a failed battery, or no
  verdict ``smokeTimeout`` (plus a grace for the agent's own report) after its vLLM became
  healthy. The Deployment goes back to the last pod template that passed (the Deployment
  controller scales its old ReplicaSet back, whose pods never stopped), and the failure is
  remembered in the annotation ``smolserve.dev/smoke-failed``: while the spec asks for that
  same pod template, it is not tried again. A spec change that yields another pod template, or
  deleting the annotation, tries again;
- without a template that passed before (the first rollout), nothing is rolled back: the new
  pods stay unready (no traffic) and the SmolServe says why.

All state lives in the cluster (the Deployment's annotations, the reports, the pods), so an
operator restarted mid-rollout decides exactly as before.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from smolserve import labels
from smolserve.agent.report import FAILED, PASSED, TIMEOUT_CHECK, PodReport, seconds_between
from smolserve.manifests.agent import smoke_gated, template_hash_of
from smolserve.manifests.desired import DesiredState
from smolserve.manifests.server import mounted_configmaps
from smolserve.operator import status as st
from smolserve.operator.agents import AgentReports
from smolserve.operator.apply import LAST_APPLIED
from smolserve.spec import SmolServeSpec

# The agent enforces the timeout itself and reports the failure; the operator waits this much
# longer before it decides for an agent that never said anything.
TIMEOUT_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Failure:
    """A pod template that failed the battery: on which pod, which check, what it saw."""

    pod_template_hash: str
    pod: str
    check: str
    observed: str
    at: str | None = None

    def to_json(self) -> str:
        doc = {
            "podTemplateHash": self.pod_template_hash,
            "pod": self.pod,
            "check": self.check,
            "observed": self.observed,
            "at": self.at,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Failure | None:
        try:
            doc = json.loads(text or "")
            return cls(
                str(doc["podTemplateHash"]),
                str(doc.get("pod", "")),
                str(doc.get("check", "")),
                str(doc.get("observed", "")),
                doc.get("at"),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def describe(self) -> str:
        return f"pod {self.pod} failed the smoke check {self.check}: {self.observed}"


@dataclass(frozen=True)
class RolloutDecision:
    """``template``: the pod template to run instead of the spec's (a rollback), or None;
    ``annotations``: Deployment annotations to write (None removes one); ``smoke``: the
    SmokeTested condition (None with smoke off); ``status``: ``status.rollout``;
    ``keep``: ConfigMaps the passed template mounts (never pruned); ``recheck_after``:
    seconds until a running battery times out."""

    template: dict[str, Any] | None = None
    annotations: Mapping[str, str | None] | None = None
    smoke: st.Condition | None = None
    degraded: st.Condition | None = None
    status: dict[str, Any] | None = None
    keep: frozenset[str] = frozenset()
    recheck_after: float | None = None


def _annotations(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def pod_template(deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return ((deployment or {}).get("spec") or {}).get("template")


def with_template(desired: DesiredState, template: dict[str, Any] | None) -> DesiredState:
    """The desired state with the Deployment on ``template`` (a rollback), if one is given."""
    if template is None or desired.deployment is None:
        return desired
    deployment = desired.deployment
    spec = {**deployment["spec"], "template": template}
    return replace(desired, deployment={**deployment, "spec": spec})


def applied_template(deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The pod template the operator last applied to the Deployment (its last-applied record)."""
    try:
        record = json.loads(_annotations(deployment).get(LAST_APPLIED) or "")
    except ValueError:
        return None
    template = ((record if isinstance(record, dict) else {}).get("spec") or {}).get("template")
    return template if isinstance(template, dict) else None


def passed_template(deployment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The pod template remembered as the last that passed."""
    try:
        template = json.loads(_annotations(deployment).get(labels.PASSED_POD_TEMPLATE) or "")
    except ValueError:
        return None
    return template if isinstance(template, dict) and template_hash_of(template) else None


def rollout_complete(deployment: Mapping[str, Any]) -> bool:
    """Every pod of the Deployment's current pod template is up and available (at least one)."""
    status = deployment.get("status") or {}
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return (
        wanted >= 1
        and (status.get("observedGeneration") or 0) >= generation
        and (status.get("updatedReplicas") or 0) == wanted
        and (status.get("availableReplicas") or 0) == wanted
        and (status.get("replicas") or 0) == wanted
    )


def _failure_of(report: PodReport, pod_template_hash: str) -> Failure | None:
    smoke = report.smoke
    if smoke is None or smoke.state != FAILED:
        return None
    return Failure(
        pod_template_hash, report.pod, smoke.check or "unknown", smoke.observed or "", smoke.at
    )


def _timed_out(
    report: PodReport, pod_template_hash: str, timeout: int, now: str
) -> tuple[Failure | None, float | None]:
    """A battery with no verdict past its timeout; else the seconds until it would be."""
    smoke = report.smoke
    if smoke is not None and smoke.state in (PASSED, FAILED):
        return None, None
    healthy_for = seconds_between(report.healthy_since, now)
    if healthy_for is None:
        return None, None  # vLLM is not healthy yet: the clock has not started
    limit = timeout + TIMEOUT_GRACE_SECONDS
    if healthy_for < limit:
        return None, limit - healthy_for
    state = smoke.state if smoke is not None else "not started"
    observed = (
        f"no verdict {int(healthy_for)} s after vLLM became healthy (rollout.smokeTimeout "
        f"{timeout} s; the battery is {state.lower()})"
    )
    return Failure(pod_template_hash, report.pod, TIMEOUT_CHECK, observed, now), None


def _new_failure(
    found: AgentReports, pod_template_hash: str | None, timeout: int, now: str
) -> tuple[Failure | None, float | None]:
    """The first failure among the live pods of this pod template, and the soonest timeout."""
    if pod_template_hash is None:
        return None, None
    failures: list[Failure] = []
    soonest: float | None = None
    for report in found.of_template(pod_template_hash):
        if found.pods[report.pod].deleting:
            continue
        failure = _failure_of(report, pod_template_hash)
        if failure is None:
            failure, wait = _timed_out(report, pod_template_hash, timeout, now)
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        if failure is not None:
            failures.append(failure)
    failures.sort(key=lambda f: (f.at or "", f.pod))
    return (failures[0] if failures else None), soonest


def _passed_count(found: AgentReports, pod_template_hash: str | None) -> int:
    return sum(
        1
        for r in found.of_template(pod_template_hash)
        if r.smoke is not None and r.smoke.state == PASSED
    )


def decide(
    spec: SmolServeSpec,
    wanted: dict[str, Any] | None,
    live: dict[str, Any] | None,
    found: AgentReports,
    now: str,
) -> RolloutDecision:
    """What the rollout needs this reconcile (see the module docstring).

    ``wanted``: the Deployment the spec asks for (None while no verified template is known:
    the Deployment is then left as it is), ``live``: the Deployment as it is.
    """
    live_annotations = _annotations(live)
    if not spec.rollout.smoke:
        remove = {
            key: None
            for key in (labels.PASSED_POD_TEMPLATE, labels.SMOKE_FAILED)
            if key in live_annotations
        }
        return RolloutDecision(annotations=remove or None)

    live_template = pod_template(live)
    live_hash = template_hash_of(live_template)
    applied = applied_template(live)
    passed_now = (
        live is not None
        and smoke_gated(live_template)
        and applied is not None
        and template_hash_of(applied) == live_hash
        and rollout_complete(live)
    )
    last_passed = applied if passed_now else passed_template(live)
    passed_hash = template_hash_of(last_passed)
    target = pod_template(wanted) if wanted is not None else live_template
    target_hash = template_hash_of(target)
    timeout = spec.rollout.smoke_timeout_seconds

    remembered = Failure.from_json(live_annotations.get(labels.SMOKE_FAILED))
    if remembered is not None and remembered.pod_template_hash != target_hash:
        remembered = None  # the spec moved on: a stale memory, removed below
    fresh, recheck_after = _new_failure(found, target_hash, timeout, now)
    failure = remembered or fresh
    can_roll_back = wanted is not None and last_passed is not None and passed_hash != target_hash

    annotations: dict[str, str | None] = {}
    template: dict[str, Any] | None = None
    degraded = None
    if failure is not None:
        recheck_after = None
        if can_roll_back:
            template = copy.deepcopy(last_passed)
            if live_annotations.get(labels.SMOKE_FAILED) != failure.to_json():
                annotations[labels.SMOKE_FAILED] = failure.to_json()
            outcome = (
                f"the Deployment is back on pod template {passed_hash}, the last that passed; "
                f"pod template {target_hash} is not tried again until the spec changes or the "
                f"Deployment's annotation {labels.SMOKE_FAILED} is deleted"
            )
        else:
            outcome = (
                f"no earlier pod template passed, so there is none to go back to: pods of "
                f"{target_hash} take no traffic"
            )
        message = f"{failure.describe()}; {outcome}"
        degraded = st.Condition(st.DEGRADED, True, st.SMOKE_TEST_FAILED, message)
        smoke = st.Condition(st.SMOKE_TESTED, False, st.SMOKE_TEST_FAILED, failure.describe())
    else:
        if labels.SMOKE_FAILED in live_annotations:
            annotations[labels.SMOKE_FAILED] = None
        smoke = _progress(wanted, live, live_hash, target_hash, passed_now, found)

    runs_hash = template_hash_of(template if template is not None else target)
    if (
        wanted is not None
        and last_passed is not None
        and runs_hash != live_hash
        and passed_template(live) != last_passed
    ):
        # The Deployment moves to another pod template: remember the one that passed.
        annotations[labels.PASSED_POD_TEMPLATE] = json.dumps(
            last_passed, sort_keys=True, separators=(",", ":")
        )
    rollout_status = {
        "podTemplateHash": runs_hash,
        "passedPodTemplateHash": passed_hash,
        "failedPodTemplateHash": failure.pod_template_hash
        if failure is not None and can_roll_back
        else None,
    }
    keep = (
        frozenset(mounted_configmaps({"spec": {"template": last_passed}}))
        if last_passed is not None
        else frozenset()
    )
    return RolloutDecision(
        template=template,
        annotations=annotations or None,
        smoke=smoke,
        degraded=degraded,
        status=rollout_status,
        keep=keep,
        recheck_after=recheck_after,
    )


def _progress(
    wanted: dict[str, Any] | None,
    live: dict[str, Any] | None,
    live_hash: str | None,
    target_hash: str | None,
    passed_now: bool,
    found: AgentReports,
) -> st.Condition:
    """SmokeTested when nothing failed: passed, or how far the battery got."""
    if passed_now and live_hash == target_hash:
        return st.Condition(
            st.SMOKE_TESTED,
            True,
            st.SMOKE_TEST_PASSED,
            f"every pod of pod template {target_hash} passed the smoke battery",
        )
    if live is None and wanted is None:
        return st.Condition(
            st.SMOKE_TESTED, False, st.SMOKE_TEST_PENDING, "no pods yet: waiting for a template"
        )
    replicas = ((wanted or live or {}).get("spec") or {}).get("replicas", 1)
    passed = _passed_count(found, target_hash)
    return st.Condition(
        st.SMOKE_TESTED,
        False,
        st.SMOKE_TEST_RUNNING,
        f"pods of pod template {target_hash}: {passed} of {replicas} passed the smoke battery",
    )
