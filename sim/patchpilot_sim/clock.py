"""A compressed clock and a scheduler that runs simulated-time callbacks in real (compressed) time."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """Simulated time that runs `time_scale` times faster than the wall clock."""

    def __init__(self, time_scale: float, start: datetime | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        # Simulated time starts at the real time: handlers stamp records with the real clock (datetime.now), and
        # the simulation runs ahead of it, never behind.
        self.start = start or datetime.now(UTC).replace(microsecond=0)
        self._t0 = time.monotonic()
        self._jumped = 0.0
        self._held: float | None = None
        self._held_until = 0.0  # real (monotonic) time at which a hold lapses by itself

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_seconds())

    def elapsed_seconds(self) -> float:
        """Simulated seconds since the clock (re)started, jumps included."""
        if self._held is not None and time.monotonic() >= self._held_until:
            self.release()  # nobody released it (an execution of a runtime that stopped): time runs again
        if self._held is not None:
            return self._held
        return (time.monotonic() - self._t0) * self.time_scale + self._jumped

    def hold(self, real_seconds: float = 10.0) -> None:
        """Stop simulated time until `release`, at most `real_seconds` of real time.

        In-process latency between a decision and its command is not simulated time.
        """
        if self._held is None:
            self._held = self.elapsed_seconds()
        self._held_until = time.monotonic() + real_seconds

    def release(self) -> None:
        """Let simulated time run on from where `hold` stopped it."""
        if self._held is not None:
            self._jumped = self._held - (time.monotonic() - self._t0) * self.time_scale
            self._held = None

    def restart(self) -> None:
        """Start counting again from now (setting up the fleet is not part of the cycle)."""
        self.start = max(self.start, datetime.now(UTC).replace(microsecond=0))
        self._t0 = time.monotonic()
        self._jumped = 0.0
        self._held = None

    def set_time_scale(self, time_scale: float) -> None:
        """Run on at another speed from the present simulated moment (callbacks already queued keep their due time)."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        elapsed = self.elapsed_seconds()
        self._t0 = time.monotonic()
        self._jumped = elapsed
        self.time_scale = time_scale

    def jump(self, simulated_seconds: float) -> None:
        """Move simulated time forward at once (a bake is pure waiting: it runs more compressed than the fleet)."""
        if self._held is not None:
            self._held += max(simulated_seconds, 0.0)
        else:
            self._jumped += max(simulated_seconds, 0.0)

    def to_real(self, simulated_seconds: float) -> float:
        return simulated_seconds / self.time_scale


class Scheduler:
    """Runs callbacks after simulated delays on one background thread, in simulated-time order.

    A `chained` callback scheduled by a running callback measures its delay from that callback's due time, not from
    when it ran: on a busy machine callbacks run late, but a chain of them (wave after wave of a rate-controlled
    command) keeps its place against a deadline scheduled at the start (the delivery timeout), so their order never
    depends on machine speed. Unchained callbacks (polling, an operator's answer) count from the real present.
    """

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._busy = 0
        self._running_due: float | None = None  # the due time of the callback now running (scheduler thread)
        self._paused_at: float | None = None  # real time at which `pause` stopped the simulation
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="sim-scheduler", daemon=True)
        self._thread.start()

    def anchor(self, chained: bool = False) -> float:
        """The moment delays count from: the running callback's due time when `chained`, else the real present.

        Pass it to several `after` calls so that their order is that of their delays, however late each call runs.
        """
        running_due = self._running_due if threading.current_thread() is self._thread else None
        return running_due if chained and running_due is not None else time.monotonic()

    def after(
        self, simulated_seconds: float, action: Callable[[], None], chained: bool = False, anchor: float | None = None
    ) -> None:
        base = self.anchor(chained) if anchor is None else anchor
        due = base + self.clock.to_real(max(simulated_seconds, 0.0))
        with self._cv:
            heapq.heappush(self._queue, (due, next(self._counter), action))
            self._cv.notify()

    def pause(self, real_seconds: float = 300.0) -> None:
        """Freeze the simulation where it is: no callback runs and simulated time stands still until `resume`.

        Safe to call from a running callback (an observer of the fleet). The clock's hold lapses by itself after
        `real_seconds` of real time, like any hold; callbacks wait for `resume`.
        """
        with self._cv:
            if self._paused_at is None:
                self._paused_at = time.monotonic()
        self.clock.hold(real_seconds)

    def resume(self) -> None:
        """Run on from where `pause` froze the simulation: every waiting callback keeps its distance to the present."""
        with self._cv:
            if self._paused_at is not None:
                paused = time.monotonic() - self._paused_at
                self._queue = [(due + paused, order, action) for due, order, action in self._queue]
                heapq.heapify(self._queue)
                self._paused_at = None
                self._cv.notify()
        self.clock.release()

    def idle(self) -> bool:
        with self._cv:
            return not self._queue and self._busy == 0

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (
                    self._paused_at is not None or not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    waiting = self._paused_at is not None or not self._queue
                    timeout = None if waiting else max(self._queue[0][0] - time.monotonic(), 0)
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                due, _, action = heapq.heappop(self._queue)
                self._busy += 1
            self._running_due = due
            try:
                action()
            except Exception as error:
                self.errors.append(error)
            finally:
                self._running_due = None
                with self._cv:
                    self._busy -= 1
