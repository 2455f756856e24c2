"""Adapters for the handlers, built from env-var settings at invocation time (the edge of the system).

The chat secret is read from Secrets Manager through Powertools Parameters (cached for CHAT_SECRET_MAX_AGE_SECONDS);
only its ARN is in the environment. Its values are SecretStr from the moment they are parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patchpilot.integrations import aws_clients

if TYPE_CHECKING:
    from patchpilot.integrations.canary_tags import AwsCanaryTags
    from patchpilot.integrations.chat_webhooks import WebhookPoster
    from patchpilot.integrations.cloudwatch_alarms import CloudWatchAlarmMonitor
    from patchpilot.integrations.dynamodb_approvals import DynamoDBApprovalStore
    from patchpilot.integrations.dynamodb_bisections import DynamoDBBisectionLedger
    from patchpilot.integrations.dynamodb_chat import DynamoDBChatLedger
    from patchpilot.integrations.dynamodb_compliance import DynamoDBComplianceStore
    from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
    from patchpilot.integrations.dynamodb_first_scan import DynamoDBFirstScanLedger
    from patchpilot.integrations.dynamodb_run_ledger import DynamoDBRunLedger
    from patchpilot.integrations.dynamodb_snapshots import DynamoDBSnapshotLedger
    from patchpilot.integrations.dynamodb_tracker import DynamoDBInstallTracker
    from patchpilot.integrations.ec2_inventory import Ec2InstanceInventory
    from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots
    from patchpilot.integrations.patch_sets import S3PatchSetStore
    from patchpilot.integrations.ports import Clock
    from patchpilot.integrations.s3_reports import S3ReportStore
    from patchpilot.integrations.sfn_callbacks import StepFunctionsCallbacks, StepFunctionsRolloutStarter
    from patchpilot.integrations.sns_alerts import SnsAlertPublisher
    from patchpilot.integrations.sqs_dead_letters import SqsRejectedInputStore
    from patchpilot.integrations.ssm_calendar import SsmChangeCalendar
    from patchpilot.integrations.ssm_compliance import SsmFleetComplianceSource
    from patchpilot.integrations.ssm_directory import SsmCommandDirectory, SsmPatchComplianceReader
    from patchpilot.integrations.ssm_patches import SsmPatchBaselines, SsmPatchInventory
    from patchpilot.integrations.ssm_scanner import SsmPatchScanner
    from patchpilot.logic.bisection import BisectionPorts
    from patchpilot.logic.slack_interaction import InteractionPorts, InteractionSettings
    from patchpilot.models.chat import ChatSecret
    from patchpilot.models.compliance_settings import ComplianceSettings


def install_tracker() -> DynamoDBInstallTracker:
    """The tracking table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_tracker import DynamoDBInstallTracker
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBInstallTracker(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def command_directory() -> SsmCommandDirectory:
    """SSM Run Command and fleet inventory."""
    from patchpilot.integrations.ssm_directory import SsmCommandDirectory

    return SsmCommandDirectory(aws_clients.ssm())


def canary_tags() -> AwsCanaryTags:
    """The canary tag on EC2 instances and hybrid managed nodes."""
    from patchpilot.integrations.canary_tags import AwsCanaryTags

    return AwsCanaryTags(aws_clients.ec2(), aws_clients.ssm())


def execution_callbacks() -> StepFunctionsCallbacks:
    """Step Functions task-token callbacks."""
    from patchpilot.integrations.sfn_callbacks import StepFunctionsCallbacks

    return StepFunctionsCallbacks(aws_clients.stepfunctions())


def instance_inventory() -> Ec2InstanceInventory:
    """EC2 instance tags."""
    from patchpilot.integrations.ec2_inventory import Ec2InstanceInventory

    return Ec2InstanceInventory(aws_clients.ec2())


def volume_snapshots() -> Ec2VolumeSnapshots:
    """EBS snapshots and root-volume restores through EC2."""
    from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots

    return Ec2VolumeSnapshots(aws_clients.ec2())


def snapshot_ledger() -> DynamoDBSnapshotLedger:
    """Snapshot sets and rollbacks in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_snapshots import DynamoDBSnapshotLedger
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBSnapshotLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def bisection_ledger() -> DynamoDBBisectionLedger:
    """Bisection records in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_bisections import DynamoDBBisectionLedger
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBBisectionLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def bisection_ports() -> BisectionPorts:
    """What a stage's bisection talks to: patch states, snapshots, restores, tags, install lists, its record."""
    from patchpilot.logic.bisection import BisectionPorts
    from patchpilot.models.settings import HealthCheckSettings

    return BisectionPorts(
        inventory=patch_inventory(),
        snapshots=snapshot_ledger(),
        volumes=volume_snapshots(),
        tags=canary_tags(),
        directory=command_directory(),
        patch_sets=patch_sets(),
        ledger=bisection_ledger(),
        health_check_document=HealthCheckSettings.from_env().health_check_document,
    )


def patch_scanner() -> SsmPatchScanner:
    """AWS-RunPatchBaseline scans through Run Command."""
    from patchpilot.integrations.ssm_scanner import SsmPatchScanner

    return SsmPatchScanner(aws_clients.ssm())


def first_scan_ledger() -> DynamoDBFirstScanLedger:
    """First-scan claims in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_first_scan import DynamoDBFirstScanLedger
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBFirstScanLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def patch_compliance() -> SsmPatchComplianceReader:
    """Per-instance patch states and installed patches."""
    from patchpilot.integrations.ssm_directory import SsmPatchComplianceReader

    return SsmPatchComplianceReader(aws_clients.ssm())


def alarm_monitor() -> CloudWatchAlarmMonitor:
    """The stage alarms."""
    from patchpilot.integrations.cloudwatch_alarms import CloudWatchAlarmMonitor

    return CloudWatchAlarmMonitor(aws_clients.cloudwatch())


def patch_sets() -> S3PatchSetStore:
    """Frozen patch sets and the patch lists handed to AWS-RunPatchBaseline."""
    from patchpilot.integrations.patch_sets import S3PatchSetStore
    from patchpilot.models.settings import ArtifactSettings, TrackingSettings

    return S3PatchSetStore(
        TrackingSettings.from_env().runs_table_name,
        ArtifactSettings.from_env().artifacts_bucket_name,
        aws_clients.dynamodb(),
        aws_clients.s3(),
        exclusion_ledger(),
    )


def rollout_starter() -> StepFunctionsRolloutStarter:
    """Step Functions, for the rollout state machine named by STATE_MACHINE_ARN."""
    from patchpilot.integrations.sfn_callbacks import StepFunctionsRolloutStarter
    from patchpilot.models.settings import StarterSettings

    return StepFunctionsRolloutStarter(aws_clients.stepfunctions(), StarterSettings.from_env().state_machine_arn)


def run_ledger() -> DynamoDBRunLedger:
    """Passed stages of each run, in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_run_ledger import DynamoDBRunLedger
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBRunLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def patch_inventory() -> SsmPatchInventory:
    """Per-instance patch states (DescribeInstancePatches)."""
    from patchpilot.integrations.ssm_patches import SsmPatchInventory

    return SsmPatchInventory(aws_clients.ssm())


def patch_baselines() -> SsmPatchBaselines:
    """Patch baselines: the one of a patch group per OS, and their RejectedPatches."""
    from patchpilot.integrations.ssm_patches import SsmPatchBaselines

    return SsmPatchBaselines(aws_clients.ssm())


def exclusion_ledger() -> DynamoDBExclusionLedger:
    """Exclusion records in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBExclusionLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def approval_store() -> DynamoDBApprovalStore:
    """Approvals in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_approvals import DynamoDBApprovalStore
    from patchpilot.models.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    return DynamoDBApprovalStore(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def alert_publisher() -> SnsAlertPublisher:
    """The alert topic named by ALERT_TOPIC_ARN."""
    from patchpilot.integrations.sns_alerts import SnsAlertPublisher
    from patchpilot.models.settings import AlertSettings

    return SnsAlertPublisher(AlertSettings.from_env().alert_topic_arn, aws_clients.sns())


def chat_secret() -> ChatSecret:
    """The chat secret (channels, webhook URLs, Slack signing secret), cached by Powertools Parameters."""
    from aws_lambda_powertools.utilities import parameters

    from patchpilot.models.chat import ChatSecret
    from patchpilot.models.settings import ChatSettings

    settings = ChatSettings.from_env()
    raw: Any = parameters.get_secret(
        settings.chat_secret_arn, transform="json", max_age=settings.secret_max_age_seconds
    )
    return ChatSecret.model_validate(raw)


def poster() -> WebhookPoster:
    """HTTPS webhook posts bounded by CHAT_POST_TIMEOUT_SECONDS."""
    from patchpilot.integrations.chat_webhooks import WebhookPoster
    from patchpilot.models.settings import ChatSettings

    return WebhookPoster(ChatSettings.from_env().post_timeout_seconds)


def chat_ledger() -> DynamoDBChatLedger:
    """Posted messages and held digests in the table named by RUNS_TABLE_NAME."""
    from patchpilot.integrations.dynamodb_chat import DynamoDBChatLedger
    from patchpilot.models.settings import ChatLeaseSettings, TrackingSettings

    lease = ChatLeaseSettings.from_env().posting_lease_seconds
    return DynamoDBChatLedger(TrackingSettings.from_env().runs_table_name, aws_clients.dynamodb(), lease_seconds=lease)


def rejected_inputs() -> SqsRejectedInputStore:
    """The chat dead-letter queue (CHAT_DEAD_LETTER_QUEUE_URL)."""
    from patchpilot.integrations.sqs_dead_letters import SqsRejectedInputStore
    from patchpilot.models.settings import ChatSettings

    return SqsRejectedInputStore(ChatSettings.from_env().chat_dead_letter_queue_url, aws_clients.sqs())


def interaction_settings() -> InteractionSettings:
    """Signing secret, approvers and stage roles (STAGE_CATALOG), and where response_url may point."""
    from patchpilot.logic.slack_interaction import InteractionSettings
    from patchpilot.models.settings import RolloutSettings

    secret = chat_secret()
    return InteractionSettings(
        signing_secret=secret.slack_signing_secret.get_secret_value(),
        catalog=RolloutSettings.from_env().stage_catalog,
        response_url_prefix=str(secret.slack_response_url_prefix),
    )


def interaction_ports() -> InteractionPorts:
    """Approvals, the execution, alerts, replay memory, response_url posts, and the rollout starter for Resume."""
    from patchpilot.integrations.dynamodb_chat import DynamoDBInteractionGuard
    from patchpilot.logic.slack_interaction import InteractionPorts
    from patchpilot.models.settings import TrackingSettings

    return InteractionPorts(
        store=approval_store(),
        callbacks=execution_callbacks(),
        publisher=alert_publisher(),
        guard=DynamoDBInteractionGuard(TrackingSettings.from_env().runs_table_name, aws_clients.dynamodb()),
        poster=poster(),
        starter=rollout_starter(),
        ledger=run_ledger(),
    )


def compliance_settings() -> ComplianceSettings:
    """The compliance functions' environment."""
    from patchpilot.models.compliance_settings import ComplianceSettings

    return ComplianceSettings.from_env()


def fleet_source() -> SsmFleetComplianceSource:
    """SSM and EC2 reads of the fleet's compliance (SSM with adaptive retries: a refresh pages the whole fleet)."""
    from patchpilot.integrations.ssm_compliance import SsmFleetComplianceSource

    return SsmFleetComplianceSource(aws_clients.ssm_throttling_aware(), aws_clients.ec2())


def compliance_store() -> DynamoDBComplianceStore:
    """Node statuses and summaries in the runs table."""
    from patchpilot.integrations.dynamodb_compliance import DynamoDBComplianceStore

    return DynamoDBComplianceStore(compliance_settings().runs_table_name, aws_clients.dynamodb())


def report_store() -> S3ReportStore:
    """Reports in the artifacts bucket."""
    from patchpilot.integrations.s3_reports import S3ReportStore

    return S3ReportStore(compliance_settings().artifacts_bucket_name, aws_clients.s3())


_clock: Clock | None = None


def clock() -> Clock:
    """The clock rollout decisions use (the system clock; a local runtime installs its simulated one)."""
    global _clock
    if _clock is None:
        from patchpilot.integrations.clocks import SystemClock

        _clock = SystemClock()
    return _clock


def use_clock(replacement: Clock) -> Clock:
    """Make `replacement` the clock handlers use; returns the previous one (to restore it)."""
    global _clock
    previous, _clock = clock(), replacement
    return previous


def change_calendar() -> SsmChangeCalendar:
    """SSM Change Calendar (GetCalendarState)."""
    from patchpilot.integrations.ssm_calendar import SsmChangeCalendar

    return SsmChangeCalendar(aws_clients.ssm())
