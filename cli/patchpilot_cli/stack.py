"""A deployed PatchPilot stack, found by its CloudFormation outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchpilot_cli.errors import InputError

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
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

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
        """One client per service, created on first use and reused (`status --watch` polls with it).

        A boto3 session is not thread-safe: creating a client on every poll, on the default session the local
        runtime's threads also use, stalled the in-process workflow. A client, once created, is thread-safe.
        """
        if service not in self._clients:
            self._clients[service] = aws_client(service, self.region)
        return self._clients[service]


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
