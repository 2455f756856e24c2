"""EC2 adapter of the VolumeSnapshots port: multi-volume snapshots, their retention, root-volume restores.

- ``CreateSnapshots`` (InstanceSpecification): one snapshot per attached EBS volume, crash-consistent across the
  instance; the snapshots are point-in-time at the call and complete asynchronously (EC2 API reference,
  CreateSnapshots; EBS user guide, "Create multi-volume snapshots").
- The response names each snapshot's volume but not its device: the root volume is the one mapped at the
  instance's ``RootDeviceName`` (DescribeInstances).
- ``CreateReplaceRootVolumeTask`` with ``SnapshotId`` restores the root volume from a snapshot of that instance's
  root volume; the instance restarts; the task goes pending -> in-progress -> succeeded (or failing -> failed /
  failed-detached) (EC2 API reference, CreateReplaceRootVolumeTask, ReplaceRootVolumeTask).
"""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import SnapshotRefused, VolumeSnapshots
from patchpilot.models.snapshots import VolumeSnapshot

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

GONE_SNAPSHOT_CODES = frozenset({"InvalidSnapshot.NotFound"})
GONE_STATES = frozenset({"shutting-down", "terminated"})


class Ec2VolumeSnapshots(VolumeSnapshots):
    """Snapshots and restores through the EC2 API."""

    def __init__(self, client: "EC2Client") -> None:
        self._client = client

    def _root_volume(self, instance_id: str) -> str | None:
        reservations = self._client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        for reservation in reservations:
            for instance in reservation.get("Instances", []):
                if instance.get("State", {}).get("Name") in GONE_STATES:
                    raise SnapshotRefused("InstanceTerminated", f"{instance_id} is {instance['State']['Name']}")
                root = instance.get("RootDeviceName")
                for mapping in instance.get("BlockDeviceMappings", []):
                    if mapping.get("DeviceName") == root:
                        return mapping.get("Ebs", {}).get("VolumeId")
        return None

    def snapshot_instance(self, instance_id: str, tags: dict[str, str], description: str) -> list[VolumeSnapshot]:
        try:
            root_volume = self._root_volume(instance_id)
            response = self._client.create_snapshots(
                InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": False},
                Description=description,
                TagSpecifications=[
                    {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                ],
            )
        except ClientError as error:
            details = error.response.get("Error", {})
            raise SnapshotRefused(str(details.get("Code", "Unknown")), str(details.get("Message", ""))) from error
        return [
            VolumeSnapshot(
                snapshot_id=snapshot["SnapshotId"],
                volume_id=snapshot["VolumeId"],
                root=snapshot["VolumeId"] == root_volume,
            )
            for snapshot in response.get("Snapshots", [])
        ]

    def snapshots_tagged(self, tags: dict[str, str], started_before: datetime) -> dict[str, dict[str, str]]:
        filters: list[Any] = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
        found: dict[str, dict[str, str]] = {}
        pages = self._client.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], Filters=filters)
        for page in pages:
            for snapshot in page.get("Snapshots", []):
                if snapshot["StartTime"] < started_before:
                    found[snapshot["SnapshotId"]] = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}
        return found

    def delete_snapshot(self, snapshot_id: str) -> bool:
        try:
            self._client.delete_snapshot(SnapshotId=snapshot_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in GONE_SNAPSHOT_CODES:
                return False
            raise
        return True

    def replace_root_volume(self, instance_id: str, snapshot_id: str, client_token: str, tags: dict[str, str]) -> str:
        response = self._client.create_replace_root_volume_task(
            InstanceId=instance_id,
            SnapshotId=snapshot_id,
            ClientToken=client_token,
            DeleteReplacedRootVolume=False,
            TagSpecifications=[
                {"ResourceType": "replace-root-volume-task", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )
        return str(response["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"])

    def replace_root_volume_state(self, task_id: str) -> str:
        tasks = self._client.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[task_id])
        found = tasks.get("ReplaceRootVolumeTasks", [])
        return str(found[0]["TaskState"]) if found else "unknown"
