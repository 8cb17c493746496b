"""The operator's own Prometheus metrics (``prometheus_client``), served at ``/metrics``.

``OperatorMetrics.reconciled`` is the one hook the reconcile shell calls, after each reconcile,
with what it observed and planned; everything is derived from that, never from the planner's
insides. Label sets are bounded: results and outcomes are small enums, and the only
per-object dimension is the namespace of the SmolServes-by-phase gauge.

- ``smolserve_reconciles_total{result}``: ``unchanged`` (nothing to write), ``changed``,
  ``refused`` (the API refused a write for good: ``ApplyFailed``), ``error`` (a transient API
  error; retried);
- ``smolserve_reconcile_duration_seconds``: read, plan, apply and report;
- ``smolserve_template_jobs_total{outcome}`` and ``smolserve_template_job_duration_seconds
  {outcome}`` (``succeeded``, ``failed``; start to end as the Job reports them): Jobs this
  process saw running and then finished (a restart does not count finished Jobs again);
- ``smolserve_rollouts_started_total``, ``smolserve_rollouts_finished_total{outcome}`` and
  ``smolserve_rollout_duration_seconds{outcome}``: a rollout starts when the operator creates
  the Deployment or changes its pod template, and ends ``complete`` (every pod updated and
  ready), ``stalled`` (the Deployment's progress deadline passed) or ``superseded`` (another
  pod template came first). A scale-up is no rollout;
- ``smolserve_serves{namespace, phase}``: SmolServes by phase, as last reconciled.

Per-SmolServe memory (Jobs seen running, rollout start times, the phase) is dropped by
``forget``.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from smolserve.operator import reconcile
from smolserve.operator import status as st
from smolserve.operator.overlay import Key

# Template Jobs load a tokenizer and render a battery of conversations: seconds to minutes.
JOB_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
# A rollout waits for new pods to download and load the model: minutes.
ROLLOUT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
RESULTS = ("unchanged", "changed", "refused", "error")
JOB_OUTCOMES = ("succeeded", "failed")
ROLLOUT_OUTCOMES = ("complete", "stalled", "superseded")
_FINISHED = ("SuccessCriteriaMet", "Complete", "FailureTarget", "Failed")


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        begin = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = datetime.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((finish - begin).total_seconds(), 0.0)


def job_duration(job: dict[str, Any]) -> float | None:
    """A finished Job's run time, from its start to its completion or failure (the first
    condition that says so, when ``completionTime`` is not written yet)."""
    status = job.get("status") or {}
    end = status.get("completionTime")
    for cond in status.get("conditions") or []:  # the interim conditions come first
        if end is None and cond.get("type") in _FINISHED and cond.get("status") == "True":
            end = cond.get("lastTransitionTime")
    return _seconds_between(status.get("startTime"), end)


class _Phases(Collector):
    """``smolserve_serves``: computed at scrape time, so a deleted SmolServe leaves no series."""

    def __init__(self, metrics: OperatorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "smolserve_serves",
            "SmolServes by phase, as last reconciled.",
            labels=["namespace", "phase"],
        )
        for (namespace, phase), count in sorted(self._metrics.phase_counts().items()):
            family.add_metric([namespace, phase], count)
        yield family


class OperatorMetrics:
    """The operator's metrics in a registry of their own (one per operator, so tests can run
    several in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "smolserve_reconciles", "Reconciles of a SmolServe, by result.", ["result"], registry=r
        )
        for result in RESULTS:
            self.reconciles.labels(result)
        self.reconcile_seconds = Histogram(
            "smolserve_reconcile_duration_seconds",
            "Time one reconcile takes: read, plan, apply, report.",
            registry=r,
        )
        self.template_jobs = Counter(
            "smolserve_template_jobs",
            "Template Jobs that finished, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.template_job_seconds = Histogram(
            "smolserve_template_job_duration_seconds",
            "Run time of template Jobs, start to end, by outcome.",
            ["outcome"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.rollouts_started = Counter(
            "smolserve_rollouts_started", "Rollouts of a new pod template begun.", registry=r
        )
        self.rollouts_finished = Counter(
            "smolserve_rollouts_finished",
            "Rollouts that ended, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.rollout_seconds = Histogram(
            "smolserve_rollout_duration_seconds",
            "Time from a rollout's start to its end, by outcome.",
            ["outcome"],
            buckets=ROLLOUT_BUCKETS,
            registry=r,
        )
        for outcome in JOB_OUTCOMES:  # every series exists from the start, at 0
            self.template_jobs.labels(outcome)
            self.template_job_seconds.labels(outcome)
        for outcome in ROLLOUT_OUTCOMES:
            self.rollouts_finished.labels(outcome)
            self.rollout_seconds.labels(outcome)
        ProcessCollector(registry=r)  # the operator's CPU and memory
        r.register(_Phases(self))
        self._guard = threading.Lock()
        self._running_jobs: dict[Key, set[str]] = {}
        self._rollouts: dict[Key, float] = {}  # when the one under way started (monotonic)
        self._phases: dict[Key, str] = {}

    # --- the hook ------------------------------------------------------------------------------

    def failed(self, seconds: float) -> None:
        """A reconcile that a transient API error ended (it is retried)."""
        self.reconciles.labels("error").inc()
        self.reconcile_seconds.observe(seconds)

    def reconciled(
        self,
        key: Key,
        observed: reconcile.Observed,
        plan: reconcile.Plan,
        result: str,
        seconds: float,
    ) -> None:
        """One reconcile that ran to its end, with what it saw and what it planned."""
        self.reconciles.labels(result).inc()
        self.reconcile_seconds.observe(seconds)
        self._template_jobs(key, observed, plan)
        self._rollout(key, plan)
        phase = (plan.status or observed.serve.get("status") or {}).get("phase")
        with self._guard:
            if phase:
                self._phases[key] = phase

    def _template_jobs(self, key: Key, observed: reconcile.Observed, plan: reconcile.Plan) -> None:
        jobs = [c for c in observed.children if c["kind"] == "Job"]
        created = {o["metadata"]["name"] for o in plan.create if o["kind"] == "Job"}
        with self._guard:
            tracked = self._running_jobs.get(key, set())
            for job in jobs:
                name, state = job["metadata"]["name"], reconcile.job_state(job)
                if state != "running" and name in tracked:
                    tracked.discard(name)
                    self.template_jobs.labels(state).inc()
                    duration = job_duration(job)
                    if duration is not None:
                        self.template_job_seconds.labels(state).observe(duration)
            running = {j["metadata"]["name"] for j in jobs if reconcile.job_state(j) == "running"}
            tracked = (tracked | running | created) & (
                {j["metadata"]["name"] for j in jobs} | created
            )
            if tracked:
                self._running_jobs[key] = tracked
            else:
                self._running_jobs.pop(key, None)

    def _rollout(self, key: Key, plan: reconcile.Plan) -> None:
        begins = any(o["kind"] == "Deployment" for o in plan.create) or any(
            ref.kind == "Deployment" and "template" in (body.get("spec") or {})
            for ref, body in plan.patch
        )
        now = time.monotonic()
        with self._guard:
            started = self._rollouts.get(key)
            if begins:
                if started is not None:
                    self._finish("superseded", now - started)
                self.rollouts_started.inc()
                self._rollouts[key] = started = now
            if started is None or plan.findings is None:
                return
            progressing = next(
                c for c in st.conditions_for(plan.findings) if c.type == st.PROGRESSING
            )
            if progressing.reason == st.ROLLING_OUT:
                return
            outcome = "stalled" if progressing.reason == st.ROLLOUT_STALLED else "complete"
            self._finish(outcome, now - started)
            del self._rollouts[key]

    def _finish(self, outcome: str, seconds: float) -> None:
        self.rollouts_finished.labels(outcome).inc()
        self.rollout_seconds.labels(outcome).observe(seconds)

    # --- reads ---------------------------------------------------------------------------------

    def phase_counts(self) -> dict[tuple[str, str], int]:
        with self._guard:
            return dict(Tally((namespace, phase) for (namespace, _), phase in self._phases.items()))

    def forget(self, key: Key) -> None:
        with self._guard:
            self._running_jobs.pop(key, None)
            self._rollouts.pop(key, None)
            self._phases.pop(key, None)

    def tracked(self) -> int:
        with self._guard:
            return len(self._running_jobs.keys() | self._rollouts.keys() | self._phases.keys())
