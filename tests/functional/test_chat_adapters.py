"""Chat adapters: the DynamoDB ledger and replay guard, the SQS dead letters and the redrive on moto; the webhook
poster against the loopback sink (real HTTP); the chat secret through Powertools Parameters on moto."""

import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from patchpilot.handlers import wiring
from patchpilot.integrations.chat_redrive import redrive
from patchpilot.integrations.chat_webhooks import WebhookPoster, retry_after_seconds
from patchpilot.integrations.dynamodb_chat import DynamoDBChatLedger, DynamoDBInteractionGuard
from patchpilot.integrations.sqs_dead_letters import SqsRejectedInputStore
from patchpilot_sim.chat_sink import ChatSink
from tests.functional.aws_fixtures import create_runs_table

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    create_runs_table(client)
    return client


@pytest.fixture
def sink() -> Iterator[ChatSink]:
    with ChatSink(hold_seconds=0.5, max_lifetime_seconds=60) as running:
        yield running


def test_dynamodb_chat_ledger_claims_once_and_remembers_what_was_posted(dynamodb: Any) -> None:
    ledger = DynamoDBChatLedger("runs", dynamodb)
    assert ledger.claim("a1", "slack/patching") == "claimed"
    assert ledger.claim("a1", "slack/patching") == "busy"
    assert ledger.claim("a1", "teams/patching") == "claimed"
    ledger.mark_posted("a1", "slack/patching")
    assert ledger.claim("a1", "slack/patching") == "posted"
    ledger.release("a1", "teams/patching")
    assert ledger.claim("a1", "teams/patching") == "claimed"
    ledger.release("a1", "slack/patching")  # a posted message is never released
    assert ledger.claim("a1", "slack/patching") == "posted"


def test_dynamodb_chat_ledger_an_expired_posting_lease_can_be_claimed_again(dynamodb: Any) -> None:
    ledger = DynamoDBChatLedger("runs", dynamodb)
    ledger.claim("a2", "slack/patching")
    dynamodb.update_item(
        TableName="runs",
        Key={"pk": {"S": "CHAT#a2"}, "sk": {"S": "slack/patching"}},
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    assert ledger.claim("a2", "slack/patching") == "claimed"


def test_dynamodb_chat_ledger_posting_lease_is_the_configured_one(dynamodb: Any) -> None:
    ledger = DynamoDBChatLedger("runs", dynamodb, lease_seconds=600.0)
    before = time.time()
    assert ledger.claim("a3", "slack/patching") == "claimed"
    assert ledger.claim("a3", "slack/patching") == "busy"
    item = dynamodb.get_item(TableName="runs", Key={"pk": {"S": "CHAT#a3"}, "sk": {"S": "slack/patching"}})["Item"]
    lease_until = float(item["lease_until"]["N"])  # stored with millisecond precision
    assert before + 600 - 0.001 <= lease_until <= time.time() + 600 + 0.001


def test_dynamodb_chat_ledger_digest_holds_each_instance_alert_once_in_order(dynamodb: Any) -> None:
    ledger = DynamoDBChatLedger("runs", dynamodb)
    ledger.hold_for_digest("2026-12", "dev", "x1", "i-1 unhealthy")
    ledger.hold_for_digest("2026-12", "dev", "x2", "i-2 unhealthy")
    ledger.hold_for_digest("2026-12", "dev", "x1", "i-1 unhealthy")
    ledger.hold_for_digest("2026-12", "staging", "x3", "i-3 unhealthy")
    assert ledger.digest("2026-12", "dev") == ["i-1 unhealthy", "i-2 unhealthy"]


def test_dynamodb_interaction_guard_refuses_the_second_use_of_a_signature(dynamodb: Any) -> None:
    guard = DynamoDBInteractionGuard("runs", dynamodb)
    until = datetime.now(UTC) + timedelta(minutes=10)
    assert guard.first_use("v0=abc", until) is True
    assert guard.first_use("v0=abc", until) is False
    assert guard.first_use("v0=abd", until) is True


def test_sqs_rejected_input_store_keeps_the_input_and_the_reason(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="chat-dlq")["QueueUrl"]
    SqsRejectedInputStore(url, sqs).keep({"Sns": {"Message": "{oops"}}, "the message is not JSON")
    [message] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"]) == {
        "rejected": {"Sns": {"Message": "{oops"}},
        "reason": "the message is not JSON",
    }
    assert message["MessageAttributes"]["ErrorCode"]["StringValue"] == "UnrenderableAlert"


def test_webhook_poster_delivers_to_the_sink_and_reports_its_failures(sink: ChatSink) -> None:
    poster = WebhookPoster(timeout_seconds=0.2)
    assert poster.post(sink.url("slack", "ops"), {"text": "hello", "blocks": []}).status == 200
    assert poster.post(sink.url("teams", "ops"), {"type": "message", "attachments": []}).status == 400
    sink.fail_next(["500", "429", "timeout"])
    assert poster.post(sink.url("slack", "ops"), {"text": "x"}).status == 500
    throttled = poster.post(sink.url("slack", "ops"), {"text": "x"})
    assert (throttled.status, throttled.retry_after_seconds, throttled.retryable) == (429, 1.0, True)
    timed_out = poster.post(sink.url("slack", "ops"), {"text": "x"})
    assert (timed_out.status, timed_out.error, timed_out.retryable) == (0, "timed out", True)
    assert [m["payload"]["text"] for m in sink.messages] == ["hello"]


def test_webhook_poster_refuses_plain_http_and_survives_a_refused_connection(sink: ChatSink) -> None:
    poster = WebhookPoster(timeout_seconds=0.5)
    assert poster.post("http://hooks.slack.com/services/x", {"text": "x"}).status == 400
    closed = sink.url("slack", "ops")
    sink.stop()
    refused = poster.post(closed, {"text": "x"})
    assert (refused.status, refused.retryable) == (0, True)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Tue, 08 Dec 2026 20:00:30 GMT", now) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_sink_answers_like_slack_for_bad_payloads(sink: ChatSink) -> None:
    poster = WebhookPoster(timeout_seconds=1)
    assert poster.post(sink.url("slack", "ops"), {"blocks": []}).error == "no_text"
    too_many = {"text": "x", "blocks": [{"type": "divider"}] * 51}
    assert poster.post(sink.url("slack", "ops"), too_many).error == "invalid_blocks"
    assert sink.messages == []


def test_chat_secret_is_read_through_powertools_parameters_and_cached(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    document = {
        "channels": [{"name": "ops", "platform": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"}],
        "slack_signing_secret": "s3cr3t",
    }
    arn = client.create_secret(Name="patchpilot-chat-cache-test", SecretString=json.dumps(document))["ARN"]
    monkeypatch.setenv("CHAT_SECRET_ARN", arn)
    parameters.clear_caches()
    secret = wiring.chat_secret()
    assert secret.channels[0].webhook_url.get_secret_value() == "https://hooks.slack.com/services/T/B/x"
    assert "services/T/B/x" not in repr(secret)
    assert "s3cr3t" not in secret.model_dump_json()
    client.put_secret_value(SecretId=arn, SecretString=json.dumps({**document, "channels": []}))
    assert len(wiring.chat_secret().channels) == 1  # cached (CHAT_SECRET_MAX_AGE_SECONDS)
    parameters.clear_caches()
    assert wiring.chat_secret().channels == []


class FakeNotifier:
    """A Lambda client whose notifier fails for the events listed in `failing`."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.invoked: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        event = json.loads(Payload)
        self.invoked.append(event)
        if event["Records"][0]["Sns"]["MessageId"] in self.failing:
            error = json.dumps({"errorType": "ChatDeliveryFailed", "errorMessage": "still down"}).encode()
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(error)}
        return {"StatusCode": 200, "Payload": io.BytesIO(b"{}")}


def test_redrive_reinvokes_each_failed_delivery_deletes_what_succeeds_and_keeps_the_rest(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="chat-dlq")["QueueUrl"]
    for message_id in ("m-1", "m-2", "m-3"):
        event = {"Records": [{"Sns": {"MessageId": message_id, "Message": "{}"}}]}
        record = {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"rejected": {}, "reason": "the message is not JSON"}))
    notifier = FakeNotifier(failing={"m-2"})
    report = redrive(sqs, notifier, url, "NotifierFunction")
    assert (report.redelivered, report.still_failing) == (2, ["ChatDeliveryFailed: still down"])
    assert report.unrenderable == ["the message is not JSON"]
    assert sorted(e["Records"][0]["Sns"]["MessageId"] for e in notifier.invoked) == ["m-1", "m-2", "m-3"]
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert left["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "2"  # m-2 and the unrenderable one, kept
