"""SQS adapter of the RejectedInputStore port: the chat dead-letter queue keeps what the notifier cannot render."""

import json
from typing import TYPE_CHECKING, Any

from patchpilot.integrations.ports import RejectedInputStore

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_REASON_CHARS = 1000


class SqsRejectedInputStore(RejectedInputStore):
    """One message per rejected input: ``{"rejected": <input>, "reason": ...}`` plus an ``ErrorMessage`` attribute."""

    def __init__(self, queue_url: str, client: "SQSClient") -> None:
        self._queue_url = queue_url
        self._client = client

    def keep(self, body: dict[str, Any], reason: str) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps({"rejected": body, "reason": reason}),
            MessageAttributes={
                "ErrorCode": {"DataType": "String", "StringValue": "UnrenderableAlert"},
                "ErrorMessage": {"DataType": "String", "StringValue": reason[:MAX_REASON_CHARS]},
            },
        )
