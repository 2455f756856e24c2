"""EventBridge delivery as the template declares it.

Each event is matched against every rule's pattern with moto's EventBridge pattern matcher (moto's
TestEventPattern API is a no-op). A function target is invoked asynchronously with Lambda's retry and on-failure
semantics; an SQS target gets the event as the message body (SendMessage), and the function's SQS event source
mapping (sqs_poller.py) takes it from there.
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-targets.html
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from moto.events.models import EventPattern

from patchpilot_sim.lambdas import InProcessLambda, InvocationResult
from patchpilot_sim.sqs_poller import SqsEventSourcePoller
from patchpilot_sim.template import EventRule, FunctionSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class DeadLetter:
    """An event that its function rejected on every attempt, kept with the reason."""

    function: str
    rule: str
    error_type: str
    error_message: str
    event: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    function: str
    rule: EventRule
    event: dict[str, Any]


class EventRouter:
    """Routes events to the functions whose EventBridgeRule patterns match.

    Function targets are delivered by the simulation's driver at quiescent points (`deliver_one`, a work source of
    the simulated clock), in the order the events were put.
    """

    def __init__(
        self,
        lambdas: InProcessLambda,
        sqs_client: SQSClient,
        queue_url_of: dict[str, str],
        poller: SqsEventSourcePoller | None = None,
        resolve: Callable[[Any], Any] = lambda pattern: pattern,
    ) -> None:
        self._lambdas = lambdas
        self._poller = poller
        # A pattern may name the stack's own resources (`document-name: [!Ref HealthCheckDocument]`): resolved once.
        self._patterns = {
            (spec.logical_id, rule.name): EventPattern.load(json.dumps(resolve(rule.pattern)))
            for spec in lambdas.functions.values()
            for rule in spec.rules
        }
        self._sqs = sqs_client
        self._queue_url_of = queue_url_of
        self._queue: deque[Delivery] = deque()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.dead_letters: list[DeadLetter] = []
        self.delivered = 0
        self.unmatched = 0

    def matching(self, event: dict[str, Any]) -> list[tuple[FunctionSpec, EventRule]]:
        """The (function, rule) pairs whose pattern matches the event."""
        matches = []
        for spec in self._lambdas.functions.values():
            for rule in spec.rules:
                if self._patterns[(spec.logical_id, rule.name)].matches_event(cast(Any, event)):
                    matches.append((spec, rule))
        return matches

    def put_event(self, event: dict[str, Any]) -> int:
        """Queue an event for asynchronous delivery; returns how many rules matched."""
        matches = self.matching(event)
        if not matches:
            self.unmatched += 1
        for spec, rule in matches:
            if rule.queue_logical_id is not None:
                self._sqs.send_message(
                    QueueUrl=self._queue_url_of[rule.queue_logical_id], MessageBody=json.dumps(event)
                )
                continue
            with self._pending_lock:
                self._pending += 1
                self._queue.append(Delivery(spec.logical_id, rule, event))
        return len(matches)

    def deliver_now(self, event: dict[str, Any]) -> list[tuple[FunctionSpec, InvocationResult]]:
        """Deliver synchronously, once, without retries (what `patchpilot invoke` shows)."""
        results = []
        for spec, rule in self.matching(event):
            if rule.queue_logical_id is not None and self._poller is not None:
                results.append((spec, self._poller.deliver_event_now(spec.logical_id, event)))
            else:
                results.append((spec, self._lambdas.invoke(spec.logical_id, event)))
        return results

    def idle(self) -> bool:
        with self._pending_lock:
            return self._pending == 0

    def stop(self) -> None:
        with self._pending_lock:
            self._queue.clear()
            self._pending = 0

    def deliver_one(self) -> bool:
        """Deliver the oldest queued event to its function (a work source of the simulated clock)."""
        with self._pending_lock:
            if not self._queue:
                return False
            delivery = self._queue.popleft()
        try:
            self._deliver(delivery)
        finally:
            with self._pending_lock:
                self._pending -= 1
        return True

    def _deliver(self, delivery: Delivery) -> None:
        spec = self._lambdas.functions[delivery.function]
        result = self._lambdas.invoke(spec.logical_id, delivery.event)
        attempts = 1
        while result.failed and attempts <= spec.async_max_retry_attempts:
            result = self._lambdas.invoke(spec.logical_id, delivery.event)
            attempts += 1
        self.delivered += 1
        if not result.failed:
            return
        letter = DeadLetter(
            function=spec.logical_id,
            rule=delivery.rule.name,
            error_type=result.error_type or "Unknown",
            error_message=result.error_message or "",
            event=delivery.event,
        )
        self.dead_letters.append(letter)
        destination = spec.async_on_failure_logical_id or delivery.rule.dead_letter_logical_id
        if destination and destination in self._queue_url_of:
            self._sqs.send_message(
                QueueUrl=self._queue_url_of[destination],
                MessageBody=json.dumps({"requestPayload": delivery.event, "responsePayload": result.error_payload()}),
                MessageAttributes={
                    "ErrorCode": {"DataType": "String", "StringValue": letter.error_type},
                    "ErrorMessage": {"DataType": "String", "StringValue": letter.error_message[:1000]},
                },
            )
