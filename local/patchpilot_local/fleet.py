"""The simulated fleet: managed instances and an SSM Agent model that answers AWS-RunPatchBaseline.

It stands in, behind the same boto3 calls production makes, for what moto lacks or gets wrong (see
shared/FACTS.md): tag-target resolution at fleet scale, per-instance command progress, rate control,
status-change events, ListCommandInvocations and DescribeInstanceInformation.
"""

from __future__ import annotations

import math
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchpilot_local.clock import Scheduler, SimClock

ACCOUNT_ID = "123456789012"
SUPPORTED_DOCUMENTS = frozenset({"AWS-RunPatchBaseline"})
TERMINAL = frozenset(
    {
        "Success",
        "Failed",
        "Cancelled",
        "TimedOut",
        "DeliveryTimedOut",
        "ExecutionTimedOut",
        "Undeliverable",
        "Terminated",
        "InvalidPlatform",
        "AccessDenied",
    }
)
PLATFORMS: dict[str, tuple[str, str, str]] = {
    # PatchPilot OS name -> (PlatformType, PlatformName, PlatformVersion)
    "WINDOWS": ("Windows", "Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
    "AMAZON_LINUX_2": ("Linux", "Amazon Linux", "2"),
    "AMAZON_LINUX_2023": ("Linux", "Amazon Linux", "2023"),
    "UBUNTU": ("Linux", "Ubuntu", "22.04"),
    "REDHAT_ENTERPRISE_LINUX": ("Linux", "Red Hat Enterprise Linux", "9.4"),
    "CENTOS": ("Linux", "CentOS Stream", "9"),
}


class SimulatedApiError(Exception):
    """An SSM error response (code + message), returned to the caller as a botocore ClientError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class SimulatedInstance:
    """One managed instance and how its agent behaves."""

    instance_id: str
    patch_group: str
    platform: str
    tags: dict[str, str]
    install_outcome: str = "Success"
    install_minutes: float = 20.0
    online: bool = True
    drop_terminal_event: bool = False


@dataclass
class Invocation:
    instance: SimulatedInstance
    status: str = "Pending"
    started: datetime | None = None
    ended: datetime | None = None


@dataclass
class Command:
    command_id: str
    document_name: str
    comment: str
    parameters: dict[str, list[str]]
    targets: list[dict[str, Any]]
    max_concurrency: str
    max_errors: str
    requested: datetime
    delivery_timeout_seconds: int
    invocations: dict[str, Invocation] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)
    status: str = "Pending"
    running: int = 0
    errors: int = 0

    @property
    def finished(self) -> bool:
        return all(inv.status in TERMINAL for inv in self.invocations.values())


def _limit(value: str, total: int, minimum: int) -> int:
    if value.endswith("%"):
        return max(math.ceil(total * int(value[:-1]) / 100), minimum)
    return int(value)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SsmAgentSimulator:
    """Plays the SSM service + agent side for the simulated fleet; thread-safe."""

    def __init__(
        self,
        clock: SimClock,
        scheduler: Scheduler,
        emit_event: Callable[[dict[str, Any]], None],
        region: str,
        seed: int = 7,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.emit_event = emit_event
        self.region = region
        self.instances: dict[str, SimulatedInstance] = {}
        self.commands: dict[str, Command] = {}
        self.dropped_events: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._lock = threading.RLock()

    # -- fleet ---------------------------------------------------------------------------------------------------
    def add_instance(self, instance: SimulatedInstance) -> None:
        with self._lock:
            self.instances[instance.instance_id] = instance

    def _instances_with_tag(self, key: str, values: list[str]) -> list[SimulatedInstance]:
        return [i for i in self.instances.values() if i.tags.get(key) in values]

    def busy(self) -> bool:
        with self._lock:
            return any(not command.finished for command in self.commands.values())

    # -- API -----------------------------------------------------------------------------------------------------
    @property
    def operations(self) -> frozenset[str]:
        """The SSM operations this simulator serves (every `_op_<Operation>` method)."""
        return frozenset(name.removeprefix("_op_") for name in dir(self) if name.startswith("_op_"))

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            raise NotImplementedError(operation)
        with self._lock:
            result: dict[str, Any] = handler(params)
            return result

    def _resolve_targets(self, params: dict[str, Any]) -> list[SimulatedInstance]:
        instance_ids = params.get("InstanceIds") or []
        targets = params.get("Targets") or []
        if bool(instance_ids) == bool(targets):
            raise SimulatedApiError("InvalidParameters", "Specify exactly one of InstanceIds and Targets.")
        if instance_ids:
            if len(instance_ids) > 50:
                raise SimulatedApiError("ValidationException", "InstanceIds has at most 50 items.")
            unknown = [i for i in instance_ids if i not in self.instances]
            if unknown:
                raise SimulatedApiError("InvalidInstanceId", f"Instances not managed: {', '.join(unknown)}")
            return [self.instances[i] for i in instance_ids]
        if len(targets) > 5:
            raise SimulatedApiError("ValidationException", "Targets has at most 5 items.")
        resolved: dict[str, SimulatedInstance] = {}
        for target in targets:
            key, values = target.get("Key", ""), target.get("Values", [])
            if key.startswith("tag:"):
                matched = self._instances_with_tag(key[4:], values)
            elif key == "InstanceIds":
                matched = [self.instances[i] for i in values if i in self.instances]
            else:
                raise SimulatedApiError("InvalidTarget", f"Unsupported target key {key!r} in the simulator.")
            resolved.update({instance.instance_id: instance for instance in matched})
        return list(resolved.values())

    def _op_SendCommand(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        document = params.get("DocumentName", "")
        if document not in SUPPORTED_DOCUMENTS:
            raise SimulatedApiError("InvalidDocument", f"Document {document!r} is not known to the simulator.")
        comment = params.get("Comment", "")
        if len(comment) > 100:
            raise SimulatedApiError("ValidationException", "Comment must be at most 100 characters.")
        parameters = params.get("Parameters") or {}
        operation = (parameters.get("Operation") or ["Scan"])[0]
        if operation not in ("Scan", "Install"):
            raise SimulatedApiError("InvalidParameters", f"Operation must be Scan or Install, not {operation!r}.")
        instances = self._resolve_targets(params)
        command = Command(
            command_id=str(uuid.UUID(int=self._rng.getrandbits(128))),
            document_name=document,
            comment=comment,
            parameters=parameters,
            targets=params.get("Targets") or [],
            max_concurrency=str(params.get("MaxConcurrency", "50")),
            max_errors=str(params.get("MaxErrors", "0")),
            requested=self.clock.now(),
            delivery_timeout_seconds=int(params.get("TimeoutSeconds", 3600)),
        )
        command.invocations = {i.instance_id: Invocation(instance=i) for i in instances}
        command.queue = [i.instance_id for i in instances]
        self.commands[command.command_id] = command
        self.scheduler.after(2.0, lambda: self._dispatch(command.command_id))
        return {"Command": self._command_view(command)}

    def _dispatch(self, command_id: str) -> None:
        with self._lock:
            command = self.commands[command_id]
            if command.status == "Pending":
                command.status = "InProgress"
            total = len(command.invocations)
            concurrency = _limit(command.max_concurrency, total, 1)
            error_budget = _limit(command.max_errors, total, 0)
            while command.queue and command.running < concurrency:
                if command.errors > error_budget:
                    for instance_id in command.queue:
                        self._finish(command, instance_id, "Cancelled")
                    command.queue.clear()
                    break
                self._start(command, command.queue.pop(0))
            self._maybe_complete(command)

    def _start(self, command: Command, instance_id: str) -> None:
        invocation = command.invocations[instance_id]
        instance = invocation.instance
        if not instance.online:
            command.running += 1
            delay = command.delivery_timeout_seconds
            self.scheduler.after(delay, lambda: self._complete(command.command_id, instance_id, "DeliveryTimedOut"))
            return
        invocation.status = "InProgress"
        invocation.started = self.clock.now()
        command.running += 1
        self._emit_invocation(command, invocation)
        operation = command.parameters.get("Operation", ["Scan"])[0]
        minutes = instance.install_minutes if operation == "Install" else 2.0
        minutes *= self._rng.uniform(0.8, 1.25)
        outcome = instance.install_outcome if operation == "Install" else "Success"
        self.scheduler.after(minutes * 60, lambda: self._complete(command.command_id, instance_id, outcome))

    def _complete(self, command_id: str, instance_id: str, status: str) -> None:
        with self._lock:
            command = self.commands[command_id]
            command.running -= 1
            if status != "Success":
                command.errors += 1
            self._finish(command, instance_id, status)
        self._dispatch(command_id)

    def _finish(self, command: Command, instance_id: str, status: str) -> None:
        invocation = command.invocations[instance_id]
        invocation.status = status
        invocation.ended = self.clock.now()
        self._emit_invocation(command, invocation)

    def _maybe_complete(self, command: Command) -> None:
        if command.status in TERMINAL or not command.finished:
            return
        error_budget = _limit(command.max_errors, len(command.invocations), 0)
        command.status = "Failed" if command.errors > error_budget else "Success"
        self.emit_event(
            self._event(
                "EC2 Command Status-change Notification",
                [f"arn:aws:ec2:{self.region}:{ACCOUNT_ID}:instance/{i}" for i in command.invocations],
                {
                    "command-id": command.command_id,
                    "document-name": command.document_name,
                    "expire-after": _iso(command.requested),
                    "parameters": command.parameters,
                    "requested-date-time": _iso(command.requested),
                    "status": command.status,
                },
            )
        )

    def _emit_invocation(self, command: Command, invocation: Invocation) -> None:
        instance = invocation.instance
        event = self._event(
            "EC2 Command Invocation Status-change Notification",
            [f"arn:aws:ec2:{self.region}:{ACCOUNT_ID}:instance/{instance.instance_id}"],
            {
                "command-id": command.command_id,
                "document-name": command.document_name,
                "instance-id": instance.instance_id,
                "requested-date-time": _iso(command.requested),
                "status": invocation.status,
            },
        )
        if instance.drop_terminal_event and invocation.status in TERMINAL:
            self.dropped_events.append(event)
            return
        self.emit_event(event)

    def _event(self, detail_type: str, resources: list[str], detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.UUID(int=self._rng.getrandbits(128))),
            "detail-type": detail_type,
            "source": "aws.ssm",
            "account": ACCOUNT_ID,
            "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": resources,
            "detail": detail,
        }

    def _command_view(self, command: Command) -> dict[str, Any]:
        statuses = [inv.status for inv in command.invocations.values()]
        return {
            "CommandId": command.command_id,
            "DocumentName": command.document_name,
            "Comment": command.comment,
            "Parameters": command.parameters,
            "Targets": command.targets,
            "RequestedDateTime": command.requested,
            "Status": command.status,
            "StatusDetails": command.status,
            "MaxConcurrency": command.max_concurrency,
            "MaxErrors": command.max_errors,
            "TargetCount": len(statuses),
            "CompletedCount": sum(s in TERMINAL for s in statuses),
            "ErrorCount": sum(s in TERMINAL and s != "Success" for s in statuses),
            "DeliveryTimedOutCount": statuses.count("DeliveryTimedOut"),
            "TimeoutSeconds": command.delivery_timeout_seconds,
        }

    def _command(self, command_id: str) -> Command:
        command = self.commands.get(command_id)
        if command is None:
            raise SimulatedApiError("InvalidCommandId", f"Command {command_id} does not exist.")
        return command

    def _op_ListCommands(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if params.get("CommandId"):
            return {"Commands": [self._command_view(self._command(params["CommandId"]))]}
        return {"Commands": [self._command_view(c) for c in self.commands.values()]}

    @staticmethod
    def _page(items: list[Any], params: dict[str, Any], default_size: int) -> tuple[list[Any], str | None]:
        size = int(params.get("MaxResults") or default_size)
        start = int(params.get("NextToken") or 0)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _op_ListCommandInvocations(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        command = self._command(params["CommandId"])
        views = [
            {
                "CommandId": command.command_id,
                "InstanceId": inv.instance.instance_id,
                "DocumentName": command.document_name,
                "Comment": command.comment,
                "RequestedDateTime": command.requested,
                "Status": inv.status,
                "StatusDetails": inv.status,
            }
            for inv in command.invocations.values()
        ]
        page, token = self._page(views, params, 50)
        return {"CommandInvocations": page, **({"NextToken": token} if token else {})}

    def _op_GetCommandInvocation(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        command = self._command(params["CommandId"])
        invocation = command.invocations.get(params["InstanceId"])
        if invocation is None:
            raise SimulatedApiError("InvocationDoesNotExist", "The command has no invocation on that instance.")
        return {
            "CommandId": command.command_id,
            "InstanceId": invocation.instance.instance_id,
            "DocumentName": command.document_name,
            "Status": invocation.status,
            "StatusDetails": invocation.status,
            "ResponseCode": 0 if invocation.status == "Success" else 1,
        }

    def _op_DescribeInstanceInformation(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        instances = list(self.instances.values())
        for flt in params.get("Filters") or []:
            key, values = flt["Key"], flt["Values"]
            if key.startswith("tag:"):
                instances = [i for i in instances if i.tags.get(key[4:]) in values]
            elif key == "PingStatus":
                instances = [i for i in instances if ("Online" if i.online else "ConnectionLost") in values]
            elif key == "InstanceIds":
                instances = [i for i in instances if i.instance_id in values]
            else:
                raise SimulatedApiError("InvalidInstanceInformationFilterValue", f"Unsupported filter {key!r}.")
        views = [
            {
                "InstanceId": i.instance_id,
                "PingStatus": "Online" if i.online else "ConnectionLost",
                "PlatformType": PLATFORMS[i.platform][0],
                "PlatformName": PLATFORMS[i.platform][1],
                "PlatformVersion": PLATFORMS[i.platform][2],
                "ResourceType": "EC2Instance",
                "AgentVersion": "3.3.1142.0",
                "IsLatestVersion": True,
                "ComputerName": i.tags.get("Name", i.instance_id),
            }
            for i in instances
        ]
        page, token = self._page(views, params, 50)
        return {"InstanceInformationList": page, **({"NextToken": token} if token else {})}
