"""Adapters of the approval and alert handlers, built from env-var settings at invocation time."""

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from patchpilot.handlers import wiring
from patchpilot.integrations import aws_clients
from patchpilot.integrations.dynamodb_approvals import DynamoDBApprovalStore
from patchpilot.integrations.sfn_callbacks import StepFunctionsCallbacks
from patchpilot.integrations.sns_alerts import SnsAlertPublisher
from patchpilot.models.settings import AlertSettings, TrackingSettings

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def _sns() -> "SNSClient":
    # Not cached: these functions run a few times a cycle, and a fresh client always follows the current default
    # session (the local runtime replaces it). Candidate for aws_clients.sns() with reset_clients().
    return boto3.client("sns", config=_CONFIG)


def approval_store() -> DynamoDBApprovalStore:
    """Approvals in the table named by RUNS_TABLE_NAME."""
    settings = TrackingSettings.from_env()
    return DynamoDBApprovalStore(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def alert_publisher() -> SnsAlertPublisher:
    """The alert topic named by ALERT_TOPIC_ARN."""
    return SnsAlertPublisher(AlertSettings.from_env().alert_topic_arn, _sns())


def execution_callbacks() -> StepFunctionsCallbacks:
    """Step Functions task-token callbacks."""
    return wiring.execution_callbacks()
