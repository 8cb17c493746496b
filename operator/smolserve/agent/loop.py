"""The agent's loop: watch vLLM's health, run the gates, answer ``/ready``, report changes.

``Agent`` polls its pod's vLLM (``/health``, every second), reads the operator's wishes from
``<name>-agent-config`` (and watches it), and runs its ``Gate``s: each one decides part of the
pod's readiness and fills its section of the pod's report. The pod is ready when vLLM is
healthy and every gate says so. When vLLM becomes healthy (at start, and after it was down) the
gates' ``on_healthy`` runs; ``SmokeGate`` runs the smoke battery there. The report is written
(merge patch of this pod's key) only when it changes; a write that fails is retried with
back-off, and a steady pod writes nothing.

Another gate (dynamic LoRA's adapters) plugs in the same way: it implements ``Gate``, may run
its own thread, and calls ``agent.publish()`` when its section changes.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from smolserve.agent.report import (
    FAILED,
    PASSED,
    PENDING,
    RUNNING,
    AgentConfig,
    PodReport,
    ReportError,
    SmokeReport,
    agent_config_name,
    agent_status_name,
    format_time,
    read_config,
    report_patch,
)
from smolserve.agent.smoke import BatteryResult, run_battery
from smolserve.agent.vllm import VllmClient

logger = logging.getLogger("smolserve.agent")

POLL_SECONDS = 1.0
RETRY_SECONDS = (1, 2, 5, 10, 30, 60)  # back-off for failed API calls
DEFAULT_SMOKE_TIMEOUT = 180


def utc_now() -> str:
    return format_time(datetime.datetime.now(tz=datetime.UTC))


@dataclass(frozen=True)
class PodIdentity:
    """Who this agent is: its SmolServe, and its pod as the downward API describes it."""

    serve: str
    namespace: str
    pod: str
    uid: str | None = None
    pod_template_hash: str | None = None  # annotation smolserve.dev/pod-template-hash
    replicaset_hash: str | None = None  # label pod-template-hash

    @classmethod
    def from_env(cls, serve: str, namespace: str, pod: str | None) -> PodIdentity:
        env = os.environ
        return cls(
            serve=serve,
            namespace=namespace,
            pod=pod or env.get("SMOLSERVE_POD_NAME") or env.get("HOSTNAME", "unknown"),
            uid=env.get("SMOLSERVE_POD_UID") or None,
            pod_template_hash=env.get("SMOLSERVE_POD_TEMPLATE_HASH") or None,
            replicaset_hash=env.get("SMOLSERVE_REPLICASET_HASH") or None,
        )

    def blank_report(self) -> PodReport:
        return PodReport(
            pod=self.pod,
            uid=self.uid,
            pod_template_hash=self.pod_template_hash,
            replicaset_hash=self.replicaset_hash,
        )


class ConfigSource(Protocol):
    """Where the agent reads and reports (``kube.AgentKube``; tests may pass their own)."""

    def read_configmap(self, name: str) -> dict[str, str] | None: ...

    def watch_configmap(self, name: str) -> Iterator[dict[str, str]]: ...

    def patch_configmap(self, name: str, body: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Gate(Protocol):
    """A part of the agent that decides part of the pod's readiness."""

    name: str

    def configure(self, config: AgentConfig) -> None:
        """The operator's wishes changed (also called once before anything else)."""

    def on_healthy(self, agent: Agent) -> None:
        """vLLM just became healthy; may block (the health loop waits for it)."""

    def on_unhealthy(self) -> None:
        """vLLM stopped answering ``/health``."""

    def verdict(self) -> tuple[bool, str]:
        """(ready as far as this gate goes, why in words)."""

    def contribute(self, report: PodReport) -> PodReport:
        """The report with this gate's section filled in."""


class SmokeGate:
    """Runs the smoke battery each time vLLM becomes healthy; ready once it passed."""

    name = "smoke"

    def __init__(
        self,
        battery: Callable[..., BatteryResult] = run_battery,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._battery = battery
        self._clock = clock
        self._lock = threading.Lock()
        self._timeout = DEFAULT_SMOKE_TIMEOUT
        self._adapters: tuple[str, ...] = ()
        self.state = SmokeReport(PENDING)

    def configure(self, config: AgentConfig) -> None:
        with self._lock:
            if config.smoke is not None:
                self._timeout = config.smoke.timeout_seconds
            self._adapters = tuple(a.name for a in config.adapters)

    def on_healthy(self, agent: Agent) -> None:
        with self._lock:
            timeout, adapters = self._timeout, self._adapters
            self.state = SmokeReport(RUNNING, at=self._clock())
        agent.publish()
        result = self._battery(agent.vllm, adapters=adapters, timeout=timeout)
        logger.info("smoke battery %s", result.summary())
        with self._lock:
            if result.passed:
                self.state = SmokeReport(PASSED, at=self._clock(), seconds=round(result.seconds, 2))
            else:
                first = result.failures[0]
                self.state = SmokeReport(
                    FAILED,
                    check=first.check,
                    observed=first.observed,
                    failed=tuple(f.check for f in result.failures),
                    at=self._clock(),
                    seconds=round(result.seconds, 2),
                )
        agent.publish()

    def on_unhealthy(self) -> None:
        with self._lock:
            self.state = SmokeReport(PENDING)

    def verdict(self) -> tuple[bool, str]:
        with self._lock:
            state = self.state
        if state.state == PASSED:
            return True, "the smoke battery passed"
        if state.state == FAILED:
            return False, f"the smoke battery failed {state.check}: {state.observed}"
        return False, f"the smoke battery is {state.state.lower()}"

    def contribute(self, report: PodReport) -> PodReport:
        with self._lock:
            return report.but(smoke=self.state)


class Agent:
    """One pod's agent (see the module docstring). ``run`` blocks until ``stop`` is set."""

    def __init__(
        self,
        identity: PodIdentity,
        vllm: VllmClient,
        kube: ConfigSource,
        gates: Sequence[Gate],
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.identity = identity
        self.vllm = vllm
        self.kube = kube
        self.gates = list(gates)
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._healthy_since: str | None = None
        self._written: PodReport | None = None  # the last report the API accepted
        self._retry_at = 0.0
        self._failures = 0
        self._running = True
        self.configured = threading.Event()

    # --- readiness -----------------------------------------------------------------------------

    def verdict(self) -> tuple[bool, str]:
        with self._lock:
            healthy = self._healthy_since is not None
        if not self.configured.is_set():
            return False, "waiting for the agent config"
        if not healthy:
            return False, "vLLM is not healthy yet"
        for gate in self.gates:
            ok, why = gate.verdict()
            if not ok:
                return False, why
        return True, "ready: " + "; ".join(gate.verdict()[1] for gate in self.gates)

    def alive(self) -> bool:
        """The loop still runs (``/healthz``: an agent whose loop died is restarted). A battery
        holds the loop for at most its timeout, so a running loop is never stuck for long."""
        return self._running

    # --- reporting -----------------------------------------------------------------------------

    def report(self) -> PodReport:
        with self._lock:
            since = self._healthy_since
        report = self.identity.blank_report().but(ready=self.verdict()[0], healthy_since=since)
        for gate in self.gates:
            report = gate.contribute(report)
        return report

    def publish(self) -> None:
        """Write the report if it changed since the last accepted write (or retry one)."""
        report = self.report()
        with self._lock:
            if self._written is not None and report == self._written.but(at=report.at):
                return
            if time.monotonic() < self._retry_at:
                return
        stamped = report.but(at=self._clock())
        try:
            self.kube.patch_configmap(agent_status_name(self.identity.serve), report_patch(stamped))
        except Exception as exc:  # the API may be down or refuse: retry later, never crash
            with self._lock:
                delay = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
                self._failures += 1
                self._retry_at = time.monotonic() + delay
            logger.warning("writing the report failed (%s); retrying in %d s", _why(exc), delay)
            return
        with self._lock:
            self._written, self._failures, self._retry_at = stamped, 0, 0.0

    # --- configuration -------------------------------------------------------------------------

    def _configure(self, data: dict[str, str] | None) -> bool:
        try:
            config = read_config(data)
        except ReportError as exc:
            logger.warning("%s: %s", agent_config_name(self.identity.serve), exc)
            return False
        for gate in self.gates:
            gate.configure(config)
        self.configured.set()
        return True

    def _load_config(self, stop: threading.Event) -> None:
        name = agent_config_name(self.identity.serve)
        attempt = 0
        while not stop.is_set():
            try:
                if self._configure(self.kube.read_configmap(name)):
                    return
            except Exception as exc:
                logger.warning("reading %s failed (%s)", name, _why(exc))
            stop.wait(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            attempt += 1

    def _watch_config(self, stop: threading.Event) -> None:
        name = agent_config_name(self.identity.serve)
        attempt = 0
        while not stop.is_set():
            try:
                for data in self.kube.watch_configmap(name):
                    attempt = 0
                    if self._configure(data):
                        self.publish()
                    if stop.is_set():
                        return
            except Exception as exc:
                logger.warning("watching %s failed (%s)", name, _why(exc))
                stop.wait(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1

    # --- the loop ------------------------------------------------------------------------------

    def step(self) -> None:
        """One poll of vLLM's health, and what follows from a change."""
        healthy = self.vllm.healthy()
        with self._lock:
            was = self._healthy_since is not None
            if healthy and not was:
                self._healthy_since = self._clock()
            elif not healthy and was:
                self._healthy_since = None
        if healthy and not was:
            logger.info("vLLM is healthy")
            self.publish()
            for gate in self.gates:
                gate.on_healthy(self)
        elif was and not healthy:
            logger.warning("vLLM stopped answering /health")
            for gate in self.gates:
                gate.on_unhealthy()
        self.publish()  # a change, or a write to retry

    def run(self, stop: threading.Event) -> None:
        try:
            self._load_config(stop)
            threading.Thread(
                target=self._watch_config, args=(stop,), name="agent-config", daemon=True
            ).start()
            self.publish()
            while not stop.is_set():
                self.step()
                stop.wait(self.poll_seconds)
        except BaseException:
            self._running = False
            raise
        finally:
            self.kube.close()  # ends the config watch


def _why(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None:
        return f"HTTP {status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"[:200]
