"""moto's SQS send and receive without recomputing every queue attribute for each message.

moto 5.2.5 checks each message ``ReceiveMessage`` returns against the queue's retention period
(``SQSBackend.is_message_valid_based_on_retention_period``) by calling ``get_queue_attributes`` for
``MessageRetentionPeriod``, which builds the queue's whole attribute map three times, and each map counts the queue's
visible, in-flight and delayed messages: O(queue) per message received, so a poller draining a queue of N messages
spent O(N²). This reads the retention period from the queue itself (the integer ``get_queue_attributes`` would
return) and compares it with moto's own clock (``moto.sqs.models.unix_time``, the simulated clock while a runtime runs)
exactly as moto does: a message is still valid while ``MessageRetentionPeriod + sent_timestamp / 1000`` is later than
now. Everything else of the receive (visibility, receive counts, the redrive to the dead-letter queue) is moto's code.

``SendMessage`` reads one attribute of the queue, ``ContentBasedDeduplication`` (``send_message`` and
``_validate_message``), from the same whole map: O(queue) per message sent, so a burst of N results into the queue
cost O(N²). While ``send_message`` runs (not ``add_message``, which may run moto's own event source mappings), the
queue's ``attributes`` answer that one attribute as the map would (a FIFO attribute: absent from a standard queue's
map, ``"true"``/``"false"`` on a FIFO queue) and build moto's whole map for any other.

``Queue.messages`` (the visible messages: every receive lists them) asks moto's clock twice per message of the queue
(``Message.visible`` and ``Message.delayed``); this asks once per listing and compares each message's
``visible_at``/``delayed_until`` with that moment as those properties do. The simulated clock stands still while a
call runs, so the moment is the one each property would have read.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.sqs import models as sqs_models
from moto.sqs.models import Message, Queue, SQSBackend

_ORIGINAL = SQSBackend.is_message_valid_based_on_retention_period
_ORIGINAL_SEND = SQSBackend.send_message
_ORIGINAL_ADD = Queue.add_message
_ORIGINAL_ATTRIBUTES: Any = Queue.__dict__["attributes"]
_ORIGINAL_MESSAGES: Any = Queue.__dict__["messages"]
_sending = threading.local()  # whether send_message runs on this thread (outside add_message)


class _SendingAttributes:
    """A queue's attributes as send_message reads them: ``get`` of ``ContentBasedDeduplication`` without the counts."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def get(self, name: str, default: Any = None) -> Any:
        queue: Any = self._queue
        if name != "ContentBasedDeduplication":
            return _ORIGINAL_ATTRIBUTES.fget(queue).get(name, default)
        if not queue.fifo_queue:
            return default
        value = queue.content_based_deduplication
        return str(value).lower() if isinstance(value, bool) else value


def _attributes(self: Queue) -> Any:
    if getattr(_sending, "active", False):
        return _SendingAttributes(self)
    return _ORIGINAL_ATTRIBUTES.fget(self)


def _messages(self: Queue) -> list[Message]:
    now = sqs_models.unix_time_millis()  # type: ignore[attr-defined]
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
    outer = getattr(_sending, "active", False)
    _sending.active = True
    try:
        return _ORIGINAL_SEND(self, *args, **kwargs)
    finally:
        _sending.active = outer


def _add_message(self: Queue, message: Message) -> None:
    outer = getattr(_sending, "active", False)
    _sending.active = False
    try:
        _ORIGINAL_ADD(self, message)
    finally:
        _sending.active = outer


def _is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    retain_until = retention_period + message.sent_timestamp / 1000  # type: ignore[operator]
    return not retain_until <= sqs_models.unix_time()  # type: ignore[attr-defined]


def install() -> None:
    """Use the direct retention check and send-time attribute in moto's SQS (idempotent; for the runtime's process)."""
    SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    SQSBackend.send_message = _send_message  # type: ignore[method-assign]
    Queue.add_message = _add_message  # type: ignore[method-assign]
    Queue.attributes = property(_attributes)  # type: ignore[assignment]
    Queue.messages = property(_messages)  # type: ignore[assignment]


def uninstall() -> None:
    """Put moto's own code back."""
    SQSBackend.is_message_valid_based_on_retention_period = _ORIGINAL  # type: ignore[method-assign]
    SQSBackend.send_message = _ORIGINAL_SEND  # type: ignore[method-assign]
    Queue.add_message = _ORIGINAL_ADD  # type: ignore[method-assign]
    Queue.attributes = _ORIGINAL_ATTRIBUTES  # type: ignore[method-assign]
    Queue.messages = _ORIGINAL_MESSAGES  # type: ignore[method-assign]
