"""moto's SQS receive without recomputing every queue attribute for each message it returns.

moto 5.2.5 checks each message ``ReceiveMessage`` returns against the queue's retention period
(``SQSBackend.is_message_valid_based_on_retention_period``) by calling ``get_queue_attributes`` for
``MessageRetentionPeriod``, which builds the queue's whole attribute map three times, and each map counts the queue's
visible, in-flight and delayed messages: O(queue) per message received, so a poller draining a queue of N messages
spent O(N²). This reads the retention period from the queue itself (the integer ``get_queue_attributes`` would
return) and compares it with moto's own clock (``moto.sqs.models.unix_time``, the simulated clock while a runtime runs)
exactly as moto does: a message is still valid while ``MessageRetentionPeriod + sent_timestamp / 1000`` is later than
now. Everything else of the receive (visibility, receive counts, the redrive to the dead-letter queue) is moto's code.
"""

from __future__ import annotations

from moto.sqs import models as sqs_models
from moto.sqs.models import Message, SQSBackend

_ORIGINAL = SQSBackend.is_message_valid_based_on_retention_period


def _is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    retain_until = retention_period + message.sent_timestamp / 1000  # type: ignore[operator]
    return not retain_until <= sqs_models.unix_time()  # type: ignore[attr-defined]


def install() -> None:
    """Use the direct retention check in moto's SQS backend (idempotent; for the local runtime's process)."""
    SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def uninstall() -> None:
    """Put moto's own check back."""
    SQSBackend.is_message_valid_based_on_retention_period = _ORIGINAL  # type: ignore[method-assign]
