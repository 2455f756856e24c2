"""metering.py on moto: botocore's after-call hook attributes each call to the function running on the thread."""

import threading
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest

from patchpilot_sim.lambdas import CURRENT_FUNCTION, InvocationRecord, InvocationResult
from patchpilot_sim.metering import COMMAND_RESULT_FUNCTION, STATE_MACHINE, CallMeter
from tests.functional.aws_fixtures import REGION, RUNS_TABLE


@pytest.fixture
def meter(aws: None, monkeypatch: pytest.MonkeyPatch) -> CallMeter:
    """A meter on a fresh default session (the one the runtime's handlers use), with two recorded invocations."""
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(region_name=REGION)
    lambdas = SimpleNamespace(
        on_invoke=[],
        records=[
            InvocationRecord(COMMAND_RESULT_FUNCTION, 10.2, None),
            InvocationRecord(COMMAND_RESULT_FUNCTION, 4.0, None),
        ],
    )
    return CallMeter.attach(cast(Any, SimpleNamespace(lambdas=lambdas)))


def _as_function(name: str | None) -> None:
    CURRENT_FUNCTION.name = name


def test_metering_attributes_calls_to_the_running_function(meter: CallMeter) -> None:
    dynamodb, sns = boto3.client("dynamodb"), boto3.client("sns")
    key = {"pk": {"S": "RUN#m"}, "sk": {"S": "A"}}
    _as_function(COMMAND_RESULT_FUNCTION)
    try:
        dynamodb.put_item(TableName=RUNS_TABLE, Item={**key, "note": {"S": "x" * 1_500}})
        dynamodb.get_item(TableName=RUNS_TABLE, Key=key, ConsistentRead=True)
        dynamodb.get_item(TableName=RUNS_TABLE, Key=key)
        sns.list_topics()
    finally:
        _as_function(None)
    sns.list_topics()  # outside any handler: the state machine's SDK integrations
    event = {"Records": [{"messageId": "1"}, {"messageId": "2"}, {"messageId": "3"}, {"messageId": "4"}]}
    meter.on_invoke(COMMAND_RESULT_FUNCTION, event, InvocationResult(COMMAND_RESULT_FUNCTION, None))
    meter.on_invoke("NotifyFunction", event, InvocationResult("NotifyFunction", None))  # not a command result

    report = meter.report()
    assert report["calls_by_function"] == {
        STATE_MACHINE: {"sns.ListTopics": 1},
        COMMAND_RESULT_FUNCTION: {"dynamodb.GetItem": 2, "dynamodb.PutItem": 1, "sns.ListTopics": 1},
    }
    assert report["command_result"] == {"events": 4, "table_ops": 3, "api_calls": 4, "seconds": 0.014}
    assert report["per_event"] == {"table_ops": 0.75, "api_calls": 1.0}
    # a 1.5 KB put = 2 WRU; a ~1.5 KB item read strongly consistent = 1 RRU, eventually consistent = 0.5 RRU
    assert report["dynamodb_request_units"] == {"read": 1.5, "write": 2.0}
    assert report["dynamodb_write_units_by_function"] == {COMMAND_RESULT_FUNCTION: {"dynamodb.PutItem": 2.0}}
    assert report["invocations"] == {COMMAND_RESULT_FUNCTION: {"count": 2, "billed_ms": 15, "seconds": 0.014}}


def test_metering_counts_a_failed_conditional_write(meter: CallMeter) -> None:
    dynamodb = boto3.client("dynamodb")
    key = {"pk": {"S": "RUN#m"}, "sk": {"S": "B"}}
    dynamodb.put_item(TableName=RUNS_TABLE, Item=key)
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException, match="conditional request failed"):
        dynamodb.put_item(TableName=RUNS_TABLE, Item=key, ConditionExpression="attribute_not_exists(pk)")
    report = meter.report()
    assert report["calls_by_function"][STATE_MACHINE] == {"dynamodb.PutItem": 2}
    assert report["dynamodb_request_units"] == {"read": 0.0, "write": 2.0}
    assert report["dynamodb_write_units_by_function"] == {STATE_MACHINE: {"dynamodb.PutItem": 2.0}}


def test_metering_keeps_threads_apart(meter: CallMeter) -> None:
    sns = boto3.client("sns")
    ready, done = threading.Event(), threading.Event()

    def handler_thread() -> None:
        _as_function("NotifyFunction")
        ready.set()
        done.wait(5)
        sns.list_topics()
        _as_function(None)

    worker = threading.Thread(target=handler_thread)
    worker.start()
    ready.wait(5)
    sns.list_topics()  # this thread runs no handler, while the other one does
    done.set()
    worker.join(5)
    assert meter.report()["calls_by_function"] == {
        STATE_MACHINE: {"sns.ListTopics": 1},
        "NotifyFunction": {"sns.ListTopics": 1},
    }


def test_metering_times_each_loaded_handler_itself(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(region_name=REGION)

    def succeeds(event: Any, context: Any) -> Any:
        return {"seen": event}

    def fails(event: Any, context: Any) -> Any:
        raise RuntimeError("handler broke")

    handlers = {"Good": succeeds, "Bad": fails}
    lambdas = SimpleNamespace(on_invoke=[], records=[InvocationRecord("Good", 99_999.0, None)], _handlers=handlers)
    meter = CallMeter.attach(cast(Any, SimpleNamespace(lambdas=lambdas)))
    assert handlers["Good"]({"a": 1}, None) == {"seen": {"a": 1}}
    with pytest.raises(RuntimeError, match="handler broke"):
        handlers["Bad"]({}, None)
    invocations = meter.invocations()
    assert {name: row["count"] for name, row in invocations.items()} == {"Bad": 1, "Good": 1}
    assert invocations["Good"]["billed_ms"] < 99_999  # the handler's time, not the record's
