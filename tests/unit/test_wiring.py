"""The edge of the Lambda package: cached boto3 clients and the one wiring module."""

import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

from patchpilot.handlers import wiring
from patchpilot.integrations import aws_clients
from patchpilot_sim.template import SamTemplate


@pytest.fixture(autouse=True)
def _fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws_clients.reset_clients()
    yield
    aws_clients.reset_clients()


def _cached_factories() -> list[Any]:
    return [value for value in vars(aws_clients).values() if callable(getattr(value, "cache_clear", None))]


def test_aws_clients_reset_forgets_every_cached_client() -> None:
    factories = _cached_factories()
    for factory in factories:
        factory()
    aws_clients.reset_clients()
    still_cached = [f.__name__ for f in factories if f.cache_info().currsize]
    assert still_cached == []
    assert {f.__name__ for f in factories} >= {"dynamodb", "ec2", "ssm", "stepfunctions", "s3", "cloudwatch", "sns"}


def test_aws_clients_after_reset_are_new_clients() -> None:
    before = aws_clients.s3(), aws_clients.cloudwatch(), aws_clients.sns()
    aws_clients.reset_clients()
    after = aws_clients.s3(), aws_clients.cloudwatch(), aws_clients.sns()
    assert [a is b for a, b in zip(before, after, strict=True)] == [False, False, False]


def test_wiring_builds_every_adapter_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "RUNS_TABLE_NAME": "runs",
        "ARTIFACTS_BUCKET_NAME": "artifacts",
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:rollout",
        "CHAT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:patchpilot-chat",
        "CHAT_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/chat-dlq",
        "STAGE_CATALOG": SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"],
        "COMPLIANCE_RULES": json.dumps({"group_environments": {"prod-1": "prod"}}),
        "HEALTH_CHECK_DOCUMENT": "patchpilot-HealthCheckDocument-1A2B3C4D5E6F",
    }.items():
        monkeypatch.setenv(key, value)
    secrets: list[str] = []

    def get_secret(name: str, **options: Any) -> dict[str, Any]:
        secrets.append(name)
        return {"channels": [], "slack_signing_secret": "s3cr3t"}

    monkeypatch.setattr(parameters, "get_secret", get_secret)
    builders = [
        value
        for name, value in vars(wiring).items()
        if callable(value)
        and not name.startswith("_")
        and getattr(value, "__module__", "") == wiring.__name__
        and not inspect.signature(value).parameters  # factories; use_clock replaces the clock
    ]
    built = {builder.__name__: type(builder()).__name__ for builder in builders}
    assert built == {
        "install_tracker": "DynamoDBInstallTracker",
        "command_directory": "SsmCommandDirectory",
        "canary_tags": "AwsCanaryTags",
        "bisection_ledger": "DynamoDBBisectionLedger",
        "bisection_ports": "BisectionPorts",
        "execution_callbacks": "StepFunctionsCallbacks",
        "volume_snapshots": "Ec2VolumeSnapshots",
        "snapshot_ledger": "DynamoDBSnapshotLedger",
        "instance_inventory": "Ec2InstanceInventory",
        "patch_scanner": "SsmPatchScanner",
        "first_scan_ledger": "DynamoDBFirstScanLedger",
        "patch_compliance": "SsmPatchComplianceReader",
        "alarm_monitor": "CloudWatchAlarmMonitor",
        "patch_sets": "S3PatchSetStore",
        "rollout_starter": "StepFunctionsRolloutStarter",
        "patch_inventory": "SsmPatchInventory",
        "patch_baselines": "SsmPatchBaselines",
        "exclusion_ledger": "DynamoDBExclusionLedger",
        "approval_store": "DynamoDBApprovalStore",
        "alert_publisher": "SnsAlertPublisher",
        "run_ledger": "DynamoDBRunLedger",
        "chat_secret": "ChatSecret",
        "poster": "WebhookPoster",
        "chat_ledger": "DynamoDBChatLedger",
        "rejected_inputs": "SqsRejectedInputStore",
        "interaction_settings": "InteractionSettings",
        "interaction_ports": "InteractionPorts",
        "compliance_settings": "ComplianceSettings",
        "fleet_source": "SsmFleetComplianceSource",
        "compliance_store": "DynamoDBComplianceStore",
        "report_store": "S3ReportStore",
        "clock": "SystemClock",
        "change_calendar": "SsmChangeCalendar",
    }
    assert set(secrets) == {"arn:aws:secretsmanager:us-east-1:123456789012:secret:patchpilot-chat"}
