"""The SNS alert publisher on moto (a topic with SQS subscriptions, to read back what chat would get)."""

import json
from typing import Any

import boto3
import pytest

from patchpilot.integrations.sns_alerts import SnsAlertPublisher
from patchpilot.models.alerts import Alert
from tests.fakes import sample_alert
from tests.functional.aws_fixtures import REGION


@pytest.fixture
def sns_to_sqs(aws: None) -> tuple[SnsAlertPublisher, Any, str, str]:
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
    return SnsAlertPublisher(topic, sns), sqs, queues[0], queues[1]


def _received(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_sns_alert_publisher_sends_alert_json_subject_and_filterable_attributes(
    sns_to_sqs: tuple[SnsAlertPublisher, Any, str, str],
) -> None:
    publisher, sqs, everything, _ = sns_to_sqs
    alert = sample_alert()
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
    publisher.publish(sample_alert())
    publisher.publish(sample_alert(kind="stage_failed", severity="critical", title="Stage staging failed"))
    assert len(_received(sqs, everything)) == 2
    [critical] = _received(sqs, critical_only)
    assert json.loads(critical["Message"])["kind"] == "stage_failed"
