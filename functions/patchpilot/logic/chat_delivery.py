"""Deliver alerts to chat: parse, digest per-instance noise per stage, post once per channel, retry, give up loudly.

A chat outage never touches a rollout: the notifier runs on its own (SNS -> Lambda, asynchronous), and what it cannot
post after its retries fails the invocation so that Lambda retries it and finally keeps it in the chat dead-letter
queue for ``patchpilot chat redrive``.
"""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchpilot.integrations.ports import ChatLedger, ChatPoster, RejectedInputStore
from patchpilot.logic.chat_render import render
from patchpilot.models.alerts import PER_INSTANCE_KINDS, Alert
from patchpilot.models.chat import (
    ChatChannel,
    ChatDeliveryFailed,
    ChatMessage,
    ChatSecret,
    Delivery,
    PostResult,
    UnrenderableAlert,
)

MAX_ATTEMPTS = 3
BASE_DELAY_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 5.0
DLQ_ALARM_PREFIX = "patchpilot-dlq-"


def _alarm_alert(alarm: dict[str, Any]) -> Alert:
    """A CloudWatch alarm notification (a dead-letter queue alarm) as an ``events_dead_lettered`` alert."""
    dimensions = alarm.get("Trigger", {}).get("Dimensions") or [{}]
    queue = str(dimensions[0].get("value") or alarm.get("AlarmName", "a dead-letter queue"))
    state = str(alarm.get("NewStateValue", ""))
    return Alert(
        kind="events_dead_lettered",
        severity="critical" if state == "ALARM" else "info",
        run_id="dead-letters",
        title=f"{alarm.get('AlarmName', 'dead-letter alarm')}: {state}",
        summary=f"{alarm.get('NewStateReason') or 'Messages are waiting in a dead-letter queue.'} Queue: {queue}.",
        details={"queue": queue, "alarm": alarm.get("AlarmName"), "state": state},
        occurred_at=alarm.get("StateChangeTime") or datetime.fromisoformat("1970-01-01T00:00:00+00:00"),
    )


def parse_alert(message: str) -> Alert:
    """The alert an SNS message carries: PatchPilot's Alert JSON, or a CloudWatch alarm notification.

    Raises
    ------
    UnrenderableAlert
        Not JSON, or neither an alert nor an alarm notification (the error names what is wrong).
    """
    try:
        document = json.loads(message)
    except json.JSONDecodeError as error:
        raise UnrenderableAlert(f"the message is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise UnrenderableAlert("the message is not a JSON object")
    try:
        if "AlarmName" in document and "NewStateValue" in document:
            return _alarm_alert(document)
        return Alert.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'alert'}: {e['msg']}" for e in error.errors())
        raise UnrenderableAlert(f"the message is not a valid alert: {problems}") from error


def post_with_retries(
    poster: ChatPoster, url: str, payload: dict[str, Any], sleep: Callable[[float], None], budget_seconds: float
) -> PostResult:
    """Post, retrying 429/5xx/timeouts with exponential backoff; a ``Retry-After`` is honoured, never shortened.

    Gives up (returns the last failure) after MAX_ATTEMPTS, or at once when the wait asked for would not fit in
    ``budget_seconds`` (the invocation's remaining time): the Lambda retry then comes back later.
    """
    spent = 0.0
    result = poster.post(url, payload)
    for attempt in range(1, MAX_ATTEMPTS):
        if result.delivered or not result.retryable:
            return result
        wait = BASE_DELAY_SECONDS * 2 ** (attempt - 1)
        if result.retry_after_seconds is not None:
            if result.retry_after_seconds > MAX_RETRY_AFTER_SECONDS:
                return result
            wait = max(wait, result.retry_after_seconds)
        if spent + wait > budget_seconds:
            return result
        sleep(wait)
        spent += wait
        result = poster.post(url, payload)
    return result


def _with_digest(alert: Alert, ledger: ChatLedger) -> Alert:
    """A stage's passed/failed alert, carrying the digest of the per-instance alerts held back for that stage."""
    if alert.kind not in ("stage_passed", "stage_failed") or alert.stage_name is None:
        return alert
    lines = ledger.digest(alert.run_id, alert.stage_name)
    if not lines:
        return alert
    return alert.model_copy(update={"details": {**alert.details, "instances": lines}})


def _post_channel(
    message: ChatMessage,
    channel: ChatChannel,
    poster: ChatPoster,
    ledger: ChatLedger,
    sleep: Callable[[float], None],
    budget_seconds: float,
) -> str | None:
    """Post one message to one channel unless posted before; None when posted, else why it failed."""
    result = post_with_retries(poster, channel.webhook_url.get_secret_value(), message.payload, sleep, budget_seconds)
    if result.delivered:
        ledger.mark_posted(message.alert_id, channel.key)
        return None
    ledger.release(message.alert_id, channel.key)
    return f"HTTP {result.status or 'no answer'}{f': {result.error}' if result.error else ''}"


def deliver(
    alert: Alert,
    secret: ChatSecret,
    poster: ChatPoster,
    ledger: ChatLedger,
    sleep: Callable[[float], None],
    remaining_seconds: Callable[[], float],
    on_posted: Callable[[ChatMessage], None] = lambda _: None,
) -> Delivery:
    """Post an alert to every channel that wants it, at most once per channel (idempotency key: the alert id).

    Per-instance alerts are held for their stage's digest instead of being posted.

    Raises
    ------
    ChatDeliveryFailed
        A channel did not take the message after the retries (the channels that did are not posted again).
    UnrenderableAlert
        The alert does not fit a platform's limits.
    """
    alert_id = alert.alert_id
    if alert.kind in PER_INSTANCE_KINDS and alert.stage_name is not None:
        ledger.hold_for_digest(alert.run_id, alert.stage_name, alert_id, f"{alert.title}: {alert.summary}")
        return Delivery(alert_id=alert_id, kind=alert.kind, digested=True)
    shown = _with_digest(alert, ledger)
    delivery = Delivery(alert_id=alert_id, kind=alert.kind)
    posted, before, failed = [], [], {}
    for channel in secret.channels:
        if not channel.wants(alert.kind, alert.severity):
            continue
        message = render(shown, channel.platform, channel.name).model_copy(update={"alert_id": alert_id})
        claim = ledger.claim(alert_id, channel.key)
        if claim == "posted":
            before.append(channel.key)
            continue
        if claim == "busy":
            failed[channel.key] = "another delivery of the same alert is posting it"
            continue
        error = _post_channel(message, channel, poster, ledger, sleep, max(remaining_seconds() - 8.0, 0.0))
        if error is None:
            posted.append(channel.key)
            on_posted(message)
        else:
            failed[channel.key] = error
    delivery = delivery.model_copy(update={"posted": posted, "already_posted": before, "failed": failed})
    if failed:
        raise ChatDeliveryFailed(
            f"alert {alert.kind} ({alert_id}) not delivered to "
            + ", ".join(f"{name} ({why})" for name, why in sorted(failed.items()))
        )
    return delivery


class NotifyReport(BaseModel):
    """What one notifier invocation did: per alert deliveries, rejected inputs, failures to retry."""

    model_config = ConfigDict(frozen=True)

    deliveries: list[Delivery] = Field(default_factory=list)
    rejected: int = 0
    failures: list[str] = Field(default_factory=list)

    @property
    def posted(self) -> int:
        """How many messages went out (all channels)."""
        return sum(len(delivery.posted) for delivery in self.deliveries)

    def raise_failures(self) -> None:
        """Fail the invocation when a channel did not take a message: Lambda retries it, then dead-letters it."""
        if self.failures:
            raise ChatDeliveryFailed("; ".join(self.failures))


def notify_messages(
    messages: list[tuple[str, str, dict[str, Any]]],
    secret: ChatSecret,
    poster: ChatPoster,
    ledger: ChatLedger,
    rejected_inputs: RejectedInputStore,
    sleep: Callable[[float], None],
    remaining_seconds: Callable[[], float],
) -> NotifyReport:
    """Deliver each (message id, message, raw record) of an SNS event; an unrenderable one is kept, not retried.

    Parameters
    ----------
    messages : list
        The SNS records: message id, message text, and the record as received (kept when rejected).
    secret : ChatSecret
        Channels and their webhook URLs.
    poster, ledger, rejected_inputs
        Ports to the webhooks, the posted/digest ledger and the chat dead-letter queue.
    sleep, remaining_seconds
        Waiting between retries, and the invocation's remaining time.

    Returns
    -------
    NotifyReport
        Deliveries, rejected count and the failures the caller raises (``raise_failures``) after every message was
        tried.
    """
    deliveries: list[Delivery] = []
    failures: list[str] = []
    rejected = 0
    for _, message, record in messages:
        try:
            alert = parse_alert(message)
            deliveries.append(deliver(alert, secret, poster, ledger, sleep, remaining_seconds))
        except UnrenderableAlert as error:
            rejected_inputs.keep(record, str(error))
            rejected += 1
        except ChatDeliveryFailed as error:
            failures.append(str(error))
    return NotifyReport(deliveries=deliveries, rejected=rejected, failures=failures)
