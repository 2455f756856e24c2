"""metering.py on the local runtime: a command-result event's calls are the command-result function's, all of them."""

import json
from collections import Counter
from pathlib import Path

import pytest

from patchpilot_sim.metering import COMMAND_RESULT_FUNCTION, CallMeter
from patchpilot_sim.runtime import LocalRuntime

pytestmark = pytest.mark.runtime
EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_metering_attributes_command_result_events_and_their_calls() -> None:
    with LocalRuntime() as runtime:
        meter = CallMeter.attach(runtime)
        event = json.loads((EVENTS / "ssm" / "command-invocation-success.json").read_text())
        for _ in range(2):
            assert runtime.router.put_event(event) == 1
        runtime.settle(timeout=60)
        report = meter.report()
        everything = Counter(runtime.aws_calls)
        records = [r for r in runtime.lambdas.records if r.function == COMMAND_RESULT_FUNCTION]
    handled = report["calls_by_function"][COMMAND_RESULT_FUNCTION]
    assert report["command_result"]["events"] == 2
    assert "dynamodb.GetItem" in handled
    # every call the runtime served is in the meter, under the function that made it
    metered: Counter[str] = Counter()
    for calls in report["calls_by_function"].values():
        metered.update(calls)
    assert metered == everything
    table_ops = sum(n for name, n in handled.items() if name.startswith("dynamodb."))
    assert report["per_event"] == {"table_ops": table_ops / 2, "api_calls": sum(handled.values()) / 2}
    # billed time is the handler's own run, timed inside the invocation the runtime records
    assert report["invocations"][COMMAND_RESULT_FUNCTION]["count"] == len(records) >= 1
    assert len(meter.handler_ms[COMMAND_RESULT_FUNCTION]) == len(records)
    assert sum(meter.handler_ms[COMMAND_RESULT_FUNCTION]) <= sum(r.duration_ms for r in records)
    assert report["dynamodb_request_units"]["read"] >= handled["dynamodb.GetItem"] * 0.5
