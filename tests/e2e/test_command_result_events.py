"""SSM status-change events through the template's EventBridge rule to the real command-result handler."""

import json
from pathlib import Path

import pytest

from patchpilot_sim.runtime import LocalRuntime

pytestmark = pytest.mark.runtime
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(name: str) -> dict[str, object]:
    return json.loads((EVENTS / name).read_text())


def test_command_result_malformed_event_is_rejected_with_reason_and_kept_in_dlq() -> None:
    with LocalRuntime() as runtime:
        matched = runtime.router.put_event(_event("ssm/command-invocation-malformed.json"))
        runtime.settle()
        assert matched == 1
        [letter] = runtime.router.dead_letters
        assert letter.error_type == "ValidationError"
        assert "instance-id" in letter.error_message
        assert "status" in letter.error_message
        [message] = runtime.dead_letter_messages()
        assert message["MessageAttributes"]["ErrorCode"]["StringValue"] == "ValidationError"
        assert json.loads(message["Body"])["requestPayload"]["detail"]["command-id"]
        # Lambda's async retries ran (1 + MaximumRetryAttempts from the template) before the event was kept.
        attempts = [r for r in runtime.lambdas.records if r.function == "CommandResultFunction"]
        assert len(attempts) == 3


def test_command_result_event_for_foreign_command_is_ignored_without_error() -> None:
    with LocalRuntime() as runtime:
        results = runtime.router.deliver_now(_event("ssm/command-invocation-success.json"))
        [(spec, result)] = results
        assert spec.logical_id == "CommandResultFunction"
        assert not result.failed
        assert result.payload["action"] == "ignored_foreign_command"


def test_command_result_unmatched_event_reaches_no_function() -> None:
    with LocalRuntime() as runtime:
        assert runtime.router.put_event(_event("ssm/command-status-success.json")) == 0
        assert runtime.router.unmatched == 1
