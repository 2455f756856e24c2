"""SSM status-change events through the template's EventBridge rule and SQS queue to the real command-result handler."""

import json
from pathlib import Path

import pytest

from patchpilot_sim.runtime import LocalRuntime

pytestmark = pytest.mark.runtime
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(name: str) -> dict[str, object]:
    return json.loads((EVENTS / name).read_text())


def test_command_result_malformed_event_is_redelivered_then_kept_in_dlq() -> None:
    with LocalRuntime() as runtime:
        matched = runtime.router.put_event(_event("ssm/command-invocation-malformed.json"))
        runtime.settle(timeout=60)
        assert matched == 1
        [message] = runtime.dead_letter_messages()
        assert json.loads(message["Body"])["detail"]["command-id"]
        # The queue's redrive policy: received maxReceiveCount (5) times, reported failed each time, then moved.
        attempts = [b for b in runtime.poller.batches if b.function == "CommandResultFunction"]
        assert [(b.size, b.failed) for b in attempts] == [(1, 1)] * 5
        assert "rejected a malformed command status event" in runtime.lambda_log.getvalue()


def test_command_result_batch_reports_only_the_malformed_message_failed() -> None:
    with LocalRuntime() as runtime:
        good = _event("ssm/command-invocation-success.json")
        bad = _event("ssm/command-invocation-malformed.json")
        spec = runtime.lambdas.functions["CommandResultFunction"]
        [source] = spec.sqs_sources
        sqs = runtime.admin.client("sqs")
        url = runtime.resources.queue_urls[source.queue_logical_id]
        # nothing polls while the test does not run the simulation: deliver by hand, one batch of both messages
        for event in (good, bad):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        result = runtime.poller.deliver("CommandResultFunction", source, messages)
        bad_id = next(m["MessageId"] for m in messages if json.loads(m["Body"]) == bad)
        assert result.payload == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
        # the good one was deleted; the bad one comes back after the visibility timeout
        left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
        assert left["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_command_result_unmatched_event_reaches_no_function() -> None:
    with LocalRuntime() as runtime:
        assert runtime.router.put_event(_event("ssm/command-status-success.json")) == 0
        assert runtime.router.unmatched == 1


def test_command_result_rule_keeps_progress_events_out_of_the_queue() -> None:
    # Given the template's rule: final statuses only
    with LocalRuntime() as runtime:
        # When an InProgress and a Success status event of the same invocation are put on the bus
        progress = runtime.router.put_event(_event("ssm/command-invocation-in-progress.json"))
        final = runtime.router.put_event(_event("ssm/command-invocation-success.json"))
        runtime.settle(timeout=60)
        # Then only the final one becomes a queue message for the command-result function
        assert (progress, final) == (0, 1)
        messages = [b.size for b in runtime.poller.batches if b.function == "CommandResultFunction"]
        assert sum(messages) == 1


def test_command_result_mapping_gathers_a_batch_for_its_batching_window() -> None:
    # Given the template's mapping (MaximumBatchingWindowInSeconds 60, BatchSize 100)
    with LocalRuntime() as runtime:
        [source] = runtime.lambdas.functions["CommandResultFunction"].sqs_sources
        assert (source.batching_window_seconds, source.batch_size) == (60, 100)
        event = _event("ssm/command-invocation-success.json")
        start = runtime.clock.elapsed_seconds()

        def results(count: int) -> None:
            for _ in range(count):
                runtime.router.put_event(event)

        # When 3 results arrive, 2 more 40 s later (inside the window), and 2 more 90 s later
        results(3)
        runtime.clock.call_at(start + 40, lambda: results(2), label="test: results 40 s later")
        runtime.clock.call_at(start + 90, lambda: results(2), label="test: results 90 s later")
        runtime.clock.call_at(start + 160, lambda: None, label="test: look again after every window closed")
        runtime.run_until(lambda: runtime.clock.elapsed_seconds() >= start + 160)
        # Then the function got one batch per window, not one per poll
        batches = [b.size for b in runtime.poller.batches if b.function == "CommandResultFunction"]
        assert batches == [5, 2]
