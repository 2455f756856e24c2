"""Patch-level records: what SSM reports per instance and patch (DescribeInstancePatches / PatchStates)."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class PatchState(StrEnum):
    """Per-patch states of Patch Manager."""

    INSTALLED = "Installed"
    INSTALLED_OTHER = "InstalledOther"
    INSTALLED_PENDING_REBOOT = "InstalledPendingReboot"
    INSTALLED_REJECTED = "InstalledRejected"
    MISSING = "Missing"
    NOT_APPLICABLE = "NotApplicable"
    FAILED = "Failed"


class InstancePatch(BaseModel):
    """One patch on one instance (a row of DescribeInstancePatches)."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    patch_id: str
    title: str
    classification: str
    severity: str
    state: PatchState
    installed_time: datetime | None = None
    cve_ids: tuple[str, ...] = ()


class InstancePatchSummary(BaseModel):
    """Counts of one instance's last scan or install (a row of DescribeInstancePatchStates)."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    patch_group: str
    baseline_id: str
    operation: str
    operation_end_time: datetime
    installed: int
    installed_other: int
    installed_pending_reboot: int
    installed_rejected: int
    missing: int
    failed: int
    not_applicable: int
