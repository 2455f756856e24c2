"""SSM adapter of the CommandDirectory port."""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import CommandDirectory, PatchComplianceReader
from patchpilot.models.patches import InstancePatchSummary
from patchpilot.models.records import CommandInfo, InvocationInfo, ManagedInstance

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class SsmCommandDirectory(CommandDirectory):
    """Run Command and fleet inventory through the SSM API."""

    def __init__(self, client: "SSMClient") -> None:
        self._client = client

    def describe_command(self, command_id: str) -> CommandInfo | None:
        try:
            commands = self._client.list_commands(CommandId=command_id)["Commands"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "InvalidCommandId":
                return None
            raise
        if not commands:
            return None
        command = commands[0]
        return CommandInfo(
            command_id=command_id,
            document_name=command.get("DocumentName", ""),
            comment=command.get("Comment", ""),
            status=command.get("Status", ""),
            target_count=command.get("TargetCount", 0),
            expires_after=command.get("ExpiresAfter"),
        )

    def list_invocations(self, command_id: str) -> list[InvocationInfo]:
        paginator = self._client.get_paginator("list_command_invocations")
        return [
            InvocationInfo(command_id=command_id, instance_id=invocation["InstanceId"], status=invocation["Status"])
            for page in paginator.paginate(CommandId=command_id)
            for invocation in page.get("CommandInvocations", [])
        ]

    def count_managed_instances(self, tag_key: str, tag_value: str) -> int:
        return len(self.managed_instances(tag_key, tag_value))

    def managed_instances(self, tag_key: str, tag_value: str) -> list[ManagedInstance]:
        paginator = self._client.get_paginator("describe_instance_information")
        pages = paginator.paginate(Filters=[{"Key": f"tag:{tag_key}", "Values": [tag_value]}])
        return [
            ManagedInstance(
                instance_id=info["InstanceId"],
                ping_status=info.get("PingStatus", "Unknown"),
                platform_type=info.get("PlatformType", ""),
                platform_name=info.get("PlatformName", ""),
                platform_version=info.get("PlatformVersion", ""),
            )
            for page in pages
            for info in page.get("InstanceInformationList", [])
        ]


class SsmPatchComplianceReader(PatchComplianceReader):
    """DescribeInstancePatchStates, in batches of 50 instances."""

    def __init__(self, client: "SSMClient") -> None:
        self._client = client

    def summaries(self, instance_ids: list[str]) -> list[InstancePatchSummary]:
        rows: list[InstancePatchSummary] = []
        for start in range(0, len(instance_ids), 50):
            paginator = self._client.get_paginator("describe_instance_patch_states")
            for page in paginator.paginate(InstanceIds=instance_ids[start : start + 50]):
                rows.extend(
                    InstancePatchSummary(
                        instance_id=state["InstanceId"],
                        patch_group=state.get("PatchGroup", ""),
                        baseline_id=state.get("BaselineId", ""),
                        operation=state.get("Operation", ""),
                        operation_end_time=state["OperationEndTime"],
                        installed=state.get("InstalledCount", 0),
                        installed_other=state.get("InstalledOtherCount", 0),
                        installed_pending_reboot=state.get("InstalledPendingRebootCount", 0),
                        installed_rejected=state.get("InstalledRejectedCount", 0),
                        missing=state.get("MissingCount", 0),
                        failed=state.get("FailedCount", 0),
                        not_applicable=state.get("NotApplicableCount", 0),
                    )
                    for state in page.get("InstancePatchStates", [])
                )
        return rows
