"""Pre-patch snapshots and rollback: the stage's snapshot policy, what was snapshotted, and what a rollback did.

A stage's instances are snapshotted before its install (EC2 ``CreateSnapshots``: one crash-consistent snapshot per
attached EBS volume, taken at the same point in time across the instance). The snapshot set of each instance is
recorded in the runs table; the state payload carries counts only.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from patchpilot.models.bounds import Utf8Input
from patchpilot.models.state import RunId, StageName

InstanceId = Annotated[str, StringConstraints(pattern=r"^i-[0-9a-f]{8,17}$")]
SnapshotId = Annotated[str, StringConstraints(pattern=r"^snap-[0-9a-f]{8,17}$")]
VolumeId = Annotated[str, StringConstraints(pattern=r"^vol-[0-9a-f]{8,17}$")]
MAX_RETENTION_DAYS = 365
FAILURE_SAMPLE = 20


class _Model(Utf8Input):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SnapshotSettings(_Model):
    """A stage's pre-patch snapshot policy (``snapshots:`` of a stage in policy/patch-policy.yaml).

    ``best_effort``: a snapshot that cannot be taken (quota, a volume that cannot be snapshotted) is reported and the
    stage installs anyway; otherwise the stage stops before its install.
    """

    enabled: bool = True
    retention_days: int = Field(default=7, ge=1, le=MAX_RETENTION_DAYS)
    best_effort: bool = False


class VolumeSnapshot(_Model):
    """One snapshot of a multi-volume snapshot set."""

    snapshot_id: SnapshotId
    volume_id: VolumeId
    root: bool


class SnapshotSet(_Model):
    """The crash-consistent snapshot set of one instance, taken before its stage installed (a runs-table row)."""

    run_id: RunId
    stage_name: StageName
    instance_id: InstanceId
    taken_at: datetime
    snapshots: list[VolumeSnapshot] = Field(min_length=1, max_length=128)

    @property
    def root_snapshot(self) -> VolumeSnapshot | None:
        """The snapshot of the instance's root volume (what a rollback restores)."""
        return next((snapshot for snapshot in self.snapshots if snapshot.root), None)


class SnapshotFailure(_Model):
    """An instance whose volumes could not be snapshotted, and why (the EC2 error code)."""

    instance_id: str
    code: str
    message: Annotated[str, StringConstraints(max_length=300)]


class StageSnapshotsResult(_Model):
    """What the snapshot step did: counts for the state, a bounded failure sample for the alert."""

    taken: int = Field(ge=0)
    already_taken: int = Field(ge=0)
    skipped: int = Field(default=0, ge=0)  # managed nodes that are not EC2 instances (hybrid mi-…): nothing to snapshot
    failed: int = Field(ge=0)
    deleted_expired: int = Field(ge=0)
    failures: list[SnapshotFailure] = Field(default_factory=list, max_length=FAILURE_SAMPLE)


RollbackTaskState = Literal[
    "pending", "in-progress", "failing", "succeeded", "failed", "failing-detached", "failed-detached"
]


class RollbackRecord(_Model):
    """A root-volume restore PatchPilot started (a runs-table row): which task, from which snapshot, by whom."""

    run_id: RunId
    instance_id: InstanceId
    stage_name: StageName
    snapshot_id: SnapshotId
    task_id: str
    task_state: RollbackTaskState
    requested_by: str
    requested_at: datetime


class RunExecution(_Model):
    """An execution of a run: its name, status and, while it runs, the stage it works on (None: not known)."""

    name: str
    status: str
    stage_name: str | None = None


class RollbackPlanRow(_Model):
    """One instance of a run's rollback plan: its snapshot set, its last rollback, the command that restores it."""

    stage_name: str
    instance_id: str
    root_snapshot_id: str | None
    data_snapshot_ids: list[str]
    taken_at: str
    last_rollback: str | None
    command: str
