"""A deployed PatchPilot stack, found by its CloudFormation outputs (and a stand-in of one for the local runtime)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
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


class StackOutputsStandIn:
    """CloudFormation DescribeStacks for stacks registered here, served through the default session's hooks.

    moto's CloudFormation needs packages the local runtime does not install (openapi-spec-validator), and only the
    outputs matter to the CLI: this answers the way the service does, a ValidationError for an unknown stack.
    """

    _PARAMS = "patchpilot_local_stack_params"

    def __init__(self) -> None:
        self.stacks: dict[str, dict[str, str]] = {}

    def install(self, events: Any) -> None:
        events.register_first("before-parameter-build.cloudformation.DescribeStacks", self._remember)
        events.register_first("before-call.cloudformation.DescribeStacks", self._describe)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[self._PARAMS] = dict(params)

    def _describe(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        name = str(context.get(self._PARAMS, {}).get("StackName", ""))
        if name not in self.stacks:
            error = {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}
            return _response(400), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        outputs = [{"OutputKey": key, "OutputValue": value} for key, value in self.stacks[name].items()]
        stack = {
            "StackName": name,
            "StackId": f"arn:aws:cloudformation:local:123456789012:stack/{name}/local",
            "StackStatus": "CREATE_COMPLETE",
            "CreationTime": datetime.now(UTC),
            "Outputs": outputs,
        }
        return _response(200), {"Stacks": [stack], "ResponseMetadata": {"HTTPStatusCode": 200}}


def _response(status: int) -> AWSResponse:
    return AWSResponse("https://cloudformation.local.patchpilot", status, HTTPHeaders(), None)


_STAND_INS: dict[int, StackOutputsStandIn] = {}


def register_stack_outputs(runtime: LocalRuntime, stack_name: str) -> dict[str, str]:
    """Make `stack_name` a stack whose Outputs name the runtime's resources: the CLI then finds them there."""
    session = boto3.DEFAULT_SESSION
    if session is None:
        raise RuntimeError("register_stack_outputs needs a started LocalRuntime")
    stand_in = _STAND_INS.get(id(session))
    if stand_in is None:
        stand_in = _STAND_INS[id(session)] = StackOutputsStandIn()
        stand_in.install(session.events)
    outputs = local_outputs(runtime)
    stand_in.stacks[stack_name] = outputs
    return outputs
