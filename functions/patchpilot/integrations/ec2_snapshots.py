"""EC2 adapter of the VolumeSnapshots port: multi-volume snapshots, their retention, root-volume restores.

- ``CreateSnapshots`` (InstanceSpecification): one snapshot per attached EBS volume, crash-consistent across the
  instance; the snapshots are point-in-time at the call and complete asynchronously (EC2 API reference,
  CreateSnapshots; EBS user guide, "Create multi-volume snapshots").
- The response names each snapshot's volume but not its device: the root volume is the one mapped at the
  instance's ``RootDeviceName`` (DescribeInstances). A stage's instances are described in batches, not one call per
  instance: EC2 throttles each API per account and Region with a token bucket (EC2 developer guide, "Request
  throttling for the Amazon EC2 API"), so one DescribeInstances per instance of a 10,000-instance fleet would spend
  the bucket on lookups. DescribeInstances answers for every id it is given ("If you specify instance IDs, the output
  includes information for only the specified instances") but fails the whole call when one id is not valid ("If you
  specify an instance ID that is not valid, an error is returned"; EC2 API reference, DescribeInstances): such a
  batch is described again in halves until the unknown ids stand alone.
- ``CreateReplaceRootVolumeTask`` with ``SnapshotId`` restores the root volume from a snapshot of that instance's
  root volume; the instance restarts; the task goes pending -> in-progress -> succeeded (or failing -> failed /
  failed-detached) (EC2 API reference, CreateReplaceRootVolumeTask, ReplaceRootVolumeTask).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import SnapshotRefused, VolumeSnapshots
from patchpilot.models.snapshots import VolumeSnapshot

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

GONE_SNAPSHOT_CODES = frozenset({"InvalidSnapshot.NotFound"})
GONE_STATES = frozenset({"shutting-down", "terminated"})
UNKNOWN_INSTANCE_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
# Instance ids per DescribeInstances call. The DescribeInstances reference states no maximum for InstanceIds; 1,000
# is the maximum EC2 documents for its sibling instance actions (DescribeInstanceCreditSpecifications: "Maximum 1000
# explicitly specified instance IDs").
DESCRIBE_BATCH = 1000


def _root_volume(instance: Any) -> str | None:
    """The EBS volume mapped at the instance's root device (None: its root is not an EBS volume)."""
    root = instance.get("RootDeviceName")
    for mapping in instance.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root:
            volume = mapping.get("Ebs", {}).get("VolumeId")
            return str(volume) if volume else None
    return None


class Ec2VolumeSnapshots(VolumeSnapshots):
    """Snapshots and restores through the EC2 API."""

    def __init__(self, client: "EC2Client") -> None:
        self._client = client

    def root_volumes(self, instance_ids: Sequence[str]) -> dict[str, str | None]:
        roots: dict[str, str | None] = {}
        for start in range(0, len(instance_ids), DESCRIBE_BATCH):
            roots.update(self._roots_of(list(instance_ids[start : start + DESCRIBE_BATCH])))
        return roots

    def _roots_of(self, batch: list[str]) -> dict[str, str | None]:
        try:
            pages = list(self._client.get_paginator("describe_instances").paginate(InstanceIds=batch))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in UNKNOWN_INSTANCE_CODES:
                raise
            if len(batch) == 1:
                return {}
            half = len(batch) // 2
            return {**self._roots_of(batch[:half]), **self._roots_of(batch[half:])}
        return {
            instance["InstanceId"]: _root_volume(instance)
            for page in pages
            for reservation in page.get("Reservations", [])
            for instance in reservation.get("Instances", [])
            if instance.get("State", {}).get("Name") not in GONE_STATES
        }

    def snapshot_instance(
        self, instance_id: str, root_volume: str | None, tags: dict[str, str], description: str
    ) -> list[VolumeSnapshot]:
        try:
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
