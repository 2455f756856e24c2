"""Step Functions adapter of the RunExecutions port: a run's executions and the stage a running one works on."""

import json
import re
from typing import TYPE_CHECKING, Any

from patchpilot.integrations.ports import RunExecutions
from patchpilot.models.snapshots import RunExecution

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

HISTORY_PAGE = 100


def is_attempt_of(name: str, run_id: str) -> bool:
    """Whether an execution name is an attempt of the run: `cycle-<run>` or `<run>`, then `-r2`, `-r3`..."""
    return re.fullmatch(rf"(cycle-)?{re.escape(run_id)}(-r\d+)?", name) is not None


def _stage_of(details: dict[str, Any]) -> str | None:
    try:
        data = json.loads(details.get("input") or "{}")
    except json.JSONDecodeError:
        return None
    stage = data.get("stage") if isinstance(data, dict) else None
    if isinstance(stage, dict) and isinstance(stage.get("name"), str):
        return str(stage["name"])
    return None


class StepFunctionsRunExecutions(RunExecutions):
    """Executions of the rollout state machine named after the run; the newest state input naming a stage."""

    def __init__(self, client: "SFNClient", state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def _running_stage(self, execution_arn: str) -> str | None:
        history = self._client.get_execution_history(
            executionArn=execution_arn, reverseOrder=True, maxResults=HISTORY_PAGE
        )
        for event in history["events"]:
            details = event.get("stateEnteredEventDetails")
            stage = _stage_of(dict(details)) if details else None
            if stage:
                return stage
        return None

    def executions_of(self, run_id: str) -> list[RunExecution]:
        found: list[RunExecution] = []
        pages = self._client.get_paginator("list_executions").paginate(stateMachineArn=self._state_machine_arn)
        for page in pages:
            for execution in page["executions"]:
                if not is_attempt_of(execution["name"], run_id):
                    continue
                running = execution["status"] == "RUNNING"
                stage = self._running_stage(execution["executionArn"]) if running else None
                found.append(RunExecution(name=execution["name"], status=execution["status"], stage_name=stage))
        return found
