"""Metering of the local runtime: which function made which AWS call, what it cost in DynamoDB request units.

A botocore `after-call` hook on the default session (the session every handler's client and moto's Step Functions
engine use) attributes each call to the Lambda function whose handler runs on the calling thread
(`lambdas.CURRENT_FUNCTION`); calls made outside any handler (the state machine's SDK integrations and its
`lambda:invoke` tasks) are attributed to `STATE_MACHINE`. The command-result function's SQS batches are counted as they
are invoked, so the cost of one command-result event (table operations and API calls) can be compared across fleet
sizes.

DynamoDB request units follow AWS's rules, from the items each call wrote or returned:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html (item sizes, 4 KB reads,
1 KB writes, eventually consistent reads at half a unit, transactional reads and writes at two units) and
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html (attribute sizes).
What the hook cannot see (the size of an item an UpdateItem or DeleteItem touched) counts as the minimum, one unit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3

from patchpilot_sim.lambdas import CURRENT_FUNCTION, InvocationResult

if TYPE_CHECKING:
    from patchpilot_sim.runtime import LocalRuntime

COMMAND_RESULT_FUNCTION = "CommandResultFunction"
STATE_MACHINE = "(state machine)"
PARAMS_KEY = "patchpilot_sim_metered_params"
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def attribute_value_size(value: dict[str, Any]) -> int:
    """The size DynamoDB bills for one attribute value in its wire form (`{"S": ...}`, `{"N": ...}`, ...)."""
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        digits = str(data).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_value_size({kind[0]: element}) for element in data)
    if kind == "L":
        return 3 + sum(attribute_value_size(element) + 1 for element in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + attribute_value_size(element) + 1 for name, element in data.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: dict[str, Any]) -> int:
    """An item's billed size: attribute names (UTF-8) plus values."""
    return sum(len(name.encode()) + attribute_value_size(value) for name, value in item.items())


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def _write_units(item: dict[str, Any] | None) -> int:
    return max(1, math.ceil(item_size(item) / WRITE_UNIT_BYTES)) if item else 1


def read_request_units(operation: str, params: dict[str, Any], response: dict[str, Any]) -> float:
    """Read request units of one DynamoDB read (0 for anything else)."""
    consistent = bool(params.get("ConsistentRead"))
    if operation == "GetItem":
        return _read_units(item_size(response.get("Item") or {}), consistent)
    if operation in ("Query", "Scan"):
        items = response.get("Items") or []
        returned = sum(item_size(item) for item in items)
        scanned = int(response.get("ScannedCount", len(items)))
        evaluated = returned * scanned / len(items) if items else 0  # a filter drops items DynamoDB still read
        return _read_units(math.ceil(evaluated), consistent)
    if operation == "BatchGetItem":
        tables = response.get("Responses") or {}
        return sum(_read_units(item_size(item), consistent) for items in tables.values() for item in items)
    if operation == "TransactGetItems":
        return sum(2 * _read_units(item_size(entry.get("Item") or {}), True) for entry in response.get("Responses", []))
    return 0.0


def write_request_units(operation: str, params: dict[str, Any]) -> float:
    """Write request units of one DynamoDB write (0 for anything else); a transactional write counts twice."""
    if operation == "PutItem":
        return _write_units(params.get("Item"))
    if operation in ("UpdateItem", "DeleteItem"):
        return 1
    if operation == "BatchWriteItem":
        requests = [request for batch in params.get("RequestItems", {}).values() for request in batch]
        return sum(_write_units((request.get("PutRequest") or {}).get("Item")) for request in requests)
    if operation == "TransactWriteItems":
        return sum(2 * _write_units((entry.get("Put") or {}).get("Item")) for entry in params.get("TransactItems", []))
    return 0.0


@dataclass
class CallMeter:
    """Counts every AWS call of a local run by function, and the command-result function's events."""

    calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    read_units: float = 0.0
    write_units: float = 0.0
    write_units_by_call: dict[str, defaultdict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    command_result_events: int = 0
    handler_ms: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runtime: LocalRuntime | None = None

    @classmethod
    def attach(cls, runtime: LocalRuntime) -> CallMeter:
        """Meter a started runtime: register the hook before any handler creates its clients."""
        meter = cls(_runtime=runtime)
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-parameter-build.dynamodb.*", meter.remember_params)
        events.register("after-call.*.*", meter.on_call)
        runtime.lambdas.on_invoke.append(meter.on_invoke)
        meter._time_handlers(getattr(runtime.lambdas, "_handlers", None))
        return meter

    def _time_handlers(self, handlers: object) -> None:
        """Time each loaded handler itself: an invocation record also holds the wait for the in-process lock.

        Lambda bills the handler's run, so that is the duration the cost model needs. Without the handlers to wrap
        (another runtime), `invocations()` falls back to the records.
        """
        if not isinstance(handlers, dict):
            return
        for name, handler in list(handlers.items()):
            handlers[name] = self._timed(name, handler)

    def _timed(self, function: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def timed(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                with self._lock:
                    self.handler_ms.setdefault(function, []).append(elapsed_ms)

        return timed

    @staticmethod
    def remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Keep a DynamoDB call's parameters for its `after-call` (written items are sized from them)."""
        context[PARAMS_KEY] = dict(params)

    def on_call(self, event_name: str, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """The botocore `after-call` hook: one call made (and answered, successfully or not)."""
        service, operation = event_name.split(".", 2)[1:]
        function = getattr(CURRENT_FUNCTION, "name", None) or STATE_MACHINE
        reads = writes = 0.0
        if service == "dynamodb":
            params = context.get(PARAMS_KEY, {})
            failed = "Error" in parsed
            reads = 0.0 if failed else read_request_units(operation, params, parsed)
            writes = write_request_units(operation, params)  # a failed condition still consumes its write units
        with self._lock:
            self.calls[function][f"{service}.{operation}"] += 1
            self.read_units += reads
            self.write_units += writes
            if writes:
                self.write_units_by_call[function][f"{service}.{operation}"] += writes

    def on_invoke(self, function: str, event: Any, result: InvocationResult) -> None:
        """A function invocation ended: count the command-result function's events (the records of its batch)."""
        if function == COMMAND_RESULT_FUNCTION and isinstance(event, dict):
            with self._lock:
                self.command_result_events += len(event.get("Records") or [])

    def invocations(self) -> dict[str, dict[str, float]]:
        """Per function: invocations, billed milliseconds (each invocation rounded up to 1 ms) and seconds."""
        with self._lock:
            durations = [(name, ms) for name, values in self.handler_ms.items() for ms in values]
        if not durations and self._runtime is not None:
            durations = [(record.function, record.duration_ms) for record in list(self._runtime.lambdas.records)]
        rows: dict[str, dict[str, float]] = {}
        for function, duration_ms in durations:
            row = rows.setdefault(function, {"count": 0, "billed_ms": 0, "seconds": 0.0})
            row["count"] += 1
            row["billed_ms"] += math.ceil(duration_ms)
            row["seconds"] += duration_ms / 1000
        return {name: {**row, "seconds": round(row["seconds"], 3)} for name, row in sorted(rows.items())}

    def report(self) -> dict[str, Any]:
        """What the run cost, for summary.json and the benchmark."""
        with self._lock:
            calls = {function: dict(sorted(counter.items())) for function, counter in sorted(self.calls.items())}
            events = self.command_result_events
            units = {"read": round(self.read_units, 1), "write": round(self.write_units, 1)}
            writes = {
                function: {call: round(wru, 1) for call, wru in sorted(counter.items())}
                for function, counter in sorted(self.write_units_by_call.items())
            }
        handled = calls.get(COMMAND_RESULT_FUNCTION, {})
        table_ops = sum(n for name, n in handled.items() if name.startswith("dynamodb."))
        api_calls = sum(handled.values())
        invocations = self.invocations()
        seconds = invocations.get(COMMAND_RESULT_FUNCTION, {}).get("seconds", 0.0)
        return {
            "calls_by_function": calls,
            "invocations": invocations,
            "dynamodb_request_units": units,
            "dynamodb_write_units_by_function": writes,
            "command_result": {
                "events": events,
                "table_ops": table_ops,
                "api_calls": api_calls,
                "seconds": seconds,
            },
            "per_event": {
                "table_ops": _ratio(table_ops, events),
                "api_calls": _ratio(api_calls, events),
            },
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(round(Decimal(numerator) / Decimal(denominator), 3)) if denominator else 0.0
