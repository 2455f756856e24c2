"""Redrive the chat dead-letter queue: what ``patchpilot chat redrive`` (and the local runtime) run.

The chat dead-letter queue holds two kinds of message:

- Lambda's OnFailure invocation records (``requestPayload`` = the SNS event the notifier could not deliver, after
  Lambda's retries): redrive invokes the notifier with that event again (synchronously) and deletes the message
  once the notifier succeeds; alerts already posted to a channel are not posted again (idempotency by alert id).
- Alerts the notifier could not render (``{"rejected": ..., "reason": ...}``): redrive cannot fix them; it keeps
  them and reports the reason.
"""

import json
from dataclasses import dataclass, field
from typing import Any

MAX_REDRIVE_MESSAGES = 1000
REDRIVE_VISIBILITY_SECONDS = 120


@dataclass
class RedriveReport:
    """What one redrive did."""

    redelivered: int = 0
    still_failing: list[str] = field(default_factory=list)
    unrenderable: list[str] = field(default_factory=list)


def _notifier_event(body: dict[str, Any]) -> dict[str, Any] | None:
    payload = body.get("requestPayload")
    return payload if isinstance(payload, dict) and "Records" in payload else None


def _invoke(lambda_client: Any, function_name: str, event: dict[str, Any]) -> str | None:
    """Invoke the notifier synchronously; None on success, else the error it reported."""
    response = lambda_client.invoke(
        FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
    )
    if not response.get("FunctionError"):
        return None
    error = json.loads(response["Payload"].read() or b"{}")
    return f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"


def redrive(sqs: Any, lambda_client: Any, queue_url: str, function_name: str) -> RedriveReport:
    """Re-deliver every redrivable message of the chat dead-letter queue; keep what still fails or cannot render.

    Each message is received once (hidden for REDRIVE_VISIBILITY_SECONDS), so a message that fails again is not
    retried in the same run.
    """
    report = RedriveReport()
    seen = 0
    while seen < MAX_REDRIVE_MESSAGES:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=REDRIVE_VISIBILITY_SECONDS
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            seen += 1
            body = json.loads(message["Body"])
            event = _notifier_event(body)
            if event is None:
                report.unrenderable.append(str(body.get("reason", "not an invocation record")))
                continue
            error = _invoke(lambda_client, function_name, event)
            if error is None:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                report.redelivered += 1
            else:
                report.still_failing.append(error)
    return report
