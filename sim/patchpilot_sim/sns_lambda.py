"""SNS -> Lambda subscriptions (a function's ``Events: Type: SNS``) as AWS runs them.

- SNS invokes a subscribed function *asynchronously*, one message per event, in the ``Records[].Sns`` shape
  (Lambda developer guide, "Invoking Lambda functions with Amazon SNS notifications"; "Invoking a Lambda function
  asynchronously").
- A function error is retried by Lambda's asynchronous queue: by default two more attempts, "with a one-minute wait
  between the first two attempts, and two minutes between the second and third attempts"; then the event goes to the
  OnFailure destination (Lambda developer guide, "How Lambda handles errors and retries with asynchronous
  invocation"; "Capturing records of Lambda asynchronous invocations"). ``MaximumRetryAttempts`` from
  ``EventInvokeConfig`` is honoured. The waits run on the simulated clock.

The topic delivers to a queue of this runtime's own (moto SNS -> SQS, not raw, so the body is SNS's JSON envelope);
the simulation's driver turns each envelope into the Lambda event and invokes the real handler in-process at a
quiescent point (`deliver_one`, a work source of the simulated clock); a webhook call takes real time, no simulated
time.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from patchpilot_sim.clock import Scheduler
from patchpilot_sim.lambdas import InProcessLambda, InvocationResult
from patchpilot_sim.sqs_poller import queue_state

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

RETRY_DELAYS_SECONDS = (60.0, 120.0)  # simulated seconds before the 2nd and 3rd attempts


def lambda_sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The event Lambda receives for one SNS notification (from the JSON envelope SNS sends to HTTP/SQS)."""
    attributes = {
        name: {"Type": value.get("Type", "String"), "Value": value.get("Value", "")}
        for name, value in (envelope.get("MessageAttributes") or {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope["Timestamp"],
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", "EXAMPLE"),
                    "SigningCertUrl": envelope.get("SigningCertURL", "https://sns.us-east-1.amazonaws.com/cert.pem"),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", "https://sns.us-east-1.amazonaws.com/"),
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


def failure_record(event: dict[str, Any], function_arn: str, result: InvocationResult, attempts: int) -> dict[str, Any]:
    """The invocation record Lambda sends to an SQS OnFailure destination when the retries are exhausted."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": result.error_payload(),
    }


@dataclass(frozen=True)
class Subscription:
    function: str
    queue_url: str
    subscription_arn: str


class SnsLambdaDelivery:
    """Delivers each subscription's SNS notifications to its function with Lambda's asynchronous retry semantics."""

    def __init__(
        self,
        lambdas: InProcessLambda,
        scheduler: Scheduler,
        sqs: SQSClient,
        queue_url_of: dict[str, str],
        function_arn: Callable[[str], str],
    ) -> None:
        self._lambdas = lambdas
        self._scheduler = scheduler
        self._sqs = sqs
        self._queue_url_of = queue_url_of
        self._function_arn = function_arn
        self.subscriptions: list[Subscription] = []
        self._work: deque[tuple[Subscription, dict[str, Any], int]] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self.results: list[tuple[str, InvocationResult]] = []
        self.dead_lettered = 0

    def add(self, subscription: Subscription) -> None:
        self.subscriptions.append(subscription)

    def stop(self) -> None:
        with self._lock:
            self._work.clear()

    def idle(self) -> bool:
        """True when no notification waits in a subscription queue, for a retry, or in an invocation."""
        if any(self._visible(subscription) for subscription in self.subscriptions):
            return False
        with self._lock:
            return self._pending == 0

    def _visible(self, subscription: Subscription) -> int:
        return queue_state(subscription.queue_url).total

    def deliver_one(self) -> bool:
        """One attempt of one notification (a work source of the simulated clock); True if one ran."""
        with self._lock:
            job = self._work.popleft() if self._work else None
        if job is None:
            self._take_notifications()
            with self._lock:
                job = self._work.popleft() if self._work else None
        if job is None:
            return False
        try:
            self._attempt(*job)
        finally:
            with self._lock:
                self._pending -= 1
        return True

    def _take_notifications(self) -> None:
        for subscription in self.subscriptions:
            if not self._visible(subscription):
                continue
            messages = self._sqs.receive_message(QueueUrl=subscription.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            for message in messages:
                event = lambda_sns_event(json.loads(message["Body"]), subscription.subscription_arn)
                with self._lock:
                    self._pending += 1
                    self._work.append((subscription, event, 1))
                self._sqs.delete_message(QueueUrl=subscription.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _attempt(self, subscription: Subscription, event: dict[str, Any], attempt: int) -> None:
        spec = self._lambdas.function_for(subscription.function)
        result = self._lambdas.invoke(spec.logical_id, event)
        self.results.append((spec.logical_id, result))
        if not result.failed:
            return
        if attempt <= min(spec.async_max_retry_attempts, len(RETRY_DELAYS_SECONDS)):
            with self._lock:
                self._pending += 1

            def retry() -> None:
                with self._lock:
                    self._work.append((subscription, event, attempt + 1))

            self._scheduler.after(RETRY_DELAYS_SECONDS[attempt - 1], retry)
            return
        destination = spec.async_on_failure_logical_id
        if destination and destination in self._queue_url_of:
            record = failure_record(event, self._function_arn(spec.logical_id), result, attempt)
            self._sqs.send_message(QueueUrl=self._queue_url_of[destination], MessageBody=json.dumps(record))
            self.dead_lettered += 1
