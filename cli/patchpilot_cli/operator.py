"""What an operator does to a deployed stack: start, watch, approve, and undo an exclusion."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from patchpilot.integrations.dynamodb_approvals import DynamoDBApprovalStore
from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.integrations.ports import ApprovalStore, ExclusionLedger, PatchBaselines
from patchpilot.integrations.ssm_patches import SsmPatchBaselines
from patchpilot.models.approval import ApprovalRecord, DecideApprovalRequest
from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot_cli.errors import InputError, error_lines
from patchpilot_cli.stack import StackOutputs

HISTORY_PAGE = 100
# What each request field is called on the command line, and what it accepts.
OPTION_OF = {
    "cycle": ("--cycle", "YYYY-MM, e.g. 2026-12"),
    "stages": ("--stages", "comma-separated stage names, e.g. dev,prod-1"),
    "patch_ids": ("--patch", "patch ids such as KB5034441 or openssh-server.x86_64 (at most 50)"),
    "cve_ids": ("--cve", "CVE-YYYY-NNNN (4 to 7 digits; at most 50)"),
    "bake_seconds": ("--bake-seconds", "STAGE=SECONDS with a stage name such as prod-1"),
    "approval_timeout_seconds": ("--approval-timeout", "seconds from 1 to 604800"),
    "approval_id": ("APPROVAL_ID", "8 letters/digits from the approval alert, e.g. k7m2x9qa"),
    "approver": ("--approver", "a name of 1 to 128 characters"),
    "reason": ("--reason", "at most 1000 characters"),
}


class HandlerFailed(Exception):
    """The stack's function answered with an error (its type and first lines)."""

    def __init__(self, function: str, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.function = function
        self.lines = lines


def _invalid(error: ValidationError) -> InputError:
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        option, accepted = OPTION_OF.get(loc[0] if loc else "", (".".join(loc), ""))
        given = item.get("input")
        shown = f" {given!r}" if isinstance(given, str | int) else ""
        problems.append(f"invalid {option}{shown}: {item['msg']}" + (f" (expected {accepted})" if accepted else ""))
    return InputError("; ".join(problems))


def parse_bake_seconds(values: list[str]) -> dict[str, int]:
    """`STAGE=SECONDS` pairs."""
    bakes: dict[str, int] = {}
    for value in values:
        stage, _, seconds = value.partition("=")
        if not stage or not seconds.strip().isdigit():
            raise InputError(f"invalid --bake-seconds {value!r} (expected STAGE=SECONDS, e.g. prod-1=3600)")
        bakes[stage.strip()] = int(seconds)
    return bakes


def build_start_request(**fields: Any) -> StartRolloutRequest:
    """The StartRolloutFunction payload, validated here with the function's own model (nothing is sent if bad)."""
    try:
        return StartRolloutRequest.model_validate({k: v for k, v in fields.items() if v not in (None, [], {})})
    except ValidationError as error:
        raise _invalid(error) from None


def build_decision(approval_id: str, decision: str, approver: str, reason: str | None) -> DecideApprovalRequest:
    try:
        return DecideApprovalRequest.model_validate(
            {"approval_id": approval_id, "decision": decision, "approver": approver, "reason": reason}
        )
    except ValidationError as error:
        raise _invalid(error) from None


def invoke_function(outputs: StackOutputs, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke a stack function synchronously; a function error becomes HandlerFailed."""
    response = outputs.client("lambda").invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    body = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        body = body if isinstance(body, dict) else {}
        raise HandlerFailed(function, error_lines(body.get("errorType"), body.get("errorMessage")))
    return body if isinstance(body, dict) else {"result": body}


def start(outputs: StackOutputs, request: StartRolloutRequest) -> dict[str, Any]:
    return invoke_function(outputs, outputs.start_function, request.model_dump(mode="json", exclude_defaults=True))


def decide(outputs: StackOutputs, decision: DecideApprovalRequest) -> dict[str, Any]:
    return invoke_function(outputs, outputs.decide_function, decision.model_dump(mode="json", exclude_none=True))


# -- status --------------------------------------------------------------------------------------------------------
@dataclass
class ExecutionStatus:
    name: str
    arn: str
    status: str
    started: datetime
    state: str | None = None
    stage: str | None = None
    approvals: list[ApprovalRecord] = field(default_factory=list)


def _stage_of(details: dict[str, Any]) -> str | None:
    try:
        data = json.loads(details.get("input") or "{}")
    except json.JSONDecodeError:
        return None
    stage = data.get("stage") if isinstance(data, dict) else None
    if isinstance(stage, dict) and isinstance(stage.get("name"), str):
        return str(stage["name"])
    return str(data["stage_name"]) if isinstance(data, dict) and isinstance(data.get("stage_name"), str) else None


def _current_state(sfn: Any, execution_arn: str) -> tuple[str | None, str | None]:
    """The state the execution entered last, and the stage it works on (from the newest state input naming one)."""
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=HISTORY_PAGE)
    state: str | None = None
    for event in events["events"]:
        details = event.get("stateEnteredEventDetails")
        if not details:
            continue
        state = state or details["name"]
        stage = _stage_of(details)
        if stage:
            return state, stage
    return state, None


@dataclass(frozen=True)
class StackPorts:
    """The stack's stores, through the same ports and adapters the Lambda functions use."""

    approvals: ApprovalStore
    ledger: ExclusionLedger
    baselines: PatchBaselines


def connect(outputs: StackOutputs) -> StackPorts:
    """Adapters on the stack's runs table and its region's SSM (boto3 clients in the stack's region)."""
    dynamodb = outputs.client("dynamodb")
    return StackPorts(
        approvals=DynamoDBApprovalStore(outputs.runs_table, dynamodb),
        ledger=DynamoDBExclusionLedger(outputs.runs_table, dynamodb),
        baselines=SsmPatchBaselines(outputs.client("ssm")),
    )


def pending_approvals(ports: StackPorts) -> list[ApprovalRecord]:
    """Approvals still waiting for an answer (the runs table's PendingApprovals index), earliest deadline first."""
    return ports.approvals.pending()


def status(
    outputs: StackOutputs, ports: StackPorts, limit: int = 10
) -> tuple[list[ExecutionStatus], list[ApprovalRecord]]:
    """The newest executions (current state and stage for running ones) and every pending approval."""
    sfn = outputs.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=outputs.state_machine_arn, maxResults=limit)["executions"]
    approvals = pending_approvals(ports)
    rows = []
    for item in sorted(listed, key=lambda e: e["startDate"], reverse=True):
        row = ExecutionStatus(item["name"], item["executionArn"], item["status"], item["startDate"])
        if row.status == "RUNNING":
            row.state, row.stage = _current_state(sfn, row.arn)
        row.approvals = [a for a in approvals if a.execution_id == row.arn]
        rows.append(row)
    return rows, approvals


# -- exclusions ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerRow:
    record: ExclusionRecord
    removed_by: str | None = None
    removed_at: datetime | None = None


def exclusions(ports: StackPorts, run_id: str) -> list[LedgerRow]:
    """The run's exclusions with their evidence; removed ones last, with who removed them."""
    active = [LedgerRow(record) for record in ports.ledger.exclusions_of(run_id)]
    removed = [LedgerRow(r.record, r.retired_by, r.retired_at) for r in ports.ledger.retired_of(run_id)]
    return active + removed


def exclusions_of_patch(ports: StackPorts, run_id: str, patch_id: str) -> list[LedgerRow]:
    """The active ledger rows of one patch (one per stage that excluded it); InputError when there is none."""
    active = [row for row in exclusions(ports, run_id) if row.removed_by is None]
    rows = [row for row in active if row.record.patch_id == patch_id]
    if not rows:
        excluded = sorted({row.record.patch_id for row in active})
        known = f"excluded in run {run_id}: {', '.join(excluded)}" if excluded else f"run {run_id} excluded nothing"
        raise InputError(f"patch {patch_id!r} is not excluded in run {run_id!r} ({known})")
    return rows


def remove_exclusion(
    ports: StackPorts, row: LedgerRow, removed_by: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[str]:
    """Allow the patch again in the baselines that rejected it, then retire its ledger row; the baselines changed.

    The baselines change through ``PatchBaselines.allow_patches``: the verified set merge the exclusion step uses,
    so a concurrent exclusion of another patch is never lost. The ledger row is retired only after every baseline
    allows the patch again (a failure leaves it active, and the command can be run again). A retired row no longer
    holds the patch out of later frozen sets; its evidence is kept next to who removed it and when.
    """
    entries = row.record.rejection_entries
    changed = [baseline for baseline in row.record.baseline_ids if ports.baselines.allow_patches(baseline, entries)]
    ports.ledger.retire(row.record, removed_by, now())
    return changed


def all_exclusions(ports: StackPorts) -> tuple[list[ExclusionRecord], list[ExclusionRecord]]:
    """Every run's exclusions in the runs table: (active, removed by an operator), through the ledger's index."""
    active, retired = ports.ledger.all_exclusions()
    return active, [removed.record for removed in retired]
