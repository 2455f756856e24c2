"""SNS adapter of the AlertPublisher port: the alert JSON as the message, kind and severity as message attributes.

Chat integrations subscribe to the topic and filter on the ``kind`` and ``severity`` attributes.
"""

import re
from typing import TYPE_CHECKING

from patchpilot.integrations.ports import AlertPublisher
from patchpilot.models.alerts import Alert

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

MAX_SUBJECT_CHARS = 100
MAX_MESSAGE_BYTES = 256 * 1024 - 4 * 1024  # SNS counts message and attributes together; keep room for attributes
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")


def alert_subject(alert: Alert) -> str:
    """The e-mail subject of an alert: printable ASCII on one line, at most 100 characters (SNS limits)."""
    text = " ".join(_NOT_PRINTABLE_ASCII.sub(" ", f"PatchPilot {alert.severity}: {alert.title}").split())
    return text if len(text) <= MAX_SUBJECT_CHARS else f"{text[: MAX_SUBJECT_CHARS - 3]}..."


def alert_message(alert: Alert) -> str:
    """The alert as JSON; evidence too large for one SNS message is replaced by a note naming what was left out."""
    message = alert.model_dump_json()
    if len(message.encode()) <= MAX_MESSAGE_BYTES:
        return message
    note = {"truncated": True, "left_out": sorted(alert.details), "see": "the run's records in the runs table"}
    return alert.model_copy(update={"details": note}).model_dump_json()


class SnsAlertPublisher(AlertPublisher):
    """Publish to the alert topic (ALERT_TOPIC_ARN)."""

    def __init__(self, topic_arn: str, client: "SNSClient") -> None:
        self._topic_arn = topic_arn
        self._client = client

    def publish(self, alert: Alert) -> str:
        response = self._client.publish(
            TopicArn=self._topic_arn,
            Message=alert_message(alert),
            Subject=alert_subject(alert),
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": alert.kind},
                "severity": {"DataType": "String", "StringValue": alert.severity},
            },
        )
        return response["MessageId"]
