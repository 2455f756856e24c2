"""SSM + EC2 adapter of the FleetComplianceSource port: paginated reads, throttling left to botocore's retries.

The clients are built with botocore's ``adaptive`` retry mode (client-side rate limiting on top of ``standard``
retries of ThrottlingException and friends; botocore "Retries" guide), so a refresh of a large fleet slows down
instead of failing. Any read that still fails raises ``ComplianceReadFailed``: the caller keeps its previous data.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from patchpilot.integrations.compliance_ports import FleetComplianceSource
from patchpilot.integrations.ssm_patches import patch_state
from patchpilot.models.compliance import (
    ComplianceReadFailed,
    Ec2InstanceInfo,
    ManagedNodeInfo,
    MissingPatch,
    OpenInvocation,
    PatchStateCounts,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

PATCH_DOCUMENT = "AWS-RunPatchBaseline"
OPEN_COMMAND_STATUSES = ("Pending", "InProgress")
OPEN_INVOCATION_STATUSES = frozenset({"Pending", "InProgress", "Delayed"})
LACKING_STATES = ["Missing", "Failed", "InstalledPendingReboot", "InstalledRejected"]
PATCH_GROUP_TAG_KEYS = ("PatchGroup", "Patch Group")  # the only two keys Patch Manager honours
LIVE_EC2_STATES = ["pending", "running", "stopping", "stopped"]
T = TypeVar("T")


def _reading(what: str, read: Callable[[], T]) -> T:
    try:
        return read()
    except (ClientError, BotoCoreError) as error:
        raise ComplianceReadFailed(f"{what}: {error}") from error


class SsmFleetComplianceSource(FleetComplianceSource):
    """DescribeInstances, DescribeInstanceInformation, DescribeInstancePatchStates/Patches and ListCommands."""

    def __init__(self, ssm: "SSMClient", ec2: "EC2Client", open_commands_window: timedelta = timedelta(days=3)) -> None:
        self._ssm = ssm
        self._ec2 = ec2
        self._window = open_commands_window

    def ec2_instances(self) -> list[Ec2InstanceInfo]:
        def read() -> list[Ec2InstanceInfo]:
            pages = self._ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-state-name", "Values": LIVE_EC2_STATES}]
            )
            return [
                _ec2_info(instance)
                for page in pages
                for reservation in page.get("Reservations", [])
                for instance in reservation.get("Instances", [])
            ]

        return _reading("ec2:DescribeInstances", read)

    def managed_nodes(self, node_ids: list[str] | None = None) -> list[ManagedNodeInfo]:
        def read() -> list[ManagedNodeInfo]:
            paginator = self._ssm.get_paginator("describe_instance_information")
            if node_ids is None:
                pages: Iterator[Any] = iter(paginator.paginate())
            else:
                pages = iter(paginator.paginate(Filters=[{"Key": "InstanceIds", "Values": node_ids}]))
            return [
                ManagedNodeInfo(
                    node_id=info["InstanceId"],
                    ping_status=info.get("PingStatus", "Unknown"),
                    last_ping=info.get("LastPingDateTime"),
                    platform_type=info.get("PlatformType", ""),
                    platform_name=info.get("PlatformName", ""),
                    platform_version=info.get("PlatformVersion", ""),
                    resource_type=info.get("ResourceType", "EC2Instance"),
                )
                for page in pages
                for info in page.get("InstanceInformationList", [])
            ]

        return _reading("ssm:DescribeInstanceInformation", read)

    def patch_states(self, node_ids: list[str]) -> dict[str, PatchStateCounts]:
        def read() -> dict[str, PatchStateCounts]:
            states: dict[str, PatchStateCounts] = {}
            paginator = self._ssm.get_paginator("describe_instance_patch_states")
            for start in range(0, len(node_ids), 50):  # at most 50 InstanceIds per call
                for page in paginator.paginate(InstanceIds=node_ids[start : start + 50]):
                    for row in page.get("InstancePatchStates", []):
                        states[row["InstanceId"]] = _counts(row)
            return states

        return _reading("ssm:DescribeInstancePatchStates", read)

    def lacking_patches(self, node_id: str) -> list[MissingPatch]:
        def read() -> list[MissingPatch]:
            pages = self._ssm.get_paginator("describe_instance_patches").paginate(
                InstanceId=node_id, Filters=[{"Key": "State", "Values": LACKING_STATES}]
            )
            return [
                MissingPatch(
                    patch_id=row["KBId"],
                    title=row.get("Title", ""),
                    classification=row.get("Classification", ""),
                    severity=row.get("Severity", ""),
                    state=patch_state(row["State"]).value,  # type: ignore[arg-type]  # filtered to those four
                    cve_ids=tuple(cve for cve in (row.get("CVEIds") or "").split(",") if cve),
                )
                for page in pages
                for row in page.get("Patches", [])
            ]

        return _reading("ssm:DescribeInstancePatches", read)

    def open_invocations(self) -> list[OpenInvocation]:
        """Running AWS-RunPatchBaseline invocations of commands sent in the last few days (ListCommands filters)."""

        def read() -> list[OpenInvocation]:
            since = (datetime.now(UTC) - self._window).strftime("%Y-%m-%dT%H:%M:%SZ")
            found: list[OpenInvocation] = []
            for status in OPEN_COMMAND_STATUSES:
                pages = self._ssm.get_paginator("list_commands").paginate(
                    Filters=[
                        {"key": "DocumentName", "value": PATCH_DOCUMENT},
                        {"key": "Status", "value": status},
                        {"key": "InvokedAfter", "value": since},
                    ]
                )
                for page in pages:
                    for command in page.get("Commands", []):
                        operation = ((command.get("Parameters") or {}).get("Operation") or ["Scan"])[0]
                        found.extend(
                            OpenInvocation.model_validate(
                                {"node_id": node_id, "operation": operation, "comment": command.get("Comment", "")}
                            )
                            for node_id in self._open_nodes(command["CommandId"])
                            if operation in ("Scan", "Install")
                        )
            return found

        return _reading("ssm:ListCommands", read)

    def command_requested_at(self, command_id: str) -> datetime | None:
        def read() -> datetime | None:
            try:
                commands = self._ssm.list_commands(CommandId=command_id).get("Commands", [])
            except ClientError as error:
                if error.response["Error"]["Code"] == "InvalidCommandId":
                    return None
                raise
            return commands[0].get("RequestedDateTime") if commands else None

        return _reading("ssm:ListCommands", read)

    def _open_nodes(self, command_id: str) -> list[str]:
        pages = self._ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id)
        return [
            invocation["InstanceId"]
            for page in pages
            for invocation in page.get("CommandInvocations", [])
            if invocation.get("Status") in OPEN_INVOCATION_STATUSES
        ]


def _ec2_info(instance: Any) -> Ec2InstanceInfo:
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    group = next((tags[key] for key in PATCH_GROUP_TAG_KEYS if tags.get(key)), None)
    return Ec2InstanceInfo(
        node_id=instance["InstanceId"],
        state=instance.get("State", {}).get("Name", "unknown"),
        patch_group=group,
        platform=instance.get("PlatformDetails", ""),
    )


def _counts(row: Any) -> PatchStateCounts:
    return PatchStateCounts(
        patch_group=row.get("PatchGroup", ""),
        baseline_id=row.get("BaselineId", ""),
        operation=row.get("Operation", "Scan"),
        operation_end=row["OperationEndTime"],
        installed=row.get("InstalledCount", 0),
        installed_other=row.get("InstalledOtherCount", 0),
        installed_pending_reboot=row.get("InstalledPendingRebootCount", 0),
        installed_rejected=row.get("InstalledRejectedCount", 0),
        missing=row.get("MissingCount", 0),
        failed=row.get("FailedCount", 0),
        not_applicable=row.get("NotApplicableCount", 0),
        critical_non_compliant=row.get("CriticalNonCompliantCount", 0),
        security_non_compliant=row.get("SecurityNonCompliantCount", 0),
    )
