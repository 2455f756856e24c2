"""Adapters of the compliance and report functions, built from env-var settings at invocation time."""

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from patchpilot.integrations import aws_clients
from patchpilot.integrations.dynamodb_compliance import DynamoDBComplianceStore
from patchpilot.integrations.s3_reports import S3ReportStore
from patchpilot.integrations.sns_alerts import SnsAlertPublisher
from patchpilot.integrations.ssm_compliance import SsmFleetComplianceSource
from patchpilot.models.compliance_settings import ComplianceSettings

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

# A full refresh pages through the whole fleet: adaptive retries slow down on throttling instead of failing
# (botocore "Retries" guide: adaptive = standard retries + client-side rate limiting).
THROTTLING_AWARE = Config(retries={"mode": "adaptive", "max_attempts": 10})


def settings() -> ComplianceSettings:
    """The compliance functions' environment."""
    return ComplianceSettings.from_env()


def _ssm() -> "SSMClient":
    return boto3.client("ssm", config=THROTTLING_AWARE)


def fleet_source() -> SsmFleetComplianceSource:
    """SSM and EC2 reads of the fleet's compliance."""
    return SsmFleetComplianceSource(_ssm(), aws_clients.ec2())


def compliance_store() -> DynamoDBComplianceStore:
    """Node statuses and summaries in the runs table."""
    return DynamoDBComplianceStore(settings().runs_table_name, aws_clients.dynamodb())


def report_store() -> S3ReportStore:
    """Reports in the artifacts bucket."""
    return S3ReportStore(settings().artifacts_bucket_name, aws_clients.s3())


def alert_publisher() -> SnsAlertPublisher:
    """The alert topic."""
    return SnsAlertPublisher(settings().alert_topic_arn, boto3.client("sns"))
