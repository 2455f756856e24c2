"""Discrete-event simulated time: a virtual clock that moves only when nothing in the simulation can run.

Simulated time is a number. Work (a thread started, an event or message handed over, a waiter woken, a timer
fired) is counted *busy* by whoever hands it over, before it can go idle itself; it stops counting when the work
ends or its thread blocks in a clock-aware wait (`ClockEvent.wait`, `sleep`). Time advances only inside
`SimClock.run_until`, called by the one driver (a test, the CLI, `simulate`): when the count is zero and no ready
work is left, the driver checks its predicate, then moves the clock to the earliest timer and fires it. So
in-process latency costs no simulated time, and simulated waits cost no real time: a 24-hour Wait state is 24
simulated hours and a few milliseconds.

Work sources (the event router, the SQS event source mappings, SNS subscriptions) are drained by the driver at
quiescent points, on its own thread; timers run there too. Nothing polls in real time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# A guard against a hung run: the longest real time work may stay busy without a quiescent point.
DEFAULT_REAL_TIMEOUT_SECONDS = 600.0


class SimulationDeadlock(RuntimeError):
    """Nothing can run, no timer is left, and the driver's condition is still false."""


class SimulationStalled(RuntimeError):
    """Work was counted busy for longer than the real-time guard allows (a thread blocked outside the clock)."""


@dataclass(order=True)
class Timer:
    """An action due at a simulated moment (seconds since the clock's start)."""

    due: float
    order: int
    action: Callable[[], None] = field(compare=False)
    label: str = field(default="", compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(eq=False)
class _Waiter:
    counted: bool
    label: str
    woken: bool = False
    timer: Timer | None = None


class SimClock:
    """Virtual simulated time and the busy count that decides when it may move.

    Parameters
    ----------
    start
        The simulated moment the clock starts at (default: the real present, to the second: records the handlers
        stamp with the real clock then never lie ahead of the simulation).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC).replace(microsecond=0)
        self._elapsed = 0.0
        self.cond = threading.Condition()
        self._busy = 0
        self._timers: list[Timer] = []
        self._order = itertools.count()
        self._local = threading.local()
        self._waiters: set[_Waiter] = set()
        self._sources: list[Callable[[], bool]] = []
        self._driver = threading.Lock()
        self.errors: list[BaseException] = []

    # -- reading time ----------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._elapsed)

    def elapsed_seconds(self) -> float:
        """Simulated seconds since the clock started."""
        return self._elapsed

    def epoch_seconds(self) -> float:
        """The simulated present as a POSIX timestamp (what `time.time()` means inside the simulation)."""
        return self.start.timestamp() + self._elapsed

    # -- busy accounting -------------------------------------------------------------------------------------------
    def counted(self) -> bool:
        """Whether the calling thread is counted busy (a thread started through the clock)."""
        return bool(getattr(self._local, "counted", False))

    def mark_counted(self, counted: bool) -> None:
        self._local.counted = counted

    def handoff(self, n: int = 1) -> None:
        """Count `n` units of work busy: call before handing the work over (the receiver calls `done`)."""
        with self.cond:
            self._busy += n

    def done(self) -> None:
        with self.cond:
            self._busy -= 1
            if self._busy <= 0:
                self.cond.notify_all()

    def busy(self) -> int:
        return self._busy

    # -- timers ----------------------------------------------------------------------------------------------------
    def call_at(self, elapsed: float, action: Callable[[], None], label: str = "") -> Timer:
        """Run `action` on the driver when simulated time reaches `elapsed` (never earlier than the present)."""
        with self.cond:
            timer = Timer(max(elapsed, self._elapsed), next(self._order), action, label)
            heapq.heappush(self._timers, timer)
            return timer

    def call_later(self, seconds: float, action: Callable[[], None], label: str = "") -> Timer:
        return self.call_at(self._elapsed + max(seconds, 0.0), action, label)

    def pending_timers(self) -> int:
        with self.cond:
            return sum(1 for timer in self._timers if not timer.cancelled)

    # -- clock-aware waiting ----------------------------------------------------------------------------------------
    def block(self, waiter: _Waiter) -> None:
        """Park the calling thread until `waiter` is woken (the caller holds `cond`)."""
        if waiter.counted:
            self._busy -= 1
            if self._busy <= 0:
                self.cond.notify_all()
        self._waiters.add(waiter)
        try:
            while not waiter.woken:
                self.cond.wait()
        finally:
            self._waiters.discard(waiter)

    def wake(self, waiter: _Waiter) -> None:
        """Hand busy to a parked waiter (the caller holds `cond`)."""
        if waiter.woken:
            return
        waiter.woken = True
        if waiter.counted:
            self._busy += 1
        if waiter.timer is not None:
            waiter.timer.cancel()
        self.cond.notify_all()

    def new_waiter(self, label: str) -> _Waiter:
        return _Waiter(counted=self.counted(), label=label)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of simulated time (a thread started through the clock)."""
        if seconds > 0:
            ClockEvent(self, label="sleep").wait(seconds)

    # -- the driver --------------------------------------------------------------------------------------------------
    def add_work_source(self, source: Callable[[], bool]) -> None:
        """Register ready work the driver drains at quiescent points: `source()` does one unit and says if it did."""
        self._sources.append(source)

    def run_until(
        self,
        predicate: Callable[[], bool],
        max_simulated_seconds: float | None = None,
        real_timeout: float = DEFAULT_REAL_TIMEOUT_SECONDS,
    ) -> bool:
        """Let the simulation run until `predicate()` holds at a quiescent point; False when the limit came first.

        Time advances only in here. The predicate runs on the calling thread while nothing else runs.
        Raises SimulationDeadlock when nothing can run, no timer is left, the predicate is false and no limit was
        given (with a limit, the simulation idles until it), and SimulationStalled when work stays busy for
        `real_timeout` real seconds without a quiescent point (a thread blocked outside the clock's accounting).
        """
        limit = math.inf if max_simulated_seconds is None else self._elapsed + max(max_simulated_seconds, 0.0)
        if self.counted():
            raise RuntimeError("run_until called from inside the simulation")
        with self._driver:
            while True:
                self._await_quiescence(time.monotonic() + real_timeout)
                if predicate():
                    return True
                if self._run_ready():
                    continue
                with self.cond:
                    if self._busy > 0:
                        continue
                    timer = self._earliest()
                    if timer is None and limit == math.inf:
                        raise SimulationDeadlock(self.describe_open_waits())
                    if timer is None or timer.due > limit:
                        self._elapsed = max(self._elapsed, limit)
                        return False
                    self._elapsed = max(self._elapsed, timer.due)

    def advance(self, seconds: float, real_timeout: float = DEFAULT_REAL_TIMEOUT_SECONDS) -> None:
        """Let `seconds` of simulated time pass, running everything due meanwhile."""
        self.run_until(lambda: False, max_simulated_seconds=seconds, real_timeout=real_timeout)

    def quiesce(self, real_timeout: float = DEFAULT_REAL_TIMEOUT_SECONDS) -> None:
        """Run what is ready now without moving time (work sources and timers due at the present)."""
        self.run_until(lambda: False, max_simulated_seconds=0.0, real_timeout=real_timeout)

    def describe_open_waits(self) -> str:
        with self.cond:
            waits = sorted(waiter.label for waiter in self._waiters)
        return f"the simulation is idle with no timer left; open waits: {', '.join(waits) or 'none'}"

    def _await_quiescence(self, deadline: float) -> None:
        with self.cond:
            while self._busy > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SimulationStalled(
                        f"{self._busy} unit(s) of work busy past the real-time guard at {self.now():%Y-%m-%d %H:%M:%S}"
                    )
                self.cond.wait(min(remaining, 1.0))

    def _earliest(self) -> Timer | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0] if self._timers else None

    def _run_ready(self) -> bool:
        """Fire one timer due now, else drain one unit of a work source; True if anything ran."""
        with self.cond:
            timer = self._earliest()
            if timer is not None and timer.due <= self._elapsed:
                heapq.heappop(self._timers)
            else:
                timer = None
        if timer is not None:
            self._guarded(timer.action)
            return True
        for source in self._sources:
            try:
                if source():
                    return True
            except Exception as error:
                self.errors.append(error)
                return True
        return False

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:
            self.errors.append(error)


class ClockEvent:
    """`threading.Event` on the simulated clock: `wait(timeout)` is an idle wait with a simulated-time timer."""

    def __init__(self, clock: SimClock, label: str = "event") -> None:
        self._clock = clock
        self._label = label
        self._flag = False
        self._parked: list[_Waiter] = []

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set  # noqa: N815 (threading.Event's old name)

    def set(self) -> None:
        with self._clock.cond:
            self._flag = True
            for waiter in self._parked:
                self._clock.wake(waiter)
            self._parked.clear()

    def clear(self) -> None:
        with self._clock.cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        clock = self._clock
        with clock.cond:
            if self._flag:
                return True
            if timeout is not None and timeout <= 0:
                return False
            waiter = clock.new_waiter(self._label if timeout is None else f"{self._label} ({timeout:g} s)")
            self._parked.append(waiter)
            if timeout is not None:
                waiter.timer = clock.call_later(timeout, lambda: self._time_out(waiter), label=self._label)
            clock.block(waiter)
            return self._flag

    def _time_out(self, waiter: _Waiter) -> None:
        with self._clock.cond:
            if waiter in self._parked:
                self._parked.remove(waiter)
            self._clock.wake(waiter)


class Scheduler:
    """Runs callbacks after simulated delays, in simulated-time order, on the driver (see `SimClock.run_until`).

    Callbacks run at exactly their due time: a chain of them (wave after wave of a rate-controlled command) keeps
    its place against a deadline scheduled at the start, whatever the machine's speed.
    """

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._paused = False

    @property
    def errors(self) -> list[BaseException]:
        return self.clock.errors

    def anchor(self, chained: bool = False) -> float:
        """The moment delays count from: the simulated present (a running callback's due time is the present)."""
        del chained
        return self.clock.elapsed_seconds()

    def after(
        self, simulated_seconds: float, action: Callable[[], None], chained: bool = False, anchor: float | None = None
    ) -> Timer:
        del chained
        base = self.anchor() if anchor is None else anchor
        return self.clock.call_at(base + max(simulated_seconds, 0.0), action)

    def idle(self) -> bool:
        return self.clock.busy() == 0 and self.clock.pending_timers() == 0

    def stop(self) -> None:
        """Nothing runs without a driver: stopping leaves the pending timers unrun."""
