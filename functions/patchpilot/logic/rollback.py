"""Rolling an instance back to its pre-patch root volume: which snapshot, the command, the run's rollback plan."""

import hashlib
from datetime import datetime
from typing import get_args

from patchpilot.integrations.ports import RunExecutions, SnapshotLedger, VolumeSnapshots
from patchpilot.logic.commands import rollback_command
from patchpilot.logic.snapshots import snapshot_tags
from patchpilot.models.exceptions import RollbackRefused
from patchpilot.models.snapshots import RollbackPlanRow, RollbackRecord, RollbackTaskState, RunExecution, SnapshotSet


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


def _known_run(run_id: str, executions: RunExecutions) -> list[RunExecution]:
    found = executions.executions_of(run_id)
    if not found:
        raise RollbackRefused(f"run {run_id!r} not found: no rollout execution is named after it")
    return found


def check_rollback(run_id: str, instance_id: str, executions: RunExecutions, ledger: SnapshotLedger) -> SnapshotSet:
    """The snapshot set a rollback of the instance restores, after every check; nothing is changed.

    Raises
    ------
    RollbackRefused
        The run does not exist, the run never snapshotted the instance, or the instance's stage is still running
        (a running execution works on that stage, or on a stage it cannot tell).
    """
    found = _known_run(run_id, executions)
    chosen = snapshot_to_restore(run_id, instance_id, ledger.sets_of(run_id))
    for execution in found:
        if execution.status == "RUNNING" and execution.stage_name in (None, chosen.stage_name):
            raise RollbackRefused(
                f"stage {chosen.stage_name} of run {run_id} is still running ({execution.name}): roll back once it "
                "has ended (patchpilot status), or stop the execution first"
            )
    return chosen


def start_rollback(
    chosen: SnapshotSet, volumes: VolumeSnapshots, ledger: SnapshotLedger, requested_by: str, now: datetime
) -> RollbackRecord:
    """Start restoring the root volume from the set's root snapshot and record it (one task however often asked)."""
    root = chosen.root_snapshot
    if root is None:
        raise RollbackRefused(f"instance {chosen.instance_id} has no root-volume snapshot in run {chosen.run_id}")
    task_id = volumes.replace_root_volume(
        chosen.instance_id,
        root.snapshot_id,
        client_token(chosen.run_id, chosen.instance_id, root.snapshot_id),
        snapshot_tags(chosen.run_id, chosen.stage_name, chosen.instance_id),
    )
    record = RollbackRecord(
        run_id=chosen.run_id,
        instance_id=chosen.instance_id,
        stage_name=chosen.stage_name,
        snapshot_id=root.snapshot_id,
        task_id=task_id,
        task_state="pending",
        requested_by=requested_by,
        requested_at=now,
    )
    ledger.record_rollback(record)
    return record


def _refreshed(record: RollbackRecord, volumes: VolumeSnapshots) -> RollbackRecord:
    state = volumes.replace_root_volume_state(record.task_id)
    return record.model_copy(update={"task_state": state}) if state in get_args(RollbackTaskState) else record


def run_rollback_plan(
    run_id: str, executions: RunExecutions, ledger: SnapshotLedger, volumes: VolumeSnapshots | None = None
) -> list[RollbackPlanRow]:
    """The rollback plan of an existing run (RollbackRefused if no execution is named after it).

    With ``volumes``, each recorded rollback shows its task's state now (DescribeReplaceRootVolumeTasks).
    """
    _known_run(run_id, executions)
    rollbacks = ledger.rollbacks_of(run_id)
    if volumes is not None:
        rollbacks = [_refreshed(record, volumes) for record in rollbacks]
    return rollback_plan(run_id, ledger.sets_of(run_id), rollbacks)
