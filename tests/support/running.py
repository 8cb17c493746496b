"""Run the real operator (kopf) in a thread of the test process, and wait for the cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from smolserve.manifests import OperatorConfig
from smolserve.operator.runtime import Reconciler
from smolserve.operator.settings import Timeouts

T = TypeVar("T")


class OperatorThread:
    """``smolserve.operator.runner.run`` in its own thread with its own event loop.

    kopf cancels every asyncio task created after it starts, so it must not share a loop with
    the test or the emulator. Stopping and starting again is an operator restart: a new
    ``reconciler`` (the operator's whole state), which tests read to see what it processed.
    """

    def __init__(
        self,
        config: OperatorConfig,
        *,
        timeouts: Timeouts | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.config = config
        self.timeouts = timeouts or Timeouts()
        self.metrics_port = metrics_port  # serve /metrics on 127.0.0.1:PORT
        self.reconciler: Reconciler | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None

    def _run(self, ready: threading.Event) -> None:
        from smolserve.operator.kube import Kube
        from smolserve.operator.runner import run

        try:
            timeout = (self.timeouts.connect, self.timeouts.request)
            self.reconciler = Reconciler(Kube.from_environment(timeout=timeout), self.config)
            run(
                scanning=False,
                standalone=True,
                timeouts=self.timeouts,
                reconciler=self.reconciler,
                stop_flag=self._stop,
                ready_flag=ready,
                metrics_port=self.metrics_port,
                metrics_address="127.0.0.1",
            )
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc
            ready.set()

    def start(self) -> OperatorThread:
        ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="operator", daemon=True
        )
        self._thread.start()
        if not ready.wait(30) or self.error is not None:
            raise RuntimeError(f"the operator did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(30)
            if self._thread.is_alive():
                raise RuntimeError("the operator did not stop within 30 s")
            self._thread = None


def wait_for(probe: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
