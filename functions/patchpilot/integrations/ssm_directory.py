"""SSM adapter of the CommandDirectory port."""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import CommandDirectory
from patchpilot.models.records import CommandInfo, InvocationInfo

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
        )

    def list_invocations(self, command_id: str) -> list[InvocationInfo]:
        paginator = self._client.get_paginator("list_command_invocations")
        return [
            InvocationInfo(command_id=command_id, instance_id=invocation["InstanceId"], status=invocation["Status"])
            for page in paginator.paginate(CommandId=command_id)
            for invocation in page.get("CommandInvocations", [])
        ]

    def count_managed_instances(self, tag_key: str, tag_value: str) -> int:
        paginator = self._client.get_paginator("describe_instance_information")
        pages = paginator.paginate(Filters=[{"Key": f"tag:{tag_key}", "Values": [tag_value]}])
        return sum(len(page.get("InstanceInformationList", [])) for page in pages)
