"""Patch-level records: what SSM reports per instance and patch (DescribeInstancePatches / PatchStates)."""

from datetime import UTC, datetime
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


UNTIMED_YEAR = 1970


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware time (a naive time is UTC, as SSM and the runs table mean it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


RUN_STATES = frozenset({PatchState.INSTALLED, PatchState.INSTALLED_PENDING_REBOOT, PatchState.FAILED})
INSTALLED_STATES = frozenset({PatchState.INSTALLED, PatchState.INSTALLED_PENDING_REBOOT})


def during_run(patch: InstancePatch, since: datetime) -> bool:
    """Whether a patch row is something this run did: Installed, InstalledPendingReboot or Failed since it started.

    The one definition of "during this run" (the exclusion correlation, the frozen patch set and the SSM inventory
    adapter all use it). Times are compared timezone-aware: a naive time (either side) is UTC.

    Parameters
    ----------
    patch : InstancePatch
        A row of DescribeInstancePatches.
    since : datetime
        When the run started.

    Returns
    -------
    bool
        True for rows in one of those states whose install time is at or after `since`; a Failed row without an
        install time counts too (SSM reports an untimed row with no time or the epoch).
    """
    if patch.state not in RUN_STATES:
        return False
    if patch.installed_time is None or is_untimed(patch):
        return patch.state is PatchState.FAILED
    return as_utc(patch.installed_time) >= as_utc(since)


def is_untimed(patch: InstancePatch) -> bool:
    """Whether SSM gave the row no install time (none, or the epoch: some operating systems never report one)."""
    return patch.installed_time is None or patch.installed_time.year <= UNTIMED_YEAR


def installed_in_run_or_untimed(patch: InstancePatch, since: datetime) -> bool:
    """Installed since the run started; on an OS that reports no InstalledTime, every installed patch.

    Without InstalledTime this run's installs cannot be told from earlier ones: the frozen set then holds everything
    the verified instance runs with (installing a patch production already has is a no-op), never nothing.
    """
    return patch.state in INSTALLED_STATES and (is_untimed(patch) or during_run(patch, since))


def installed_during_run(patch: InstancePatch, since: datetime) -> bool:
    """Whether this run installed the patch (Installed or InstalledPendingReboot since it started, see `during_run`)."""
    return patch.state in INSTALLED_STATES and during_run(patch, since)


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
