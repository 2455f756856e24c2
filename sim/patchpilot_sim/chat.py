"""Chat on the local runtime: SNS -> notifier Lambda, the chat secret, the Slack interaction Function URL, redrive.

- The template's ``Events: Type: SNS`` subscriptions are delivered by ``SnsLambdaDelivery`` (asynchronous, Lambda's
  retry schedule on the simulated clock, then the OnFailure destination).
- ``configure(sink)`` writes the chat secret (moto Secrets Manager) with the loopback sink's webhook URLs: the real
  notifier reads it through Powertools Parameters and posts real HTTP.
- ``post_slack_interaction`` is what Slack does when on-call clicks a button: a form-encoded ``payload``, signed
  with the app's signing secret (v0 HMAC-SHA256), sent to the Function URL. The runtime dispatches it to the real
  handler in-process as a Lambda Function URL event (payload format 2.0; a form body arrives base64-encoded, as
  Function URLs encode non-text content types).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import boto3

from patchpilot.integrations.chat_redrive import RedriveReport, redrive
from patchpilot_sim.sns_lambda import SnsLambdaDelivery, Subscription
from patchpilot_sim.sqs_poller import queue_message_ids, queue_state

if TYPE_CHECKING:
    from patchpilot_sim.chat_sink import ChatSink
    from patchpilot_sim.runtime import LocalRuntime

CHAT_SECRET = "ChatSecret"
CHAT_DEAD_LETTER_QUEUE = "ChatDeadLetterQueue"
NOTIFIER = "NotifierFunction"
SLACK_INTERACTION = "SlackInteractionFunction"
LOCAL_SIGNING_SECRET = "local-signing-secret-not-for-production"
DEFAULT_CHANNELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("slack", "patching", ("info", "warning", "critical")),
    ("slack", "oncall", ("critical",)),
    ("teams", "patching", ("info", "warning", "critical")),
)


def generated_secret_string(props: dict[str, Any]) -> str:
    """The SecretString CloudFormation creates for ``GenerateSecretString`` (template JSON + a random key)."""
    if "SecretString" in props:
        return str(props["SecretString"])
    spec = props.get("GenerateSecretString", {})
    value = secrets.token_urlsafe(int(spec.get("PasswordLength", 32)))[: int(spec.get("PasswordLength", 32))]
    if "SecretStringTemplate" not in spec:
        return value
    document = json.loads(spec["SecretStringTemplate"])
    document[spec["GenerateStringKey"]] = value
    return json.dumps(document)


def sign_slack_request(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 request signature (what Slack puts in X-Slack-Signature)."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


class LocalChat:
    """The chat parts of one LocalRuntime."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.sink: ChatSink | None = None
        self._responses = itertools.count(1)
        from patchpilot_sim.runtime import STACK_NAME

        sqs, sns = runtime.admin.client("sqs"), runtime.admin.client("sns")
        self.delivery = SnsLambdaDelivery(
            runtime.lambdas, runtime.scheduler, sqs, runtime.resources.queue_urls, runtime._function_arn
        )
        for spec in runtime.lambdas.functions.values():
            for topic in spec.sns_topics:
                name = f"{STACK_NAME}-sns-{spec.logical_id}-{topic}"
                queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
                queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
                subscription = sns.subscribe(
                    TopicArn=runtime.resources.topic_arns[topic], Protocol="sqs", Endpoint=queue_arn
                )["SubscriptionArn"]
                self.delivery.add(Subscription(spec.logical_id, queue_url, subscription))

    # -- setup ----------------------------------------------------------------------------------------------------
    @property
    def secret_arn(self) -> str:
        return self.runtime.resolver.ref(CHAT_SECRET)

    def configure(
        self,
        sink: ChatSink,
        channels: tuple[tuple[str, str, tuple[str, ...]], ...] = DEFAULT_CHANNELS,
        signing_secret: str = LOCAL_SIGNING_SECRET,
    ) -> None:
        """Point the chat secret at the sink: one webhook per (platform, channel), and the Slack signing secret."""
        self.sink = sink
        self.signing_secret = signing_secret
        document = {
            "channels": [
                {"name": name, "platform": platform, "webhook_url": sink.url(platform, name), "severities": list(sev)}
                for platform, name, sev in channels
            ],
            "slack_signing_secret": signing_secret,
            "slack_response_url_prefix": f"{sink.base_url}/slack-response/",
        }
        self.runtime.admin.client("secretsmanager").put_secret_value(
            SecretId=self.secret_arn, SecretString=json.dumps(document)
        )

    def stop(self) -> None:
        self.delivery.stop()

    def idle(self) -> bool:
        return self.delivery.idle()

    # -- the Slack interaction endpoint -----------------------------------------------------------------------------
    def invoke_function_url(
        self, logical_id: str, path: str, body: str, headers: dict[str, str], method: str = "POST"
    ) -> dict[str, Any]:
        """Dispatch one HTTPS request to a function's URL: the Function URL event (2.0) to the real handler."""
        url_id = hashlib.sha256(logical_id.encode()).hexdigest()[:32]
        now = self.runtime.clock.now()
        encoded = not headers.get("content-type", "").startswith(("text/", "application/json"))
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {key.lower(): value for key, value in headers.items()},
            "requestContext": {
                "accountId": "anonymous",
                "apiId": url_id,
                "domainName": f"{url_id}.lambda-url.{self.runtime.region}.on.aws",
                "domainPrefix": url_id,
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": headers.get("user-agent", "Slackbot 1.0 (+https://api.slack.com/robots)"),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": "$default",
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "body": base64.b64encode(body.encode()).decode() if encoded else body,
            "isBase64Encoded": encoded,
        }
        result = self.runtime.lambdas.invoke(logical_id, event)
        if result.failed:
            # A Function URL answers 502 when the function raises (AWS: "Internal Server Error").
            return {"statusCode": 502, "body": json.dumps(result.error_payload())}
        return dict(result.payload)

    def post_slack_interaction(
        self,
        approval_id: str,
        decision: str,
        user_id: str,
        user_name: str,
        timestamp: int | None = None,
        signing_secret: str | None = None,
    ) -> dict[str, Any]:
        """Click Approve or Reject as Slack does: a signed, form-encoded ``block_actions`` payload to the endpoint."""
        response_url = f"{self.sink.base_url}/slack-response/{next(self._responses)}" if self.sink else None
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T0PATCH"},
            "api_app_id": "A0PATCHPILOT",
            "team": {"id": "T0PATCH", "domain": "patchpilot-local"},
            "container": {"type": "message", "is_ephemeral": False},
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:12]}",
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": f"patchpilot_{decision}",
                    "block_id": "patchpilot-actions",
                    "value": approval_id,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)})
        stamp = str(timestamp if timestamp is not None else int(self.runtime.clock.epoch_seconds()))
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": stamp,
            "x-slack-signature": sign_slack_request(signing_secret or self.signing_secret, stamp, body),
        }
        return self.invoke_function_url(SLACK_INTERACTION, "/slack/interactions", body, headers)

    # -- the dead-letter queue --------------------------------------------------------------------------------------
    def dead_letter_count(self) -> int:
        """How many messages wait in the chat dead-letter queue (visible and in flight)."""
        sqs = self.runtime.admin.client("sqs")
        url = self.runtime.resources.queue_urls[CHAT_DEAD_LETTER_QUEUE]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def redrive(self) -> RedriveReport:
        """What ``patchpilot chat redrive`` does, against this runtime (the notifier runs in-process)."""
        # The default session's clients: the runtime's hooks run Lambda invocations in-process on it.
        return redrive(
            boto3.client("sqs", region_name=self.runtime.region),
            boto3.client("lambda", region_name=self.runtime.region),
            self.runtime.resources.queue_urls[CHAT_DEAD_LETTER_QUEUE],
            self.runtime._function_arn(NOTIFIER),
        )


ON_CALL_REDRIVE_SECONDS = 3600.0


class OnCallRedrive:
    """The on-call operator answering the chat dead-letter alarm: ``patchpilot chat redrive`` within the hour.

    The template's ChatDeadLetterAlarm goes to ALARM when the chat dead-letter queue holds a visible message (one
    5-minute period) and notifies on-call, who runs the redrive (`ON_CALL_REDRIVE_SECONDS` later, simulated). A
    message the redrive cannot deliver yet stays, hidden for the redrive's visibility timeout, and the alarm calls
    again when it shows. The queue keeps a message for its retention (14 days, SQS's maximum, `MessageRetentionPeriod`
    in template.yaml), less than a monthly cycle: an operator who waited for the cycle's end would find the outage's
    first alerts deleted, as on AWS (Amazon SQS developer guide, "Amazon SQS message retention";
    CloudWatch "Using Amazon CloudWatch alarms").
    """

    def __init__(self, chat: LocalChat, say: Callable[[str], None]) -> None:
        self.chat = chat
        self.say = say
        self.url = chat.runtime.resources.queue_urls[CHAT_DEAD_LETTER_QUEUE]
        self.dead_lettered: set[str] = set()  # every message id the queue held
        self.redelivered = 0
        self.still_failing = 0
        self._called = False
        chat.runtime.clock.add_work_source(self.watch)

    def watch(self) -> bool:
        """A work source that never counts as work: the alarm sees a visible message and calls on-call."""
        if queue_state(self.url).visible and not self._called:
            self._called = True
            self.chat.runtime.scheduler.after(ON_CALL_REDRIVE_SECONDS, self.redrive)
        return False

    def redrive(self) -> None:
        """Run the redrive now (also at the end of a cycle, for what is left)."""
        self._called = False
        held = queue_message_ids(self.url)
        if not held:
            return
        self.dead_lettered |= held
        report = self.chat.redrive()
        self.redelivered += report.redelivered
        self.still_failing += len(report.still_failing)
        self.say(
            f"[sim {self.chat.runtime.clock.now():%a %d %H:%M}] on-call: patchpilot chat redrive: redelivered "
            f"{report.redelivered}, still failing {len(report.still_failing)}"
        )
