"""A stand-in for CloudFormation DescribeStacks: the local runtime's resources as a deployed stack's Outputs.

The operator CLI resolves a stack by its outputs; registering the runtime here lets it run against the local runtime
through the same boto3 call it makes against a real account.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

if TYPE_CHECKING:
    from patchpilot_sim.runtime import LocalRuntime


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
        "ChatDeadLetterQueueUrl": runtime.resources.queue_urls["ChatDeadLetterQueue"],
        "NotifierFunctionName": "NotifierFunction",
        "SlackInteractionUrl": "https://local.lambda-url.us-east-1.on.aws/",
        "ComplianceReportFunctionName": "ComplianceReportFunction",
    }


class StackOutputsStandIn:
    """CloudFormation DescribeStacks for stacks registered here, served through the default session's hooks.

    moto's CloudFormation needs packages the local runtime does not install (openapi-spec-validator), and only the
    outputs matter to the CLI: this answers the way the service does, a ValidationError for an unknown stack.
    """

    _PARAMS = "patchpilot_sim_stack_params"

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
