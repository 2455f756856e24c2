"""Rolling an instance back to its pre-patch root volume: which snapshot, the command, the run's rollback plan."""

import hashlib

from pydantic import BaseModel, ConfigDict

from patchpilot.models.exceptions import RollbackRefused
from patchpilot.models.snapshots import RollbackRecord, SnapshotSet

ROLLBACK_COMMAND = "patchpilot rollback --run {run} --instance {instance}"


class RollbackPlanRow(BaseModel):
    """One instance of a run's rollback plan: its snapshot set, its last rollback, the command that restores it."""

    model_config = ConfigDict(frozen=True)

    stage_name: str
    instance_id: str
    root_snapshot_id: str | None
    data_snapshot_ids: list[str]
    taken_at: str
    last_rollback: str | None
    command: str


def rollback_command(run_id: str, instance_id: str) -> str:
    """The exact command that restores an instance's root volume from its pre-patch snapshot of a run."""
    return ROLLBACK_COMMAND.format(run=run_id, instance=instance_id)


def client_token(run_id: str, instance_id: str, snapshot_id: str) -> str:
    """CreateReplaceRootVolumeTask's idempotency token: the same rollback asked twice starts one task."""
    digest = hashlib.sha256(f"{run_id}/{instance_id}/{snapshot_id}".encode()).hexdigest()[:40]
    return f"patchpilot-{digest}"


def snapshot_to_restore(run_id: str, instance_id: str, sets: list[SnapshotSet]) -> SnapshotSet:
    """The instance's pre-patch snapshot set of the run (the earliest, if several stages snapshotted it).

    Raises
    ------
    RollbackRefused
        The run holds no snapshot set of the instance, or its set has no root-volume snapshot.
    """
    own = sorted((s for s in sets if s.instance_id == instance_id), key=lambda s: s.taken_at)
    if not own:
        known = sorted({s.instance_id for s in sets})
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        detail = f"instances with snapshots: {shown}" if known else "the run took no snapshot"
        raise RollbackRefused(f"instance {instance_id} has no pre-patch snapshot in run {run_id} ({detail})")
    if own[0].root_snapshot is None:
        raise RollbackRefused(
            f"instance {instance_id}: its snapshot set in run {run_id} has no root-volume snapshot to restore"
        )
    return own[0]


def rollback_plan(run_id: str, sets: list[SnapshotSet], rollbacks: list[RollbackRecord]) -> list[RollbackPlanRow]:
    """Every snapshotted instance of the run, by stage then instance, with the command that rolls it back."""
    last = {record.instance_id: record for record in sorted(rollbacks, key=lambda r: r.requested_at)}
    rows = []
    for snapshot_set in sorted(sets, key=lambda s: (s.taken_at, s.stage_name, s.instance_id)):
        root = snapshot_set.root_snapshot
        done = last.get(snapshot_set.instance_id)
        rows.append(
            RollbackPlanRow(
                stage_name=snapshot_set.stage_name,
                instance_id=snapshot_set.instance_id,
                root_snapshot_id=root.snapshot_id if root else None,
                data_snapshot_ids=[s.snapshot_id for s in snapshot_set.snapshots if not s.root],
                taken_at=f"{snapshot_set.taken_at:%Y-%m-%d %H:%M} UTC",
                last_rollback=f"{done.task_id} {done.task_state} ({done.requested_by})" if done else None,
                command=rollback_command(run_id, snapshot_set.instance_id),
            )
        )
    return rows
