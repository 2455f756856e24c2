"""Snapshot and rollback adapters: EC2 on moto (CreateSnapshots, DescribeSnapshots, DeleteSnapshot) and Stubber
(CreateReplaceRootVolumeTask, which moto 5.2.5 does not implement), the runs-table ledger on moto."""

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from patchpilot.integrations.dynamodb_snapshots import DynamoDBSnapshotLedger
from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots
from patchpilot.integrations.ports import SnapshotRefused
from patchpilot.integrations.sfn_runs import is_attempt_of
from patchpilot.models.snapshots import RollbackRecord, SnapshotSet, VolumeSnapshot
from tests.functional.aws_fixtures import REGION, RUNS_TABLE

TAGS = {"PatchPilotRun": "2026-12", "PatchPilotStage": "prod-1", "PatchPilotInstance": "i-x"}


def _instance(ec2: Any) -> dict[str, Any]:
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance_id = reservation["Instances"][0]["InstanceId"]
    zone = reservation["Instances"][0]["Placement"]["AvailabilityZone"]
    data = ec2.create_volume(AvailabilityZone=zone, Size=10)["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=instance_id, Device="/dev/sdf")
    return dict(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def test_ec2_snapshots_take_one_tagged_snapshot_per_volume_and_mark_the_root(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    instance = _instance(ec2)
    root_volume = next(
        m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if m["DeviceName"] == instance["RootDeviceName"]
    )
    taken = Ec2VolumeSnapshots(ec2).snapshot_instance(instance["InstanceId"], TAGS, "pre-patch")
    assert len(taken) == len(instance["BlockDeviceMappings"]) == 2
    assert [s.volume_id for s in taken if s.root] == [root_volume]
    described = ec2.describe_snapshots(SnapshotIds=[s.snapshot_id for s in taken])["Snapshots"]
    assert all({t["Key"]: t["Value"] for t in s["Tags"]} == TAGS for s in described)


def test_ec2_snapshots_unknown_instance_is_refused_with_its_code(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with pytest.raises(SnapshotRefused, match=r"InvalidInstanceID.NotFound"):
        Ec2VolumeSnapshots(ec2).snapshot_instance("i-0123456789abcdef0", TAGS, "pre-patch")


def test_ec2_snapshots_of_a_terminated_instance_are_refused_as_gone(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    instance = _instance(ec2)
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    with pytest.raises(SnapshotRefused, match=r"InstanceTerminated"):
        Ec2VolumeSnapshots(ec2).snapshot_instance(instance["InstanceId"], TAGS, "pre-patch")


def test_ec2_snapshots_tagged_finds_only_matching_tags_and_delete_is_idempotent(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    adapter = Ec2VolumeSnapshots(ec2)
    instance = _instance(ec2)
    taken = adapter.snapshot_instance(instance["InstanceId"], TAGS, "pre-patch")
    volume = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    ec2.create_snapshot(
        VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Backup", "Value": "x"}]}]
    )
    later = datetime.now(UTC) + timedelta(minutes=5)
    found = adapter.snapshots_tagged({"PatchPilotStage": "prod-1"}, started_before=later)
    assert sorted(found) == sorted(s.snapshot_id for s in taken)
    assert all(tags["PatchPilotRun"] == "2026-12" for tags in found.values())
    assert adapter.snapshots_tagged({"PatchPilotStage": "prod-1"}, started_before=later - timedelta(hours=1)) == {}
    assert adapter.delete_snapshot(taken[0].snapshot_id) is True
    assert adapter.delete_snapshot(taken[0].snapshot_id) is False


def test_ec2_replace_root_volume_sends_the_snapshot_token_and_tags() -> None:
    client = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response(
        "create_replace_root_volume_task",
        {"ReplaceRootVolumeTask": {"ReplaceRootVolumeTaskId": "replacevol-0123456789abcdef0", "TaskState": "pending"}},
        {
            "InstanceId": "i-0123456789abcdef0",
            "SnapshotId": "snap-0123456789abcdef0",
            "ClientToken": "patchpilot-token",
            "DeleteReplacedRootVolume": False,
            "TagSpecifications": ANY,
        },
    )
    stub.add_response(
        "describe_replace_root_volume_tasks",
        {
            "ReplaceRootVolumeTasks": [
                {"ReplaceRootVolumeTaskId": "replacevol-0123456789abcdef0", "TaskState": "succeeded"}
            ]
        },
        {"ReplaceRootVolumeTaskIds": ["replacevol-0123456789abcdef0"]},
    )
    with stub:
        adapter = Ec2VolumeSnapshots(client)
        task = adapter.replace_root_volume("i-0123456789abcdef0", "snap-0123456789abcdef0", "patchpilot-token", TAGS)
        assert task == "replacevol-0123456789abcdef0"
        assert adapter.replace_root_volume_state(task) == "succeeded"
    stub.assert_no_pending_responses()


def _set(instance: str, stage: str = "prod-1") -> SnapshotSet:
    return SnapshotSet(
        run_id="2026-12",
        stage_name=stage,
        instance_id=instance,
        taken_at=datetime(2026, 12, 15, 3, tzinfo=UTC),
        snapshots=[VolumeSnapshot(snapshot_id="snap-00000000000000001", volume_id="vol-00000000000000001", root=True)],
    )


def test_dynamodb_snapshot_ledger_keeps_the_first_set_and_lists_rollbacks(aws: None) -> None:
    ledger = DynamoDBSnapshotLedger(RUNS_TABLE, boto3.client("dynamodb", region_name=REGION))
    assert ledger.record_set(_set("i-0000000000000000a")) is True
    assert ledger.record_set(_set("i-0000000000000000a")) is False
    assert ledger.record_set(_set("i-0000000000000000b")) is True
    assert sorted(s.instance_id for s in ledger.sets_of("2026-12")) == ["i-0000000000000000a", "i-0000000000000000b"]
    assert ledger.sets_of("2026-11") == []
    record = RollbackRecord(
        run_id="2026-12",
        instance_id="i-0000000000000000a",
        stage_name="prod-1",
        snapshot_id="snap-00000000000000001",
        task_id="replacevol-1",
        task_state="pending",
        requested_by="alice",
        requested_at=datetime(2026, 12, 16, tzinfo=UTC),
    )
    ledger.record_rollback(record)
    ledger.record_rollback(record)  # the same task asked twice: one row
    assert ledger.rollbacks_of("2026-12") == [record]
    assert len(ledger.sets_of("2026-12")) == 2  # rollback rows are not snapshot sets


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cycle-2026-12", True),
        ("cycle-2026-12-r2", True),
        ("2026-12", True),
        ("cycle-2026-120", False),
        ("manual-2026-12", False),
    ],
)
def test_sfn_run_executions_name_matching(name: str, expected: bool) -> None:
    assert is_attempt_of(name, "2026-12") is expected
