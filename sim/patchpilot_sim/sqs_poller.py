"""Lambda's SQS event source mapping, in-process: poll, invoke the function with a batch, delete what it processed.

Modelled from AWS's documentation, on moto's SQS (which keeps visibility timeouts, receive counts and the redrive
policy: a message received `maxReceiveCount` times moves to the dead-letter queue on its next receive):

- Batching: up to `BatchSize` messages per invocation (ReceiveMessage returns at most 10 per call, so the mapping
  receives repeatedly). `MaximumBatchingWindowInSeconds` is not waited for here: the poller takes what is visible.
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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchpilot_sim.lambdas import InProcessLambda, InvocationResult
from patchpilot_sim.template import SqsSource

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

RECEIVE_LIMIT = 10  # ReceiveMessage's MaxNumberOfMessages
IDLE_POLL_SECONDS = 0.05
GATHER_SECONDS = 0.5  # real time spent gathering one batch (the batching window, compressed)


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


class SqsEventSourcePoller:
    """One polling thread per SQS event source of the template's functions."""

    def __init__(
        self,
        lambdas: InProcessLambda,
        sqs_client: SQSClient,
        queue_url_of: dict[str, str],
        queue_arn_of: dict[str, str],
        region: str,
    ) -> None:
        self._lambdas = lambdas
        self._sqs = sqs_client
        self._queue_url_of = queue_url_of
        self._queue_arn_of = queue_arn_of
        self._region = region
        self._stopped = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._poll_lock = threading.Lock()  # `deliver_event_now` must get its own message, not a poller thread
        self.batches: list[BatchRecord] = []
        self.stale_deletes = 0
        self._sources = [
            (spec.logical_id, source) for spec in lambdas.functions.values() for source in spec.sqs_sources
        ]
        self._threads = [
            threading.Thread(target=self._run, args=(function, source), name=f"sqs-{source.name}", daemon=True)
            for function, source in self._sources
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def queues(self) -> set[str]:
        """Logical ids of the queues the mappings poll."""
        return {source.queue_logical_id for _, source in self._sources}

    def idle(self) -> bool:
        """No invocation running and no message (visible or in flight) left in any polled queue."""
        with self._busy_lock:
            if self._busy:
                return False
        for queue in self.queues():
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self._queue_url_of[queue],
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) or int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            ):
                return False
        return True

    def _receive(self, source: SqsSource) -> list[MessageTypeDef]:
        messages: dict[str, MessageTypeDef] = {}
        deadline = time.monotonic() + GATHER_SECONDS
        while len(messages) < source.batch_size and time.monotonic() < deadline:
            got = self._sqs.receive_message(
                QueueUrl=self._queue_url_of[source.queue_logical_id],
                MaxNumberOfMessages=min(RECEIVE_LIMIT, source.batch_size - len(messages)),
                AttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.update((message["MessageId"], message) for message in got)  # the newest receipt handle wins
        return list(messages.values())

    def _run(self, function: str, source: SqsSource) -> None:
        while not self._stopped.is_set():
            with self._busy_lock:
                self._busy += 1
            messages: list[MessageTypeDef] = []
            try:
                with self._poll_lock:
                    messages = self._receive(source)
                    if messages:
                        self.deliver(function, source, messages)
            except Exception:
                if self._stopped.is_set():  # the runtime is shutting down under us
                    return
                raise
            finally:
                with self._busy_lock:
                    self._busy -= 1
            if not messages:
                time.sleep(IDLE_POLL_SECONDS)

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
