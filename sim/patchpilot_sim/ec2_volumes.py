"""EBS snapshots and root-volume replacement for the simulated fleet, behind the EC2 calls production makes.

moto 5.2.5 implements CreateSnapshots (its snapshots know nothing of what is on the volume) but not
CreateReplaceRootVolumeTask / DescribeReplaceRootVolumeTasks. This stand-in serves all five calls PatchPilot makes
for the simulated instances, modelled on the EC2 API reference:

- CreateSnapshots: one snapshot per attached EBS volume of the instance (root included unless ExcludeBootVolume),
  crash-consistent at the call (the root snapshot records the instance's patch level at that moment); each snapshot
  starts ``pending`` and is ``completed`` SNAPSHOT_MINUTES of simulated time later. Tags from TagSpecifications
  (ResourceType ``snapshot``). Errors: InvalidInstanceID.NotFound, SnapshotLimitExceeded (the account's snapshot
  quota), and a volume that cannot be snapshotted (fault injection: ``refuse``).
- DescribeSnapshots: OwnerIds ``self``, SnapshotIds, Filters ``tag:<key>``/``tag-key``/``status``.
- DeleteSnapshot: InvalidSnapshot.NotFound for an unknown id.
- CreateReplaceRootVolumeTask (SnapshotId): the snapshot must exist, be ``completed`` and have been taken from this
  instance's root volume (else InvalidParameterValue / IncorrectState); idempotent by ClientToken. The task goes
  ``pending`` (the replacement volume is created) -> ``in-progress`` (the old one detached, the new one attached,
  the instance restarts) -> ``succeeded``; the instance then has the snapshot's patch level and is healthy again.
- DescribeReplaceRootVolumeTasks: by ReplaceRootVolumeTaskIds or Filters ``instance-id``.

Volumes are the instance's block device mappings in moto's EC2 (what DescribeInstances answers), read once per
instance through ``block_devices`` (``moto_block_devices``: from moto's instance, without a DescribeInstances call).
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from moto.backends import get_backend

from patchpilot_sim import patches as pm
from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.fleet import ACCOUNT_ID, SimulatedApiError, SimulatedInstance

SNAPSHOT_MINUTES = 10.0  # simulated time until a snapshot is `completed` (EBS completes asynchronously)
REPLACE_PENDING_MINUTES = 3.0  # creating the replacement volume from the snapshot
REPLACE_SWAP_MINUTES = 2.0  # detach, attach, restart
DEFAULT_SNAPSHOT_QUOTA = 100_000  # EBS snapshots per Region (Service Quotas: "Snapshots per Region")

BlockDevices = Callable[[str], tuple[str, dict[str, str]]]  # instance id -> (root device name, {device: volume id})


@dataclass
class SimulatedSnapshot:
    snapshot_id: str
    volume_id: str
    instance_id: str
    root: bool
    started: datetime
    description: str
    tags: dict[str, str]
    patch_level: dict[str, pm.InstancePatchRecord] = field(default_factory=dict)  # root snapshots only

    def state(self, now: datetime) -> str:
        return "completed" if now >= self.started + timedelta(minutes=SNAPSHOT_MINUTES) else "pending"


@dataclass
class ReplaceRootVolumeTask:
    task_id: str
    instance_id: str
    snapshot_id: str
    client_token: str
    started: datetime
    tags: dict[str, str]
    state: str = "pending"
    completed: datetime | None = None


def _tags(params: dict[str, Any], resource_type: str) -> dict[str, str]:
    return {
        tag["Key"]: tag["Value"]
        for spec in params.get("TagSpecifications", [])
        if spec.get("ResourceType") == resource_type
        for tag in spec.get("Tags", [])
    }


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


class Ec2VolumesStandIn:
    """EC2's snapshot and root-volume-replacement calls for the simulated fleet."""

    def __init__(
        self,
        clock: SimClock,
        scheduler: Scheduler,
        instances: dict[str, SimulatedInstance],
        block_devices: BlockDevices,
        lock: threading.RLock,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.instances = instances
        self.block_devices = block_devices
        self.snapshots: dict[str, SimulatedSnapshot] = {}
        self.tasks: dict[str, ReplaceRootVolumeTask] = {}
        self.refuse: dict[str, tuple[str, str]] = {}  # instance id -> (EC2 error code, message): fault injection
        self.snapshot_quota = DEFAULT_SNAPSHOT_QUOTA
        self._devices: dict[str, tuple[str, dict[str, str]]] = {}
        self._ids = itertools.count(1)
        self._lock = lock

    @property
    def operations(self) -> frozenset[str]:
        """The EC2 operations this stand-in serves (every `_op_<Operation>` method)."""
        return frozenset(name.removeprefix("_op_") for name in dir(self) if name.startswith("_op_"))

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_op_{operation}")
        with self._lock:
            result: dict[str, Any] = handler(params)
            return result

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):017x}"

    def _instance(self, instance_id: str) -> SimulatedInstance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise SimulatedApiError("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist")
        return instance

    def _volumes(self, instance_id: str) -> tuple[str, dict[str, str]]:
        if instance_id not in self._devices:
            self._devices[instance_id] = self.block_devices(instance_id)
        return self._devices[instance_id]

    def _snapshot_view(self, snapshot: SimulatedSnapshot) -> dict[str, Any]:
        state = snapshot.state(self.clock.now())
        return {
            "SnapshotId": snapshot.snapshot_id,
            "VolumeId": snapshot.volume_id,
            "State": state,
            "Progress": "100%" if state == "completed" else "0%",
            "StartTime": snapshot.started,
            "Description": snapshot.description,
            "OwnerId": ACCOUNT_ID,
            "VolumeSize": 8,
            "Encrypted": False,
            "Tags": _tag_list(snapshot.tags),
        }

    # -- snapshots -----------------------------------------------------------------------------------------------
    def _op_CreateSnapshots(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        spec = params["InstanceSpecification"]
        instance = self._instance(spec["InstanceId"])
        if instance.instance_id in self.refuse:
            raise SimulatedApiError(*self.refuse[instance.instance_id])
        root_device, devices = self._volumes(instance.instance_id)
        excluded = set(spec.get("ExcludeDataVolumeIds", []))
        if devices.get(root_device) in excluded:
            raise SimulatedApiError("InvalidParameterValue", "ExcludeDataVolumeIds cannot name the root volume")
        chosen = [
            (device, volume)
            for device, volume in sorted(devices.items())
            if volume not in excluded and not (device == root_device and spec.get("ExcludeBootVolume"))
        ]
        if len(self.snapshots) + len(chosen) > self.snapshot_quota:
            raise SimulatedApiError(
                "SnapshotLimitExceeded", "You have reached the maximum number of snapshots allowed in this Region"
            )
        now, tags = self.clock.now(), _tags(params, "snapshot")
        created = []
        for device, volume in chosen:
            root = device == root_device
            snapshot = SimulatedSnapshot(
                snapshot_id=self._next_id("snap"),
                volume_id=volume,
                instance_id=instance.instance_id,
                root=root,
                started=now,
                description=str(params.get("Description", "")),
                tags=dict(tags),
                patch_level=copy.deepcopy(instance.patches) if root else {},
            )
            self.snapshots[snapshot.snapshot_id] = snapshot
            created.append(self._snapshot_view(snapshot))
        return {"Snapshots": created}

    def _matches(self, snapshot: SimulatedSnapshot, filters: list[dict[str, Any]]) -> bool:
        for flt in filters:
            name, values = flt["Name"], set(flt.get("Values", []))
            if name.startswith("tag:"):
                ok = snapshot.tags.get(name.removeprefix("tag:")) in values
            elif name == "tag-key":
                ok = bool(values & set(snapshot.tags))
            elif name == "status":
                ok = snapshot.state(self.clock.now()) in values
            elif name == "volume-id":
                ok = snapshot.volume_id in values
            else:
                raise SimulatedApiError("InvalidParameterValue", f"The filter '{name}' is invalid")
            if not ok:
                return False
        return True

    def _op_DescribeSnapshots(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        owners = set(params.get("OwnerIds", []))
        if owners - {"self", ACCOUNT_ID}:
            return {"Snapshots": []}
        wanted = params.get("SnapshotIds")
        if wanted:
            missing = [s for s in wanted if s not in self.snapshots]
            if missing:
                raise SimulatedApiError("InvalidSnapshot.NotFound", f"The snapshot '{missing[0]}' does not exist.")
        chosen = [self.snapshots[s] for s in wanted] if wanted else list(self.snapshots.values())
        filters = params.get("Filters", [])
        return {"Snapshots": [self._snapshot_view(s) for s in chosen if self._matches(s, filters)]}

    def _op_DeleteSnapshot(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        snapshot_id = params["SnapshotId"]
        if snapshot_id not in self.snapshots:
            raise SimulatedApiError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
        del self.snapshots[snapshot_id]
        return {}

    # -- root volume replacement ---------------------------------------------------------------------------------
    def _task_view(self, task: ReplaceRootVolumeTask) -> dict[str, Any]:
        view: dict[str, Any] = {
            "ReplaceRootVolumeTaskId": task.task_id,
            "InstanceId": task.instance_id,
            "TaskState": task.state,
            "StartTime": task.started.isoformat(),
            "SnapshotId": task.snapshot_id,
            "DeleteReplacedRootVolume": False,
            "Tags": _tag_list(task.tags),
        }
        if task.completed is not None:
            view["CompleteTime"] = task.completed.isoformat()
        return view

    def _restorable(self, instance: SimulatedInstance, snapshot_id: str) -> SimulatedSnapshot:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            raise SimulatedApiError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
        root_device, devices = self._volumes(instance.instance_id)
        if not snapshot.root or snapshot.volume_id != devices.get(root_device):
            raise SimulatedApiError(
                "InvalidParameterValue",
                f"The snapshot {snapshot_id} was not created from the root volume of {instance.instance_id}",
            )
        if snapshot.state(self.clock.now()) != "completed":
            raise SimulatedApiError("IncorrectState", f"The snapshot '{snapshot_id}' is not completed")
        return snapshot

    def _op_CreateReplaceRootVolumeTask(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        instance = self._instance(params["InstanceId"])
        token = str(params.get("ClientToken", ""))
        for task in self.tasks.values():
            if token and task.client_token == token:
                return {"ReplaceRootVolumeTask": self._task_view(task)}
        if "ImageId" in params or params.get("SnapshotId") is None:
            raise SimulatedApiError(
                "InvalidParameterCombination", "PatchPilot's stand-in restores from a snapshot only"
            )
        if any(
            t.instance_id == instance.instance_id and t.state in ("pending", "in-progress") for t in self.tasks.values()
        ):
            raise SimulatedApiError("IncorrectState", f"A root volume replacement of {instance.instance_id} is running")
        snapshot = self._restorable(instance, params["SnapshotId"])
        task = ReplaceRootVolumeTask(
            task_id=self._next_id("replacevol"),
            instance_id=instance.instance_id,
            snapshot_id=snapshot.snapshot_id,
            client_token=token,
            started=self.clock.now(),
            tags=_tags(params, "replace-root-volume-task"),
        )
        self.tasks[task.task_id] = task
        self.scheduler.after(REPLACE_PENDING_MINUTES * 60, lambda: self._swap(task.task_id))
        return {"ReplaceRootVolumeTask": self._task_view(task)}

    def _swap(self, task_id: str) -> None:
        with self._lock:
            self.tasks[task_id].state = "in-progress"
        self.scheduler.after(REPLACE_SWAP_MINUTES * 60, lambda: self._succeed(task_id), chained=True)

    def _succeed(self, task_id: str) -> None:
        with self._lock:
            task = self.tasks[task_id]
            instance = self.instances[task.instance_id]
            instance.patches = copy.deepcopy(self.snapshots[task.snapshot_id].patch_level)
            instance.healthy = True  # the restarted instance boots the pre-patch root volume
            task.state, task.completed = "succeeded", self.clock.now()

    def _op_DescribeReplaceRootVolumeTasks(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted = params.get("ReplaceRootVolumeTaskIds")
        tasks = [self.tasks[t] for t in wanted if t in self.tasks] if wanted else list(self.tasks.values())
        for flt in params.get("Filters", []):
            if flt["Name"] != "instance-id":
                raise SimulatedApiError("InvalidParameterValue", f"The filter '{flt['Name']}' is invalid")
            tasks = [t for t in tasks if t.instance_id in flt.get("Values", [])]
        return {"ReplaceRootVolumeTasks": [self._task_view(t) for t in tasks]}


def moto_block_devices(account_id: str, region: str) -> BlockDevices:
    """Block devices of moto's EC2 instances of the local runtime, as DescribeInstances reports them.

    Read from moto's instance itself (``root_device_name`` and the EBS volume of each device in its block device
    mapping, what DescribeInstances serialises as ``RootDeviceName`` and ``BlockDeviceMappings[].Ebs.VolumeId``),
    not through a DescribeInstances call per instance: the stand-in reads every snapshotted instance's devices.
    """

    def block_devices(instance_id: str) -> tuple[str, dict[str, str]]:
        instance = get_backend("ec2")[account_id][region].get_instance(instance_id)
        devices = {
            device: str(block.volume_id) for device, block in instance.get_block_device_mapping if block.volume_id
        }
        return str(instance.root_device_name or "/dev/xvda"), devices

    return block_devices
