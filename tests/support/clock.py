"""The emulator's clock: wall-clock time that a test can move forward, with timers in its time.

Controllers wait in real time for what takes real time on a cluster (a pod's readiness delay,
the garbage collector's delay) and in clock time for what takes minutes (a Deployment's
``progressDeadlineSeconds``, a Job's ``activeDeadlineSeconds``): ``advance(600)`` makes ten
minutes pass at once, firing every timer that falls due. Timers run on the event loop that
scheduled them; all of this runs on the emulator's loop.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable


class Timer:
    """A callback due at a clock time; ``cancel()`` drops it."""

    def __init__(self, clock: Clock, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(max(0.0, self.when - self._clock.now()), self._fire)

    def _fire(self) -> None:
        if self in self._clock._timers:
            del self._clock._timers[self]
            self.callback()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._clock._timers.pop(self, None)


class Clock:
    """Seconds since the epoch, plus however far a test has advanced the clock."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._timers: dict[Timer, None] = {}  # ordered, hashable by identity

    def now(self) -> float:
        return time.time() + self.offset

    def stamp(self, at: float | None = None) -> str:
        """RFC 3339 with seconds, as the API server writes timestamps."""
        moment = datetime.datetime.fromtimestamp(self.now() if at is None else at, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def parse(stamp: str) -> float:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self, when, callback)
        self._timers[timer] = None
        timer._arm()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.now() + delay, callback)

    def advance(self, seconds: float) -> None:
        """Move the clock forward; fire what fell due, in order, and re-arm the rest."""
        self.offset += seconds
        for timer in sorted(self._timers, key=lambda t: t.when):
            if timer._handle is not None:
                timer._handle.cancel()
            if timer.when <= self.now():
                timer._fire()
            elif timer in self._timers:
                timer._arm()
