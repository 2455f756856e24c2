"""Lambda's SQS event source mapping, in-process: poll, invoke the function with a batch, delete what it processed.

Modelled from AWS's documentation, on moto's SQS (which keeps visibility timeouts, receive counts and the redrive
policy: a message received `maxReceiveCount` times moves to the dead-letter queue on its next receive):

- Batching: up to `BatchSize` messages per invocation (ReceiveMessage returns at most 10 per call, so the mapping
  receives repeatedly). With `MaximumBatchingWindowInSeconds`, "Lambda continues to read messages until the
  batching window expires, the batch size is reached, or payload reaches 6 MB": the first visible message opens a
  window, and the batch is delivered when the window has passed (a timer of the simulated clock) or a whole batch
  is visible. https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html ("Batching behavior")
- Polling: Lambda polls continuously (long polling), so a message is taken as soon as it is visible. Here the
  simulation's driver polls at every quiescent point (`poll_once`, a work source of the simulated clock), and a
  message that becomes visible later (visibility timeout, delay; moto's SQS runs on the simulated clock) sets a
  timer at that moment, so simulated time stops there and the poll takes it.
  https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
- Event shape: `{"Records": [{"messageId", "receiptHandle", "body", "attributes": {"ApproximateReceiveCount", ...},
  "messageAttributes", "md5OfBody", "eventSource": "aws:sqs", "eventSourceARN", "awsRegion"}]}`.
  https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
- Errors: a function error returns the WHOLE batch to the queue (visible again after the visibility timeout). With
  `ReportBatchItemFailures`, the function returns `{"batchItemFailures": [{"itemIdentifier": messageId}]}`; Lambda
  deletes every other message. An empty list or null means all succeeded; a response that names an unknown or empty
  identifier, or is not of that shape, fails the whole batch.
  https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html
- Redelivery and dead letters: a message not deleted becomes visible again after the queue's VisibilityTimeout; after
  `maxReceiveCount` receives SQS moves it to the redrive policy's dead-letter queue.
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moto.sqs.models import sqs_backends

from patchpilot_sim.clock import SimClock
from patchpilot_sim.lambdas import InProcessLambda, InvocationResult
from patchpilot_sim.template import SqsSource

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

RECEIVE_LIMIT = 10  # ReceiveMessage's MaxNumberOfMessages


@dataclass
class BatchRecord:
    """One invocation of the mapping: how many messages it carried and which ones the function reported failed."""

    function: str
    size: int
    failed: int
    function_error: str | None


def sqs_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping passes to the function."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def failed_message_ids(result: InvocationResult, message_ids: list[str], reports_failures: bool) -> set[str]:
    """The messages Lambda leaves in the queue after this invocation (the rest are deleted)."""
    everything = set(message_ids)
    if result.failed:
        return everything
    if not reports_failures:
        return set()
    payload = result.payload
    if payload is None:
        return set()
    if not isinstance(payload, dict):
        return everything
    failures = payload.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    named = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in failures}
    if not named <= everything:  # null, empty or unknown identifiers: the whole batch failed
        return everything
    return {str(name) for name in named}


@dataclass(frozen=True)
class QueueState:
    """What a poller needs to know about a queue: visible messages, all messages, when the next one shows."""

    visible: int
    total: int
    next_visible_epoch: float | None


def _queue(queue_url: str) -> Any:
    """The moto queue behind a URL: ``https://sqs.<region>.amazonaws.com/<account>/<name>``."""
    host, account_id, name = queue_url.split("/")[-3:]
    return sqs_backends[account_id][host.split(".")[1]].queues[name]


def queue_message_ids(queue_url: str) -> set[str]:
    """The ids of the messages a queue holds (moto's backend; no API call)."""
    return {message.id for message in list(_queue(queue_url)._messages)}


def queue_state(queue_url: str) -> QueueState:
    """Read a queue's messages from moto's backend (no API call: a poll at every quiescent point must be cheap)."""
    messages = list(_queue(queue_url)._messages)
    visible = sum(1 for message in messages if message.visible and not message.delayed)
    later = [max(message.visible_at, message.delayed_until) / 1000.0 for message in messages]
    hidden = [
        moment for moment, message in zip(later, messages, strict=True) if not (message.visible and not message.delayed)
    ]
    return QueueState(visible, len(messages), min(hidden) if hidden else None)


class VisibilityWakeups:
    """Timers at the moments hidden messages become visible again, one per moment."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._set: set[float] = set()

    def at(self, epoch: float) -> None:
        if epoch in self._set:
            return
        self._set.add(epoch)
        # SQS shows a message once the present is past its visibility deadline (moto: strictly later)
        elapsed = epoch - self._clock.start.timestamp() + 0.001
        self._clock.call_at(elapsed, lambda: self._set.discard(epoch), label="sqs visibility")


class SqsEventSourcePoller:
    """The template's SQS event source mappings, polled by the simulation's driver (`poll_once`)."""

    def __init__(
        self,
        lambdas: InProcessLambda,
        sqs_client: SQSClient,
        queue_url_of: dict[str, str],
        queue_arn_of: dict[str, str],
        region: str,
        clock: SimClock,
    ) -> None:
        self._lambdas = lambdas
        self._sqs = sqs_client
        self._queue_url_of = queue_url_of
        self._queue_arn_of = queue_arn_of
        self._region = region
        self._clock = clock
        self._wakeups = VisibilityWakeups(clock)
        self._window_opened: dict[str, float] = {}  # queue -> simulated second its batching window opened
        self._poll_lock = threading.Lock()  # one delivery at a time (`deliver_event_now` gets its own message)
        self.batches: list[BatchRecord] = []
        self.stale_deletes = 0
        self._sources = [
            (spec.logical_id, source) for spec in lambdas.functions.values() for source in spec.sqs_sources
        ]

    def queues(self) -> set[str]:
        """Logical ids of the queues the mappings poll."""
        return {source.queue_logical_id for _, source in self._sources}

    def _state(self, queue_logical_id: str) -> QueueState:
        return queue_state(self._queue_url_of[queue_logical_id])

    def idle(self) -> bool:
        """No message (visible or in flight) left in any polled queue."""
        return all(self._state(queue).total == 0 for queue in self.queues())

    def poll_once(self) -> bool:
        """Invoke one function with one batch of what is visible; True if a queue had visible messages.

        A receive can return nothing for visible messages: SQS moves a message received `maxReceiveCount` times to
        the dead-letter queue on that receive. That changed the queues too.
        """
        for function, source in self._sources:
            state = self._state(source.queue_logical_id)
            if state.visible and self._window_open(source, state):
                continue
            if state.visible:
                self._window_opened.pop(source.queue_logical_id, None)
                with self._poll_lock:
                    messages = self._receive(source)
                    if messages:
                        self.deliver(function, source, messages)
                return True
            if state.next_visible_epoch is not None:
                self._wakeups.at(state.next_visible_epoch)
        return False

    def _window_open(self, source: SqsSource, state: QueueState) -> bool:
        """Whether the mapping still gathers a batch: its window has not passed and the batch is not full."""
        if source.batching_window_seconds <= 0 or state.visible >= source.batch_size:
            return False
        now = self._clock.elapsed_seconds()
        queue = source.queue_logical_id
        if queue not in self._window_opened:  # one timer per window: time stops when it closes, the next poll delivers
            self._window_opened[queue] = now
            self._clock.call_at(now + source.batching_window_seconds, lambda: None, label="sqs batching window")
        return now < self._window_opened[queue] + source.batching_window_seconds

    def _receive(self, source: SqsSource) -> list[MessageTypeDef]:
        messages: dict[str, MessageTypeDef] = {}
        while len(messages) < source.batch_size:
            got = self._sqs.receive_message(
                QueueUrl=self._queue_url_of[source.queue_logical_id],
                MaxNumberOfMessages=min(RECEIVE_LIMIT, source.batch_size - len(messages)),
                AttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.update((message["MessageId"], message) for message in got)  # the newest receipt handle wins
        return list(messages.values())

    def deliver(self, function: str, source: SqsSource, messages: list[MessageTypeDef]) -> InvocationResult:
        """Invoke the function with one batch and delete the messages it processed."""
        event = sqs_event(messages, self._queue_arn_of[source.queue_logical_id], self._region)
        result = self._lambdas.invoke(function, event)
        ids = [message["MessageId"] for message in messages]
        failed = failed_message_ids(result, ids, source.report_batch_item_failures)
        done = [message for message in messages if message["MessageId"] not in failed]
        url = self._queue_url_of[source.queue_logical_id]
        for start in range(0, len(done), RECEIVE_LIMIT):
            answer = self._sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done[start : start + RECEIVE_LIMIT])
                ],
            )
            self.stale_deletes += len(answer.get("Failed", []))  # received again meanwhile: it will come back
        self.batches.append(BatchRecord(function, len(messages), len(failed), result.error_type))
        return result

    def deliver_event_now(self, function: str, event: dict[str, Any]) -> InvocationResult:
        """One event through the queue to the function, once, at once (what `patchpilot invoke` shows)."""
        source = next(s for name, s in self._sources if name == function)
        url = self._queue_url_of[source.queue_logical_id]
        with self._poll_lock:
            self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
            messages = self._receive(source)
            return self.deliver(function, source, messages)
