"""The simulator's EC2 volumes stand-in: snapshots capture the patch level; root-volume replacement restores it."""

import threading
from collections.abc import Iterator

import boto3
import pytest

from patchpilot_sim import patches as pm
from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.ec2_volumes import (
    REPLACE_PENDING_MINUTES,
    REPLACE_SWAP_MINUTES,
    SNAPSHOT_MINUTES,
    Ec2VolumesStandIn,
    moto_block_devices,
)
from patchpilot_sim.fleet import SimulatedApiError, SimulatedInstance
from tests.functional.aws_fixtures import ACCOUNT, REGION

INSTANCE, OTHER = "i-0000000000000000a", "i-0000000000000000b"
DEVICES = {
    INSTANCE: ("/dev/xvda", {"/dev/xvda": "vol-0000000000000000a", "/dev/sdf": "vol-0000000000000001a"}),
    OTHER: ("/dev/xvda", {"/dev/xvda": "vol-0000000000000000b"}),
}
TAGS = [{"ResourceType": "snapshot", "Tags": [{"Key": "PatchPilotStage", "Value": "prod-1"}]}]


@pytest.fixture
def volumes() -> Iterator[Ec2VolumesStandIn]:
    clock = SimClock()
    scheduler = Scheduler(clock)
    instances = {
        i: SimulatedInstance(
            i,
            "prod-1",
            "AMAZON_LINUX_2023",
            {"PatchGroup": "prod-1"},
            patches=pm.initial_patch_states("AMAZON_LINUX_2023"),
        )
        for i in (INSTANCE, OTHER)
    }
    yield Ec2VolumesStandIn(clock, scheduler, instances, lambda i: DEVICES[i], threading.RLock())
    scheduler.stop()


def _snapshot(volumes: Ec2VolumesStandIn, instance_id: str = INSTANCE) -> dict[str, str]:
    taken = volumes.handle(
        "CreateSnapshots", {"InstanceSpecification": {"InstanceId": instance_id}, "TagSpecifications": TAGS}
    )
    return {s["VolumeId"]: s["SnapshotId"] for s in taken["Snapshots"]}


def _wait(volumes: Ec2VolumesStandIn, task_id: str) -> str:
    volumes.clock.run_until(lambda: volumes.tasks[task_id].state == "succeeded")
    return volumes.tasks[task_id].state


def test_create_snapshots_takes_every_volume_pending_then_completed(volumes: Ec2VolumesStandIn) -> None:
    taken = _snapshot(volumes)
    assert sorted(taken) == ["vol-0000000000000000a", "vol-0000000000000001a"]
    described = volumes.handle(
        "DescribeSnapshots", {"OwnerIds": ["self"], "Filters": [{"Name": "tag:PatchPilotStage", "Values": ["prod-1"]}]}
    )
    assert {s["State"] for s in described["Snapshots"]} == {"pending"}
    volumes.clock.advance(SNAPSHOT_MINUTES * 60)
    described = volumes.handle("DescribeSnapshots", {"SnapshotIds": list(taken.values())})
    assert {s["State"] for s in described["Snapshots"]} == {"completed"}


def test_create_snapshots_over_the_quota_is_refused(volumes: Ec2VolumesStandIn) -> None:
    volumes.snapshot_quota = 1
    with pytest.raises(SimulatedApiError, match=r"SnapshotLimitExceeded"):
        _snapshot(volumes)
    assert volumes.snapshots == {}


def test_replace_root_volume_restores_the_pre_patch_level_and_health(volumes: Ec2VolumesStandIn) -> None:
    instance = volumes.instances[INSTANCE]
    before = {patch_id: r.state for patch_id, r in instance.patches.items()}
    root = _snapshot(volumes)["vol-0000000000000000a"]
    for record in instance.patches.values():  # the install: everything installed, and the instance broken
        record.state = pm.INSTALLED
    instance.healthy = False
    volumes.clock.advance(SNAPSHOT_MINUTES * 60)
    task = volumes.handle(
        "CreateReplaceRootVolumeTask", {"InstanceId": INSTANCE, "SnapshotId": root, "ClientToken": "t1"}
    )
    task_id = task["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"]
    assert task["ReplaceRootVolumeTask"]["TaskState"] == "pending"
    again = volumes.handle(
        "CreateReplaceRootVolumeTask", {"InstanceId": INSTANCE, "SnapshotId": root, "ClientToken": "t1"}
    )
    assert again["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"] == task_id  # idempotent by ClientToken
    assert not instance.healthy
    volumes.clock.advance((REPLACE_PENDING_MINUTES + REPLACE_SWAP_MINUTES) * 60)
    assert _wait(volumes, task_id) == "succeeded"
    assert instance.healthy
    assert {patch_id: r.state for patch_id, r in instance.patches.items()} == before
    listed = volumes.handle(
        "DescribeReplaceRootVolumeTasks", {"Filters": [{"Name": "instance-id", "Values": [INSTANCE]}]}
    )
    assert [t["TaskState"] for t in listed["ReplaceRootVolumeTasks"]] == ["succeeded"]


def test_replace_root_volume_refuses_pending_data_and_foreign_snapshots(volumes: Ec2VolumesStandIn) -> None:
    taken = _snapshot(volumes)
    other_root = _snapshot(volumes, OTHER)["vol-0000000000000000b"]
    with pytest.raises(SimulatedApiError, match=r"IncorrectState"):
        volumes.handle(
            "CreateReplaceRootVolumeTask", {"InstanceId": INSTANCE, "SnapshotId": taken["vol-0000000000000000a"]}
        )
    volumes.clock.advance(SNAPSHOT_MINUTES * 60)
    for snapshot in (taken["vol-0000000000000001a"], other_root):
        with pytest.raises(SimulatedApiError, match=r"InvalidParameterValue"):
            volumes.handle("CreateReplaceRootVolumeTask", {"InstanceId": INSTANCE, "SnapshotId": snapshot})
    with pytest.raises(SimulatedApiError, match=r"InvalidSnapshot.NotFound"):
        volumes.handle("CreateReplaceRootVolumeTask", {"InstanceId": INSTANCE, "SnapshotId": "snap-0000000000000dead"})
    assert volumes.tasks == {}


def test_moto_block_devices_are_what_describe_instances_reports(aws: None) -> None:
    # Given moto instances, one with a data volume attached besides its root volume
    ec2 = boto3.client("ec2", region_name=REGION)
    launched = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)["Instances"]]
    data = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10)["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=launched[0], Device="/dev/sdf")
    described = {
        i["InstanceId"]: (
            i["RootDeviceName"],
            {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in i["BlockDeviceMappings"]},
        )
        for r in ec2.describe_instances(InstanceIds=launched)["Reservations"]
        for i in r["Instances"]
    }
    # When the stand-in reads their block devices from moto's instances
    read = {instance_id: moto_block_devices(ACCOUNT, REGION)(instance_id) for instance_id in launched}
    # Then it reads the root device and every EBS volume DescribeInstances reports, the data volume included
    assert read == described
    assert data in read[launched[0]][1].values()
