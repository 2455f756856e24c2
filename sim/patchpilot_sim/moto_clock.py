"""moto on the simulated clock: its Step Functions engine's threads, waits and sleeps, and SQS's timers.

moto's ASL engine (``moto.stepfunctions.parser``) waits with ``threading.Event.wait(timeout)`` (Wait states,
TimeoutSeconds, HeartbeatSeconds, callbacks), sleeps with ``time.sleep`` (Retry intervals), reads ``time.time`` and
``datetime.now`` (Wait's SecondsPath re-entry, TimestampPath) and runs states on ``threading.Thread``s. moto's SQS
reads ``unix_time``/``unix_time_millis`` for visibility timeouts and delays. `MotoClockPatch` swaps those module
attributes for clock-aware ones while a runtime runs (never editing site-packages) and puts them back at stop, so
Wait, TimeoutSeconds, HeartbeatSeconds, Retry intervals and SQS visibility timeouts run in simulated seconds exactly
as the ASL and the queue attributes say (AWS Step Functions developer guide, "Wait", "Task" TimeoutSeconds /
HeartbeatSeconds, "Handling errors" Retry; Amazon SQS developer guide, "Visibility timeout").
"""

from __future__ import annotations

import datetime as _datetime
import importlib
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from patchpilot_sim.clock import ClockEvent, SimClock
from patchpilot_sim.lambdas import CURRENT_FUNCTION

_SFN = "moto.stepfunctions.parser."
THREADING_MODULES = [
    _SFN + "asl.component.program.program",
    _SFN + "asl.component.state.exec.execute_state",
    _SFN + "asl.component.state.exec.state_map.iteration.inline_iteration_component",
    _SFN + "asl.component.state.exec.state_map.iteration.job",
    _SFN + "asl.component.state.exec.state_map.iteration.itemprocessor.map_run_record",
    _SFN + "asl.component.state.exec.state_parallel.branch_worker",
    _SFN + "asl.component.state.exec.state_parallel.branches_decl",
    _SFN + "asl.component.state.exec.state_task.service.state_task_service_callback",
    _SFN + "asl.eval.environment",
    _SFN + "asl.eval.count_down_latch",
]
THREAD_NAME_MODULES = [_SFN + "asl.component.state.exec.execute_state", _SFN + "backend.execution_worker"]
EVENT_NAME_MODULES = [_SFN + "asl.eval.callback.callback"]
TIME_MODULES = [
    _SFN + "asl.component.common.retry.retrier_decl",
    _SFN + "asl.component.state.wait.wait_function.wait_function",
    _SFN + "asl.component.state.exec.state_task.service.state_task_service_callback",
]
DATETIME_MODULES = [_SFN + "asl.component.state.wait.wait_function.timestamp"]
SQS_MODELS = "moto.sqs.models"


class _ClockCondition:
    """`threading.Condition` whose `wait` parks on the simulated clock (moto's CountDownLatch, for Parallel)."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._event = ClockEvent(clock, label="condition")

    def acquire(self) -> bool:
        return self._clock.cond.acquire()

    def release(self) -> None:
        self._clock.cond.release()

    def __enter__(self) -> _ClockCondition:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def wait(self, timeout: float | None = None) -> bool:
        self._event.clear()
        return self._event.wait(timeout)

    def notify_all(self) -> None:
        self._event.set()

    notify = notify_all


def clock_thread_class(clock: SimClock) -> type[threading.Thread]:
    """`threading.Thread` counted busy from `start` until it ends or parks; `join` is a clock-aware wait."""

    class ClockThread(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._finished = ClockEvent(clock, label=f"join {self.name}")

        def start(self) -> None:
            clock.handoff()
            try:
                super().start()
            except BaseException:
                clock.done()
                raise

        def run(self) -> None:
            clock.mark_counted(True)
            try:
                super().run()
            finally:
                self._finished.set()
                clock.done()

        def join(self, timeout: float | None = None) -> None:
            self._finished.wait(timeout)

        def is_alive(self) -> bool:
            return self._started.is_set() and not self._finished.is_set()  # type: ignore[attr-defined]

    return ClockThread


class _Namespace(ModuleType):
    """A module stand-in: the given attributes, everything else from the real module."""

    def __init__(self, real: ModuleType, **overrides: Any) -> None:
        super().__init__(real.__name__)
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _now_factory(clock: SimClock, whole_seconds: bool = True) -> type[_datetime.datetime]:
    class SimulatedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz: _datetime.tzinfo | None = None) -> SimulatedDatetime:
            # moto subtracts it from the Wait's Timestamp (whole seconds, parsed naive UTC) and truncates the
            # difference to whole seconds: the present to the second keeps the wait from ending before the Timestamp.
            moment = clock.now().replace(microsecond=0) if whole_seconds else clock.now()
            moment = moment.replace(tzinfo=None) if tz is None else moment.astimezone(tz)
            return cls(
                moment.year,
                moment.month,
                moment.day,
                moment.hour,
                moment.minute,
                moment.second,
                moment.microsecond,
                moment.tzinfo,
            )

    return SimulatedDatetime


class MotoClockPatch:
    """Install (and undo) the clock-aware module attributes in moto's Step Functions engine and SQS."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._saved: list[tuple[ModuleType, str, Any]] = []

    def _set(self, module_name: str, attribute: str, value: Any) -> None:
        module = importlib.import_module(module_name)
        self._saved.append((module, attribute, getattr(module, attribute)))
        setattr(module, attribute, value)

    def install(self) -> None:
        clock = self.clock
        thread_class = clock_thread_class(clock)

        def event(*_: Any, **__: Any) -> ClockEvent:
            return ClockEvent(clock, label="moto event")

        def condition(*_: Any, **__: Any) -> _ClockCondition:
            return _ClockCondition(clock)

        shim_threading = _Namespace(threading, Thread=thread_class, Event=event, Condition=condition)
        shim_time = _Namespace(time, sleep=clock.sleep, time=clock.epoch_seconds)
        shim_datetime = _Namespace(_datetime, datetime=_now_factory(clock))
        for name in THREADING_MODULES:
            self._set(name, "threading", shim_threading)
        for name in THREAD_NAME_MODULES:
            self._set(name, "Thread", thread_class)
        for name in EVENT_NAME_MODULES:
            self._set(name, "Event", event)
        for name in TIME_MODULES:
            self._set(name, "time", shim_time)
        for name in DATETIME_MODULES:
            self._set(name, "datetime", shim_datetime)
        millis: Callable[..., float] = lambda dt=None: self._unix_time(dt) * 1000.0  # noqa: E731
        self._set(SQS_MODELS, "unix_time", self._unix_time)
        self._set(SQS_MODELS, "unix_time_millis", millis)

    def _unix_time(self, dt: _datetime.datetime | None = None) -> float:
        if dt is not None:
            return dt.replace(tzinfo=_datetime.UTC).timestamp() if dt.tzinfo is None else dt.timestamp()
        return self.clock.epoch_seconds()

    def uninstall(self) -> None:
        while self._saved:
            module, attribute, value = self._saved.pop()
            setattr(module, attribute, value)


class ProductClockPatch(MotoClockPatch):
    """The product's handlers read the simulated clock: ``time.time()`` and ``datetime.now()`` in ``patchpilot.*``.

    In AWS the handlers' wall clock is the world's; in the simulation the world's clock is the simulated one (a
    heartbeat interval, a resume lease or an approval's age is simulated seconds). Module attributes are swapped
    in every imported ``patchpilot`` module, like moto's; the handler code is the production code.
    """

    def install(self) -> None:
        simulated_datetime = _now_factory(self.clock, whole_seconds=False)
        shim_time = _Namespace(time, time=self.clock.epoch_seconds)
        shim_datetime = _Namespace(_datetime, datetime=simulated_datetime)
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "patchpilot" or name.startswith("patchpilot.")):
                continue
            if getattr(module, "time", None) is time:
                self._set(name, "time", shim_time)
            if getattr(module, "datetime", None) is _datetime.datetime:
                self._set(name, "datetime", simulated_datetime)
            elif getattr(module, "datetime", None) is _datetime:
                self._set(name, "datetime", shim_datetime)


class _BackoffCondition(threading.Condition):
    """botocore's client rate limiter's Condition: a timed wait is backoff time of the calling invocation."""

    def __init__(self, lock: Any = None, *, backoff: Callable[[float], None]) -> None:
        super().__init__(lock)
        self._backoff = backoff

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return super().wait()
        self._backoff(timeout)
        return False


class SdkBackoffPatch(MotoClockPatch):
    """botocore's retry backoff and client-side rate limiting in simulated seconds, on the invocation's own timeline.

    On AWS, botocore sleeps between the attempts of a call (standard mode: exponential backoff with full jitter,
    at most 1+2+4+8+16 = 31 s over 5 retries; adaptive mode also waits for its token bucket), while the world, and a
    throttling storm, go on (boto3 guide "Retries",
    https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html). In this runtime a handler runs while
    the rest of the simulation waits (in-process work costs no simulated time), holding the process environment; it
    cannot park on the clock. So its SDK's waits are counted, not slept: ``botocore.endpoint``'s ``time.sleep`` and
    the token bucket's waits add to the invocation's backoff (``CURRENT_FUNCTION.backoff_seconds``), and the
    invocation's timeline (`invocation_seconds`: the simulated present plus the backoff so far) is the clock the
    fault injector's storms and the token bucket read. An attempt after 31 s of backoff is 31 simulated seconds
    later, as on AWS; no real second is spent. The invocation's duration is that backoff: a Task of the state machine
    waits it out on the clock before it sees the result (`LocalRuntime._invoke_lambda`). Outside an invocation a
    thread counted by the clock sleeps on it; the driver (which may not park) does not wait.
    """

    def __init__(self, clock: SimClock) -> None:
        super().__init__(clock)
        self._last_epoch = 0.0

    def install(self) -> None:
        clock = self.clock

        def sleep(seconds: float) -> None:
            if seconds <= 0:
                return
            if getattr(CURRENT_FUNCTION, "name", None) is not None:
                CURRENT_FUNCTION.backoff_seconds = invocation_backoff() + seconds
            elif clock.counted():
                clock.sleep(seconds)

        def condition(lock: Any = None) -> _BackoffCondition:
            return _BackoffCondition(lock, backoff=sleep)

        self._set("botocore.endpoint", "time", _Namespace(time, sleep=sleep))
        bucket_time = _Namespace(time, sleep=sleep, time=self._monotonic_epoch)
        self._set("botocore.retries.bucket", "time", bucket_time)
        self._set("botocore.retries.bucket", "threading", _Namespace(threading, Condition=condition))

    def invocation_seconds(self) -> float:
        """Simulated seconds since the clock's start on the calling invocation's timeline (see the class)."""
        return self.clock.elapsed_seconds() + invocation_backoff()

    def _monotonic_epoch(self) -> float:
        # The token bucket measures refills between calls of different invocations: never let its time go back.
        self._last_epoch = max(self._last_epoch, self.clock.start.timestamp() + self.invocation_seconds())
        return self._last_epoch


def invocation_backoff() -> float:
    """The SDK backoff the calling thread's invocation has spent so far (0 outside an invocation)."""
    return float(getattr(CURRENT_FUNCTION, "backoff_seconds", 0.0) or 0.0)
