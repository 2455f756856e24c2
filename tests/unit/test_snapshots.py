"""Pre-patch snapshots (taking, recording, retention, failures) and the rollback plan, on fakes."""

from datetime import UTC, datetime, timedelta

import pytest

from patchpilot.logic.commands import rollback_command
from patchpilot.logic.rollback import client_token, rollback_plan, snapshot_to_restore
from patchpilot.logic.rollout_plan import plan_rollout
from patchpilot.logic.snapshots import RUN_TAG, STAGE_TAG, snapshot_stage
from patchpilot.models.exceptions import RollbackRefused, SnapshotsIncomplete
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import RolloutRequest, StageCatalog
from patchpilot.models.snapshot_step import StageSnapshotsRequest
from patchpilot.models.snapshots import RollbackRecord, SnapshotSettings
from patchpilot_cli.policy_render import load_policy, stage_catalog, stage_snapshots
from tests.fakes import FakeCommandDirectory, FakeSnapshotLedger, FakeVolumeSnapshots, FixedClock

NOW = datetime(2026, 12, 15, 3, 0, tzinfo=UTC)


DEFAULT_SETTINGS = SnapshotSettings()


def _request(settings: SnapshotSettings | None = DEFAULT_SETTINGS, run_id: str = "2026-12") -> StageSnapshotsRequest:
    stages = [
        {"name": "dev", "patch_group": "dev", "role": "test"},
        {"name": "prod-1", "patch_group": "prod-1", "role": "production"},
    ]
    if settings is not None:
        stages[1]["snapshots"] = settings.model_dump()
    catalog = StageCatalog.model_validate({"stages": stages})
    plan = plan_rollout(RolloutRequest(run_id=run_id), catalog, NOW)
    return StageSnapshotsRequest(run=plan.run, stage=plan.stages[1])


def _directory(*instance_ids: str) -> FakeCommandDirectory:
    directory = FakeCommandDirectory()
    directory.fleet[("PatchGroup", "prod-1")] = [
        ManagedInstance(
            instance_id=i,
            ping_status="Online",
            platform_type="Linux",
            platform_name="Amazon Linux",
            platform_version="2023",
        )
        for i in instance_ids
    ]
    return directory


INSTANCES = ("i-0000000000000000a", "i-0000000000000000b", "mi-0000000000000000c")


def _snapshot(
    request: StageSnapshotsRequest, volumes: FakeVolumeSnapshots, ledger: FakeSnapshotLedger, *instances: str
) -> object:
    return snapshot_stage(
        request, _directory(*(instances or INSTANCES)), volumes, ledger, FixedClock(NOW), "PatchGroup"
    )


def test_snapshot_stage_records_a_tagged_set_per_ec2_instance_and_skips_hybrid_nodes() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    result = _snapshot(_request(), volumes, ledger)
    assert result.model_dump(exclude={"failures"}) == {  # type: ignore[attr-defined]
        "taken": 2,
        "already_taken": 0,
        "skipped": 1,
        "failed": 0,
        "deleted_expired": 0,
    }
    sets = {s.instance_id: s for s in ledger.sets_of("2026-12")}
    assert sorted(sets) == ["i-0000000000000000a", "i-0000000000000000b"]
    assert [len(s.snapshots) for s in sets.values()] == [2, 2]
    root = sets["i-0000000000000000a"].root_snapshot
    assert root is not None
    assert volumes.snapshots[root.snapshot_id][1] == {
        "PatchPilotRun": "2026-12",
        "PatchPilotStage": "prod-1",
        "PatchPilotInstance": "i-0000000000000000a",
    }


def test_snapshot_stage_retry_keeps_the_first_snapshot_and_takes_no_second() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    _snapshot(_request(), volumes, ledger)
    first = {s.instance_id: s.root_snapshot for s in ledger.sets_of("2026-12")}
    again = _snapshot(_request(), volumes, ledger)
    assert (again.taken, again.already_taken) == (0, 2)  # type: ignore[attr-defined]
    assert {s.instance_id: s.root_snapshot for s in ledger.sets_of("2026-12")} == first
    assert sum(call.startswith("CreateSnapshots") for call in volumes.calls) == 2


def test_snapshot_stage_deletes_only_expired_patchpilot_snapshots_of_the_stage_from_other_runs() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    old = NOW - timedelta(days=8)
    volumes.add("snap-00000000000000e01", old, {RUN_TAG: "2026-11", STAGE_TAG: "prod-1"})  # expired: deleted
    volumes.add("snap-00000000000000e02", NOW - timedelta(days=6), {RUN_TAG: "2026-11", STAGE_TAG: "prod-1"})
    volumes.add("snap-00000000000000e03", old, {"Backup": "nightly"})  # not PatchPilot's
    volumes.add("snap-00000000000000e04", old, {RUN_TAG: "2026-11", STAGE_TAG: "prod-2"})  # another stage
    volumes.add("snap-00000000000000e05", old, {RUN_TAG: "2026-12", STAGE_TAG: "prod-1"})  # this run's way back
    result = _snapshot(_request(SnapshotSettings(retention_days=7)), volumes, ledger)
    assert result.deleted_expired == 1  # type: ignore[attr-defined]
    assert "snap-00000000000000e01" not in volumes.snapshots
    assert {"snap-00000000000000e02", "snap-00000000000000e03", "snap-00000000000000e04"} <= set(volumes.snapshots)
    assert "snap-00000000000000e05" in volumes.snapshots


def test_snapshot_stage_failure_stops_the_stage_before_install_unless_best_effort() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    volumes.refuse["i-0000000000000000b"] = ("SnapshotLimitExceeded", "You have reached the maximum number")
    with pytest.raises(SnapshotsIncomplete, match=r"1 instance\(s\) could not be snapshotted.*SnapshotLimitExceeded"):
        _snapshot(_request(), volumes, ledger)
    best_effort = _snapshot(_request(SnapshotSettings(best_effort=True)), volumes, FakeSnapshotLedger())
    assert (best_effort.taken, best_effort.failed) == (1, 1)  # type: ignore[attr-defined]
    assert best_effort.failures[0].code == "SnapshotLimitExceeded"  # type: ignore[attr-defined]


def test_snapshot_stage_without_snapshot_settings_takes_nothing() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    result = _snapshot(_request(None), volumes, ledger)
    assert (result.taken, volumes.calls) == (0, [])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("configured", "production", "expected"),
    [
        (None, True, SnapshotSettings()),
        (None, False, None),
        (SnapshotSettings(enabled=False), True, None),
        (SnapshotSettings(retention_days=3), False, SnapshotSettings(retention_days=3)),
    ],
)
def test_stage_snapshots_default_on_for_production_off_for_test(
    configured: SnapshotSettings | None, production: bool, expected: SnapshotSettings | None
) -> None:
    assert stage_snapshots(configured, production) == expected


def test_snapshot_to_restore_refuses_an_instance_the_run_never_snapshotted() -> None:
    ledger = FakeSnapshotLedger()
    _snapshot(_request(), FakeVolumeSnapshots(FixedClock(NOW)), ledger)
    sets = ledger.sets_of("2026-12")
    with pytest.raises(RollbackRefused, match=r"i-0000000000000000f has no pre-patch snapshot in run 2026-12"):
        snapshot_to_restore("2026-12", "i-0000000000000000f", sets)
    with pytest.raises(RollbackRefused, match=r"the run took no snapshot"):
        snapshot_to_restore("2026-11", "i-0000000000000000a", [])
    chosen = snapshot_to_restore("2026-12", "i-0000000000000000a", sets)
    assert chosen.root_snapshot is not None
    assert chosen.root_snapshot.root


def test_rollback_plan_lists_every_snapshotted_instance_with_its_command_and_last_rollback() -> None:
    ledger = FakeSnapshotLedger()
    _snapshot(_request(), FakeVolumeSnapshots(FixedClock(NOW)), ledger)
    done = RollbackRecord(
        run_id="2026-12",
        instance_id="i-0000000000000000b",
        stage_name="prod-1",
        snapshot_id="snap-00000000000000003",
        task_id="replacevol-1",
        task_state="pending",
        requested_by="alice",
        requested_at=NOW,
    )
    rows = rollback_plan("2026-12", ledger.sets_of("2026-12"), [done])
    assert [(r.instance_id, r.command, r.last_rollback) for r in rows] == [
        ("i-0000000000000000a", rollback_command("2026-12", "i-0000000000000000a"), None),
        (
            "i-0000000000000000b",
            "patchpilot rollback --run 2026-12 --instance i-0000000000000000b",
            "replacevol-1 pending (alice)",
        ),
    ]
    assert all(len(r.data_snapshot_ids) == 1 for r in rows)


def test_client_token_is_stable_per_rollback_and_within_the_api_limit() -> None:
    token = client_token("2026-12", "i-0000000000000000a", "snap-00000000000000001")
    assert token == client_token("2026-12", "i-0000000000000000a", "snap-00000000000000001")
    assert token != client_token("2026-12", "i-0000000000000000b", "snap-00000000000000001")
    assert len(token) <= 64


def test_repository_policy_takes_snapshots_in_production_stages_only() -> None:
    catalog = stage_catalog(load_policy())
    settings = {stage.name: stage.snapshots for stage in catalog.stages}
    assert settings["dev"] is None
    assert settings["staging"] is None
    assert settings["prod-1"] == SnapshotSettings(retention_days=14)
    assert settings["prod-2"] == SnapshotSettings()


def test_snapshot_stage_skips_an_instance_ec2_no_longer_knows() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    volumes.refuse["i-0000000000000000b"] = ("InvalidInstanceID.NotFound", "The instance ID does not exist")
    result = _snapshot(_request(), volumes, ledger)
    assert (result.taken, result.skipped, result.failed) == (1, 2, 0)  # type: ignore[attr-defined]


def test_snapshot_stage_skips_an_instance_terminated_before_the_stage_was_described() -> None:
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    volumes.gone.add("i-0000000000000000b")
    result = _snapshot(_request(), volumes, ledger)
    assert (result.taken, result.skipped, result.failed) == (1, 2, 0)  # type: ignore[attr-defined]
    assert "CreateSnapshots i-0000000000000000b" not in volumes.calls


def test_snapshot_stage_describes_its_instances_in_batches_not_one_call_each() -> None:
    # Given a stage of 25 EC2 instances, one hybrid node, and one instance already snapshotted by this run
    volumes, ledger = FakeVolumeSnapshots(FixedClock(NOW)), FakeSnapshotLedger()
    volumes.describe_batch = 10
    instances = [f"i-{number:017x}" for number in range(1, 26)]
    _snapshot(_request(), volumes, ledger, instances[0])
    volumes.calls.clear()
    # When the stage is snapshotted
    result = _snapshot(_request(), volumes, ledger, *instances, "mi-0000000000000000c")
    # Then the 24 instances still to snapshot are described in three calls, the hybrid node and the recorded one not
    describes = [call for call in volumes.calls if call.startswith("DescribeInstances")]
    assert describes == ["DescribeInstances 10", "DescribeInstances 10", "DescribeInstances 4"]
    assert (result.taken, result.already_taken, result.skipped) == (24, 1, 1)  # type: ignore[attr-defined]
    # And each recorded set marks the instance's described root volume
    for snapshot_set in ledger.sets_of("2026-12"):
        root = snapshot_set.root_snapshot
        assert root is not None
        assert root.volume_id == FakeVolumeSnapshots.volume_of(snapshot_set.instance_id, 0)
