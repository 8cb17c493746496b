"""``Reconciler.submit``, the operator's work queue for every event and deadline: the handler
that calls it returns at once (kopf indexes an object's next event only once its handlers for
the last one returned), events that come while a reconcile is queued join it, and a failing
reconcile is retried in the background until it succeeds."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from smolserve.manifests import OperatorConfig
from smolserve.operator import runtime
from smolserve.operator.kube import ApiError, Kube
from smolserve.operator.runtime import Reconciler

KEY = ("ns", "smol")


class Recorded(Reconciler):
    """A Reconciler whose reconcile (the collaborator the queue runs) fails ``failures`` times,
    then records its calls; ``hold`` holds each call until a test opens it. It has no
    watches: its caches count as listed."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(Kube(None), OperatorConfig.from_env())
        self.failures = failures
        self.calls: list[bool] = []
        self.started = 0
        self.hold = threading.Event()
        self.hold.set()
        self.gate.listed.set()

    def reconcile(self, key: Any, indexes: Any, **kwargs: Any) -> None:
        self.started += 1
        self.hold.wait(10)
        if self.failures:
            self.failures -= 1
            raise ApiError(503, "the server is currently unable to handle the request")
        self.calls.append(kwargs.get("after_deletion", False))


def test_the_handler_returns_before_the_reconcile_ran() -> None:
    async def scenario() -> None:
        reconciler = Recorded()
        reconciler.hold.clear()
        await asyncio.wait_for(reconciler.submit(KEY, {}), timeout=1)  # returns at once
        assert not reconciler.idle() and reconciler.calls == []
        reconciler.hold.set()
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        assert reconciler.calls == [False]

    asyncio.run(scenario())


def test_events_while_queued_join_one_reconcile() -> None:
    async def scenario() -> None:
        reconciler = Recorded()
        for deleted in (False, True, False):
            await reconciler.submit(KEY, {}, after_deletion=deleted)
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        assert reconciler.calls == [True]  # one reconcile, told a deletion was among them

    asyncio.run(scenario())


def test_an_event_while_a_reconcile_runs_gets_a_pass_after_it() -> None:
    """The running reconcile may have read the caches before the event: it is not joined."""

    async def scenario() -> None:
        reconciler = Recorded()
        reconciler.hold.clear()
        await reconciler.submit(KEY, {})
        while reconciler.started == 0:
            await asyncio.sleep(0.01)
        await reconciler.submit(KEY, {})
        reconciler.hold.set()
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        assert reconciler.calls == [False, False]

    asyncio.run(scenario())


def test_nothing_runs_before_the_caches_are_listed_nor_while_peering_pauses(
    monkeypatch: Any,
) -> None:
    """Queued reconciles and their retries wait at the gate: for the operator's own caches'
    first list, and while kopf's peering pauses this replica (a standby never writes)."""
    monkeypatch.setattr(runtime, "RETRY_DELAYS", (0.01,))

    async def scenario() -> None:
        reconciler = Recorded(failures=1)
        reconciler.gate.listed.clear()
        await reconciler.submit(KEY, {})
        await asyncio.sleep(0.3)
        assert reconciler.started == 0  # not listed yet
        reconciler.gate.active.clear()  # paused
        reconciler.gate.listed.set()
        await asyncio.sleep(0.3)
        assert reconciler.started == 0
        reconciler.gate.active.set()
        while reconciler.started == 0:
            await asyncio.sleep(0.01)
        reconciler.gate.active.clear()  # paused again before the retry of the failed one
        await asyncio.sleep(0.3)
        assert reconciler.started == 1 and reconciler.calls == []
        reconciler.gate.active.set()
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        assert reconciler.calls == [False]

    asyncio.run(scenario())


def test_a_failing_reconcile_is_retried_in_the_background(monkeypatch: Any) -> None:
    monkeypatch.setattr(runtime, "RETRY_DELAYS", (0.01,))

    async def scenario() -> None:
        reconciler = Recorded(failures=3)
        await asyncio.wait_for(reconciler.submit(KEY, {}), timeout=1)
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        assert reconciler.calls == [False] and reconciler.failures == 0

    asyncio.run(scenario())


def test_a_deadline_queues_a_reconcile_from_the_event_loop_and_forget_cancels_it() -> None:
    """A reconcile that sees a deadline coming (a smoke battery's timeout) sets it from its
    worker thread; when it falls due the reconcile is queued as an event would be, with no
    thread of its own. Forgetting the SmolServe cancels it."""

    async def scenario() -> None:
        reconciler = Recorded()
        await reconciler.submit(KEY, {})
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        await asyncio.to_thread(reconciler._recheck, KEY, {}, 0.2)  # as a reconcile does
        await asyncio.to_thread(reconciler._recheck, ("ns", "other"), {}, 0.2)
        await asyncio.sleep(0.05)
        assert reconciler.tracked() == 2  # the two deadlines
        assert [t for t in threading.enumerate() if isinstance(t, threading.Timer)] == timers
        await asyncio.to_thread(reconciler.forget, ("ns", "other"))
        await asyncio.sleep(0.5)
        while not reconciler.idle():
            await asyncio.sleep(0.01)
        assert reconciler.calls == [False, False]  # the first submit, then KEY's deadline only
        assert reconciler.tracked() == 0

    asyncio.run(scenario())
