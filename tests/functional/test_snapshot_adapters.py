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
    adapter = Ec2VolumeSnapshots(ec2)
    roots = adapter.root_volumes([instance["InstanceId"]])
    assert roots == {instance["InstanceId"]: root_volume}
    taken = adapter.snapshot_instance(instance["InstanceId"], roots[instance["InstanceId"]], TAGS, "pre-patch")
    assert len(taken) == len(instance["BlockDeviceMappings"]) == 2
    assert [s.volume_id for s in taken if s.root] == [root_volume]
    described = ec2.describe_snapshots(SnapshotIds=[s.snapshot_id for s in taken])["Snapshots"]
    assert all({t["Key"]: t["Value"] for t in s["Tags"]} == TAGS for s in described)


def test_ec2_snapshots_unknown_instance_is_refused_with_its_code(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with pytest.raises(SnapshotRefused, match=r"InvalidInstanceID.NotFound"):
        Ec2VolumeSnapshots(ec2).snapshot_instance("i-0123456789abcdef0", None, TAGS, "pre-patch")


def test_ec2_root_volumes_leave_out_terminated_and_unknown_instances(aws: None) -> None:
    # Given two running instances, a terminated one, and an id EC2 does not know (which fails a whole call)
    ec2 = boto3.client("ec2", region_name=REGION)
    running = [_instance(ec2) for _ in range(2)]
    terminated = _instance(ec2)["InstanceId"]
    ec2.terminate_instances(InstanceIds=[terminated])
    unknown = "i-0123456789abcdef0"
    calls: list[list[str]] = []
    ec2.meta.events.register(
        "before-parameter-build.ec2.DescribeInstances", lambda params, **_: calls.append(params.get("InstanceIds", []))
    )
    # When their root volumes are described together
    roots = Ec2VolumeSnapshots(ec2).root_volumes(
        [running[0]["InstanceId"], unknown, terminated, running[1]["InstanceId"]]
    )
    # Then each running instance maps to the volume at its root device; the others are absent
    assert roots == {
        i["InstanceId"]: next(
            m["Ebs"]["VolumeId"] for m in i["BlockDeviceMappings"] if m["DeviceName"] == i["RootDeviceName"]
        )
        for i in running
    }
    # And the batch the unknown id failed was described again in halves, down to the unknown id alone
    assert len(calls[0]) == 4
    assert [unknown] in calls
    assert len(calls) == 5  # 4 ids; halves of 2 (one fails); that half's two single ids


def test_ec2_root_volumes_describe_up_to_the_batch_size_per_call(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    launched = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=5, MaxCount=5)["Instances"]]
    monkeypatch.setattr("patchpilot.integrations.ec2_snapshots.DESCRIBE_BATCH", 2)
    calls: list[int] = []
    ec2.meta.events.register(
        "before-parameter-build.ec2.DescribeInstances", lambda params, **_: calls.append(len(params["InstanceIds"]))
    )
    roots = Ec2VolumeSnapshots(ec2).root_volumes(launched)
    assert sorted(roots) == sorted(launched)
    assert all(volume is not None and volume.startswith("vol-") for volume in roots.values())
    assert calls == [2, 2, 1]


def test_ec2_snapshots_tagged_finds_only_matching_tags_and_delete_is_idempotent(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    adapter = Ec2VolumeSnapshots(ec2)
    instance = _instance(ec2)
    taken = adapter.snapshot_instance(instance["InstanceId"], None, TAGS, "pre-patch")
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
