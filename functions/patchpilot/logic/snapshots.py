"""Pre-patch snapshots of a stage's instances, their retention, and the rollback plan of a run."""

from datetime import timedelta

from patchpilot.integrations.ports import (
    Clock,
    CommandDirectory,
    SnapshotLedger,
    SnapshotRefused,
    VolumeSnapshots,
)
from patchpilot.models.exceptions import SnapshotsIncomplete
from patchpilot.models.snapshot_step import StageSnapshotsRequest
from patchpilot.models.snapshots import FAILURE_SAMPLE, SnapshotFailure, SnapshotSet, StageSnapshotsResult

RUN_TAG, STAGE_TAG, INSTANCE_TAG = "PatchPilotRun", "PatchPilotStage", "PatchPilotInstance"
# EC2 no longer knows the instance (terminated): nothing to snapshot, nothing to restore (EC2 API error codes).
GONE_CODES = frozenset({"InvalidInstanceID.NotFound", "InstanceTerminated"})


def snapshot_tags(run_id: str, stage_name: str, instance_id: str) -> dict[str, str]:
    """The tags of a pre-patch snapshot: its run, its stage and its instance (retention deletes by these only)."""
    return {RUN_TAG: run_id, STAGE_TAG: stage_name, INSTANCE_TAG: instance_id}


def delete_expired_snapshots(
    run_id: str, stage_name: str, retention_days: int, snapshots: VolumeSnapshots, clock: Clock
) -> int:
    """Delete the stage's PatchPilot snapshots older than its retention; untagged ones and the run's own stay.

    The running run's snapshots are its way back (a retry may wait a month for the next window): never deleted.

    Returns
    -------
    int
        How many snapshots were deleted.
    """
    cutoff = clock.now() - timedelta(days=retention_days)
    expired = snapshots.snapshots_tagged({STAGE_TAG: stage_name}, started_before=cutoff)
    return sum(
        snapshots.delete_snapshot(snapshot_id) for snapshot_id, tags in expired.items() if tags.get(RUN_TAG) != run_id
    )


def _snapshot_instance(
    request: StageSnapshotsRequest,
    instance_id: str,
    roots: dict[str, str | None],
    snapshots: VolumeSnapshots,
    ledger: SnapshotLedger,
    clock: Clock,
) -> str | SnapshotFailure:
    """Snapshot one instance and record its set: "taken", "already" (recorded meanwhile), "skipped" or a failure.

    Managed nodes that are not EC2 instances (hybrid ``mi-``) have no EBS volumes, and an instance EC2 no longer
    knows (terminated: absent from ``roots``, the stage's described instances) has nothing to patch or restore: both
    are skipped, not failures.
    """
    run, stage = request.run, request.stage
    if instance_id not in roots:
        return "skipped"
    try:
        volumes = snapshots.snapshot_instance(
            instance_id,
            roots[instance_id],
            snapshot_tags(run.run_id, stage.name, instance_id),
            f"PatchPilot pre-patch {run.run_id} {stage.name} {instance_id}",
        )
    except SnapshotRefused as refused:
        if refused.code in GONE_CODES:
            return "skipped"
        return SnapshotFailure(instance_id=instance_id, code=refused.code, message=refused.message[:300])
    if not volumes:
        return SnapshotFailure(instance_id=instance_id, code="NoEbsVolumes", message="no EBS volume attached")
    snapshot_set = SnapshotSet(
        run_id=run.run_id, stage_name=stage.name, instance_id=instance_id, taken_at=clock.now(), snapshots=volumes
    )
    return "taken" if ledger.record_set(snapshot_set) else "already"


def snapshot_stage(
    request: StageSnapshotsRequest,
    directory: CommandDirectory,
    snapshots: VolumeSnapshots,
    ledger: SnapshotLedger,
    clock: Clock,
    patch_group_tag_key: str,
) -> StageSnapshotsResult:
    """Snapshot every EC2 instance of the stage's patch group before its install and record each snapshot set.

    An instance whose set this run already recorded for the stage is not snapshotted again (a retry of the stage
    keeps the snapshot from before its first install). Managed nodes that are not EC2 instances have no EBS volumes.

    Parameters
    ----------
    request : StageSnapshotsRequest
        The run and the stage (its ``snapshots`` settings).
    directory, snapshots, ledger, clock
        Ports: managed instances, EC2 snapshots, the runs table, the time.
    patch_group_tag_key : str
        The tag that names an instance's patch group.

    Returns
    -------
    StageSnapshotsResult
        Counts and a bounded sample of failures.

    Raises
    ------
    SnapshotsIncomplete
        An instance could not be snapshotted and the stage's policy is not best effort: the stage must not install.
    """
    run, stage = request.run, request.stage
    settings = stage.snapshots
    if settings is None or not settings.enabled:
        return StageSnapshotsResult(taken=0, already_taken=0, failed=0, deleted_expired=0)
    recorded = {s.instance_id for s in ledger.sets_of(run.run_id) if s.stage_name == stage.name}
    instance_ids = [i.instance_id for i in directory.managed_instances(patch_group_tag_key, stage.patch_group)]
    roots = snapshots.root_volumes([i for i in instance_ids if i.startswith("i-") and i not in recorded])
    outcomes: list[str] = []
    failures: list[SnapshotFailure] = []
    for instance_id in instance_ids:
        if instance_id in recorded:
            outcomes.append("already")
            continue
        outcome = _snapshot_instance(request, instance_id, roots, snapshots, ledger, clock)
        if isinstance(outcome, SnapshotFailure):
            failures.append(outcome)
        else:
            outcomes.append(outcome)
    taken, already, skipped = (outcomes.count(kind) for kind in ("taken", "already", "skipped"))
    if failures and not settings.best_effort:
        sample = ", ".join(f"{f.instance_id} ({f.code}: {f.message})" for f in failures[:5])
        raise SnapshotsIncomplete(
            f"stage {stage.name}: {len(failures)} instance(s) could not be snapshotted before the install, which did "
            f"not start: {sample}"
        )
    deleted = delete_expired_snapshots(run.run_id, stage.name, settings.retention_days, snapshots, clock)
    return StageSnapshotsResult(
        taken=taken,
        already_taken=already,
        skipped=skipped,
        failed=len(failures),
        deleted_expired=deleted,
        failures=failures[:FAILURE_SAMPLE],
    )
