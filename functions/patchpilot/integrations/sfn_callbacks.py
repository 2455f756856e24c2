"""Step Functions adapter of the ExecutionCallbacks port."""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from pydantic import BaseModel

from patchpilot.integrations.ports import ExecutionCallbacks, RolloutStarter
from patchpilot.models.records import ExecutionAttempt

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

MAX_ATTEMPTS = 20


def attempt_name(execution_name: str, attempt: int) -> str:
    """The execution name of a run's n-th attempt (the first keeps the run's own name)."""
    return execution_name if attempt == 1 else f"{execution_name}-r{attempt}"


_CLOSED_TOKEN_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


class StepFunctionsCallbacks(ExecutionCallbacks):
    """SendTaskSuccess / SendTaskHeartbeat / SendTaskFailure; a token that already closed is reported, not raised."""

    def __init__(self, client: "SFNClient") -> None:
        self._client = client

    def resume(self, task_token: str, output: BaseModel) -> bool:
        try:
            self._client.send_task_success(taskToken=task_token, output=output.model_dump_json())
        except ClientError as error:
            if error.response["Error"]["Code"] in _CLOSED_TOKEN_ERRORS:
                return False
            raise
        return True

    def heartbeat(self, task_token: str) -> bool:
        try:
            self._client.send_task_heartbeat(taskToken=task_token)
        except ClientError as error:
            if error.response["Error"]["Code"] in _CLOSED_TOKEN_ERRORS:
                return False
            raise
        return True

    def fail(self, task_token: str, error: str, cause: str) -> bool:
        try:
            self._client.send_task_failure(taskToken=task_token, error=error[:256], cause=cause[:32768])
        except ClientError as failure:
            if failure.response["Error"]["Code"] in _CLOSED_TOKEN_ERRORS:
                return False
            raise
        return True


class StepFunctionsRolloutStarter(RolloutStarter):
    """StartExecution; an existing execution of the same name means the rollout is already under way."""

    def __init__(self, client: "SFNClient", state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def _arn(self, execution_name: str) -> str:
        return f"{self._state_machine_arn.replace(':stateMachine:', ':execution:')}:{execution_name}"

    def _describe(self, execution_name: str) -> ExecutionAttempt | None:
        try:
            described = self._client.describe_execution(executionArn=self._arn(execution_name))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise
            return None
        return ExecutionAttempt(
            name=execution_name,
            arn=described["executionArn"],
            status=described["status"],
            input=described.get("input", "{}"),
            started_at=described["startDate"],
        )

    def latest_attempt(self, execution_name: str) -> ExecutionAttempt | None:
        latest = self._describe(execution_name)
        attempt = 2
        while latest is not None and attempt <= MAX_ATTEMPTS:
            following = self._describe(attempt_name(execution_name, attempt))
            if following is None:
                break
            latest, attempt = following, attempt + 1
        return latest

    def start(self, execution_name: str, request: BaseModel) -> tuple[str, bool]:
        arn = self._arn(execution_name)
        try:
            self._client.describe_execution(executionArn=arn)
            return arn, False  # StartExecution would answer a running twin with its ARN, not an error: ask first
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise
        try:
            response = self._client.start_execution(
                stateMachineArn=self._state_machine_arn, name=execution_name, input=request.model_dump_json()
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            return arn, False
        return response["executionArn"], True
