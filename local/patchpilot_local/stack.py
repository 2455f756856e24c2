"""A deployed PatchPilot stack, found by its CloudFormation outputs (and a stand-in of one for the local runtime)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchpilot_local.invoke import InputError

if TYPE_CHECKING:
    from patchpilot_local.runtime import LocalRuntime

DEFAULT_STACK_NAME = "patchpilot"
STACK_ENV = "PATCHPILOT_STACK"
REQUIRED_OUTPUTS = (
    "RolloutStateMachineArn",
    "RunsTableName",
    "AlertTopicArn",
    "StartRolloutFunctionName",
    "DecideApprovalFunctionName",
)


def default_stack_name() -> str:
    """`$PATCHPILOT_STACK`, else `patchpilot`."""
    return os.environ.get(STACK_ENV) or DEFAULT_STACK_NAME


def aws_client(service: str, region: str | None) -> Any:
    """A client of the default boto3 session (the local runtime's hooks apply to it)."""
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


@dataclass(frozen=True)
class StackOutputs:
    """The outputs of one deployed stack."""

    stack_name: str
    region: str | None
    values: dict[str, str]

    @property
    def state_machine_arn(self) -> str:
        return self.values["RolloutStateMachineArn"]

    @property
    def runs_table(self) -> str:
        return self.values["RunsTableName"]

    @property
    def start_function(self) -> str:
        return self.values["StartRolloutFunctionName"]

    @property
    def decide_function(self) -> str:
        return self.values["DecideApprovalFunctionName"]

    def client(self, service: str) -> Any:
        return aws_client(service, self.region)


def resolve_outputs(stack_name: str, region: str | None) -> StackOutputs:
    """The stack's outputs, or an InputError in one line (missing stack, no credentials, not a PatchPilot stack)."""
    where = f"region {region}" if region else "the default region"
    try:
        stacks = aws_client("cloudformation", region).describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            raise InputError(
                f"stack {stack_name!r} not found in {where}; deploy it (sam deploy) or pass --stack-name/--region "
                f"(default stack: ${STACK_ENV} or {DEFAULT_STACK_NAME!r})"
            ) from None
        raise InputError(f"cannot read stack {stack_name!r} in {where}: {message}") from None
    except BotoCoreError as error:
        raise InputError(f"cannot reach CloudFormation for stack {stack_name!r}: {error}") from None
    values = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])} if stacks else {}
    missing = [key for key in REQUIRED_OUTPUTS if key not in values]
    if missing:
        raise InputError(
            f"stack {stack_name!r} has no output(s) {', '.join(missing)}: is it a PatchPilot stack (template.yaml)?"
        )
    return StackOutputs(stack_name, region, values)


def local_outputs(runtime: LocalRuntime) -> dict[str, str]:
    """What the deployed stack's Outputs would be, for the resources the local runtime created."""
    return {
        "RolloutStateMachineArn": runtime.state_machine_arn(),
        "RunsTableName": runtime.resources.table_names["RunsTable"],
        "AlertTopicArn": runtime.resources.topic_arns["AlertTopic"],
        "EventsDeadLetterQueueUrl": runtime.resources.queue_urls["EventsDeadLetterQueue"],
        "ArtifactsBucketName": runtime.bucket_names["ArtifactsBucket"],
        "StartRolloutFunctionName": "StartRolloutFunction",
        "DecideApprovalFunctionName": "DecideApprovalFunction",
    }


def register_stack_outputs(runtime: LocalRuntime, stack_name: str) -> dict[str, str]:
    """Create a CloudFormation stack (moto) whose Outputs name the runtime's resources: the CLI then finds them."""
    outputs = local_outputs(runtime)
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    runtime.admin.client("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    return outputs
