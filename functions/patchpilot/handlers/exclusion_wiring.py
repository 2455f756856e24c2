"""Adapters of the exclusion step, built from env-var settings at invocation time (the edge of the system)."""

from patchpilot.integrations import aws_clients
from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.integrations.ssm_patches import SsmPatchBaselines, SsmPatchInventory
from patchpilot.models.settings import TrackingSettings


def patch_inventory() -> SsmPatchInventory:
    """Per-instance patch states (DescribeInstancePatches)."""
    return SsmPatchInventory(aws_clients.ssm())


def patch_baselines() -> SsmPatchBaselines:
    """Patch baselines: the one of a patch group per OS, and their RejectedPatches."""
    return SsmPatchBaselines(aws_clients.ssm())


def exclusion_ledger() -> DynamoDBExclusionLedger:
    """Exclusion records in the table named by RUNS_TABLE_NAME."""
    settings = TrackingSettings.from_env()
    return DynamoDBExclusionLedger(settings.runs_table_name, aws_clients.dynamodb(), settings.record_ttl_days)
