"""The alert model and its SNS publisher (moto topic with SQS subscriptions to read back what chat would get)."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from patchpilot.integrations.sns_alerts import MAX_MESSAGE_BYTES, SnsAlertPublisher, alert_message, alert_subject
from patchpilot.models.alerts import DEFAULT_SEVERITY, Alert

REGION = "us-east-1"
NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def _alert(**changes: Any) -> Alert:
    values: dict[str, Any] = {
        "kind": "patch_excluded",
        "severity": "warning",
        "run_id": "2026-12",
        "stage_name": "staging",
        "title": "Patch excluded on staging",
        "summary": "KB5031234 failed on 3 of 4 instances that installed it; none of the healthy ones installed it",
        "details": {"patch_id": "KB5031234", "failing": ["i-1", "i-2", "i-3"], "healthy": 12},
        "occurred_at": NOW,
    }
    return Alert.model_validate(values | changes)


def test_alert_title_and_summary_are_single_lines_clipped_not_refused() -> None:
    alert = _alert(title="Stage\nfailed", summary="  3 instances\n\tunhealthy \r\n after install ")
    assert (alert.title, alert.summary) == ("Stage failed", "3 instances unhealthy after install")
    long = _alert(title="t" * 500, summary="s " * 1000)
    assert (len(long.title), len(long.summary)) == (200, 1000)
    assert long.title.endswith("...")


@pytest.mark.parametrize(
    "change",
    [{"kind": "stage_exploded"}, {"severity": "fatal"}, {"summary": "  "}, {"occurred_at": "2026-12-10T09:00:00"}],
)
def test_alert_rejects_unknown_kind_severity_blank_summary_and_naive_time(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _alert(**change)


def test_alert_every_kind_has_a_default_severity() -> None:
    kinds = Alert.model_json_schema()["properties"]["kind"]["enum"]
    assert sorted(DEFAULT_SEVERITY) == sorted(kinds)
    assert len(kinds) == 9


def test_alert_subject_is_printable_ascii_of_at_most_100_chars() -> None:
    subject = alert_subject(_alert(title="Approval needed — promote run 2026-12 to prod-1 ✅ " + "x" * 200))
    assert len(subject) == 100
    assert subject.startswith("PatchPilot warning: Approval needed promote run 2026-12 to prod-1 x")
    assert subject.endswith("...")
    assert all(0x20 <= ord(c) <= 0x7E for c in subject)


def test_alert_message_replaces_oversized_evidence_with_a_note() -> None:
    huge = _alert(details={"instances": [f"i-{n:017x}" for n in range(20_000)]})
    message = json.loads(alert_message(huge))
    assert len(alert_message(huge).encode()) <= MAX_MESSAGE_BYTES
    assert message["details"]["truncated"] is True
    assert message["details"]["left_out"] == ["instances"]
    assert message["summary"] == huge.summary


@pytest.fixture
def sns_to_sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SnsAlertPublisher, Any, str, str]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queues = []
        for name, policy in (("everything", None), ("critical-only", {"severity": ["critical"]})):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes = {} if policy is None else {"FilterPolicy": json.dumps(policy)}
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
            queues.append(url)
        yield SnsAlertPublisher(topic, sns), sqs, queues[0], queues[1]


def _received(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_sns_alert_publisher_sends_alert_json_subject_and_filterable_attributes(
    sns_to_sqs: tuple[SnsAlertPublisher, Any, str, str],
) -> None:
    publisher, sqs, everything, _ = sns_to_sqs
    alert = _alert()
    message_id = publisher.publish(alert)
    [envelope] = _received(sqs, everything)
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == "PatchPilot warning: Patch excluded on staging"
    assert Alert.model_validate_json(envelope["Message"]) == alert
    assert {name: value["Value"] for name, value in envelope["MessageAttributes"].items()} == {
        "kind": "patch_excluded",
        "severity": "warning",
    }


def test_sns_alert_publisher_attributes_drive_subscription_filters(
    sns_to_sqs: tuple[SnsAlertPublisher, Any, str, str],
) -> None:
    publisher, sqs, everything, critical_only = sns_to_sqs
    publisher.publish(_alert())
    publisher.publish(_alert(kind="stage_failed", severity="critical", title="Stage staging failed"))
    assert len(_received(sqs, everything)) == 2
    [critical] = _received(sqs, critical_only)
    assert json.loads(critical["Message"])["kind"] == "stage_failed"
