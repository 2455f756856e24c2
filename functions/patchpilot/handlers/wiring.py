"""Adapters for the handlers, built from env-var settings at invocation time (the edge of the system)."""

from patchpilot.integrations import aws_clients
from patchpilot.integrations.clocks import SystemClock
from patchpilot.integrations.cloudwatch_alarms import CloudWatchAlarmMonitor
from patchpilot.integrations.dynamodb_first_scan import DynamoDBFirstScanLedger
from patchpilot.integrations.dynamodb_tracker import DynamoDBInstallTracker
from patchpilot.integrations.ec2_inventory import Ec2InstanceInventory
from patchpilot.integrations.patch_sets import S3PatchSetStore
from patchpilot.integrations.ports import Clock
from patchpilot.integrations.sfn_callbacks import StepFunctionsCallbacks, StepFunctionsRolloutStarter
from patchpilot.integrations.ssm_calendar import SsmChangeCalendar
from patchpilot.integrations.ssm_directory import SsmCommandDirectory, SsmPatchComplianceReader
from patchpilot.integrations.ssm_scanner import SsmPatchScanner
from patchpilot.models.settings import ArtifactSettings, StarterSettings, TrackingSettings


def install_tracker() -> DynamoDBInstallTracker:
    """The tracking table named by RUNS_TABLE_NAME."""
    settings = TrackingSettings.from_env()
    return DynamoDBInstallTracker(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def command_directory() -> SsmCommandDirectory:
    """SSM Run Command and fleet inventory."""
    return SsmCommandDirectory(aws_clients.ssm())


def execution_callbacks() -> StepFunctionsCallbacks:
    """Step Functions task-token callbacks."""
    return StepFunctionsCallbacks(aws_clients.stepfunctions())


def instance_inventory() -> Ec2InstanceInventory:
    """EC2 instance tags."""
    return Ec2InstanceInventory(aws_clients.ec2())


def patch_scanner() -> SsmPatchScanner:
    """AWS-RunPatchBaseline scans through Run Command."""
    return SsmPatchScanner(aws_clients.ssm())


def first_scan_ledger() -> DynamoDBFirstScanLedger:
    """First-scan claims in the table named by RUNS_TABLE_NAME."""
    settings = TrackingSettings.from_env()
    return DynamoDBFirstScanLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)


def patch_compliance() -> SsmPatchComplianceReader:
    """Per-instance patch states and installed patches."""
    return SsmPatchComplianceReader(aws_clients.ssm())


def alarm_monitor() -> CloudWatchAlarmMonitor:
    """The stage alarms."""
    return CloudWatchAlarmMonitor(aws_clients.cloudwatch())


def patch_sets() -> S3PatchSetStore:
    """Frozen patch sets and the patch lists handed to AWS-RunPatchBaseline."""
    return S3PatchSetStore(
        TrackingSettings.from_env().runs_table_name,
        ArtifactSettings.from_env().artifacts_bucket_name,
        aws_clients.dynamodb(),
        aws_clients.s3(),
    )


def rollout_starter() -> StepFunctionsRolloutStarter:
    """Step Functions, for the rollout state machine named by STATE_MACHINE_ARN."""
    return StepFunctionsRolloutStarter(aws_clients.stepfunctions(), StarterSettings.from_env().state_machine_arn)


_clock: Clock = SystemClock()


def clock() -> Clock:
    """The clock rollout decisions use (the system clock; a local runtime installs its simulated one)."""
    return _clock


def use_clock(replacement: Clock) -> Clock:
    """Make `replacement` the clock handlers use; returns the previous one (to restore it)."""
    global _clock
    previous, _clock = _clock, replacement
    return previous


def change_calendar() -> SsmChangeCalendar:
    """SSM Change Calendar (GetCalendarState)."""
    return SsmChangeCalendar(aws_clients.ssm())
