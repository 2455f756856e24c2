"""The approval gate before production: park the execution under a short approval id, decide exactly once.

The waiting task's token stays in the approval store. Alerts and answers carry the approval id, which is derived
from the execution and the stage, so a retried request task (which receives a fresh token) keeps the same id.
"""

import hashlib
import json
from datetime import datetime, timedelta

from patchpilot.integrations.ports import AlertPublisher, ApprovalStore, ExecutionCallbacks
from patchpilot.models.alerts import DEFAULT_SEVERITY, Alert
from patchpilot.models.approval import (
    APPROVAL_ID_ALPHABET,
    APPROVAL_ID_LENGTH,
    ApprovalDecided,
    ApprovalOutcome,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalRequested,
    DecideApprovalRequest,
    DecidedStatus,
)
from patchpilot.models.exceptions import ApprovalExpired, ApprovalNotFound, ApprovalRejected, PatchPilotError

_DECIDE_ATTEMPTS = 2
_REASON_IN_SUMMARY = 300


def approval_id_for(execution_id: str, stage_name: str) -> str:
    """The short approval id of an execution's wait before a stage.

    Parameters
    ----------
    execution_id : str
        The execution ARN (``$$.Execution.Id``).
    stage_name : str
        The stage the execution waits to enter.

    Returns
    -------
    str
        8 characters of ``APPROVAL_ID_ALPHABET`` (about 40 bits of SHA-256), the same for the same inputs.
    """
    number = int.from_bytes(hashlib.sha256(f"{execution_id}\n{stage_name}".encode()).digest(), "big")
    characters = []
    for _ in range(APPROVAL_ID_LENGTH):
        number, index = divmod(number, len(APPROVAL_ID_ALPHABET))
        characters.append(APPROVAL_ID_ALPHABET[index])
    return "".join(characters)


def answer_commands(approval_id: str) -> tuple[str, str]:
    """The CLI commands that approve and reject an approval."""
    return f"patchpilot approve {approval_id}", f"patchpilot reject {approval_id}"


def _requested_by(request: ApprovalRequest) -> str | None:
    requester = request.details.get("requested_by")
    return requester.strip() or None if isinstance(requester, str) else None


def _requested_alert(request: ApprovalRequest, approval_id: str, expires_at: datetime, now: datetime) -> Alert:
    approve, reject = answer_commands(approval_id)
    deadline = expires_at.isoformat(timespec="seconds")
    return Alert(
        kind="approval_requested",
        severity=DEFAULT_SEVERITY["approval_requested"],
        run_id=request.run_id,
        stage_name=request.stage_name,
        title=f"Approval needed: promote run {request.run_id} to {request.stage_name} ({approval_id})",
        summary=f"{request.summary}. Answer with `{approve}` or `{reject}` before {deadline}; no answer rejects.",
        details={
            **request.details,
            "approve_command": approve,
            "reject_command": reject,
            "expires_at": deadline,
            "timeout_seconds": request.timeout_seconds,
            "request_summary": request.summary,
        },
        execution_id=request.execution_id,
        approval_id=approval_id,
        occurred_at=now,
    )


def _decided_alert(record: ApprovalRecord, now: datetime) -> Alert:
    reason = record.reason or ""
    short_reason = reason if len(reason) <= _REASON_IN_SUMMARY else f"{reason[: _REASON_IN_SUMMARY - 3]}..."
    return Alert(
        kind="approval_decided",
        severity="info" if record.status == "approved" else "warning",
        run_id=record.run_id,
        stage_name=record.stage_name,
        title=f"Promotion of run {record.run_id} to {record.stage_name} {record.status} ({record.approval_id})",
        summary=f"{record.approver} {record.status} the promotion of run {record.run_id} to {record.stage_name}"
        + (f": {short_reason}" if short_reason else ""),
        details={
            "status": record.status,
            "approver": record.approver,
            "reason": record.reason,
            "requested_at": record.requested_at.isoformat(),
            "decided_at": None if record.decided_at is None else record.decided_at.isoformat(),
            "request_summary": record.summary,
        },
        execution_id=record.execution_id,
        approval_id=record.approval_id,
        occurred_at=now,
    )


def _deliver(record: ApprovalRecord, callbacks: ExecutionCallbacks) -> bool:
    """Hand a decided approval to the waiting task: success output on approve, ApprovalRejected on reject."""
    token = record.task_token.get_secret_value()
    if record.status == "approved":
        outcome = ApprovalOutcome(
            approved=True,
            approval_id=record.approval_id,
            approver=record.approver or "",
            reason=record.reason,
            decided_at=record.decided_at or record.requested_at,
        )
        return callbacks.resume(token, outcome)
    cause = {
        "approval_id": record.approval_id,
        "run_id": record.run_id,
        "stage_name": record.stage_name,
        "approver": record.approver,
        "reason": record.reason,
        "decided_at": None if record.decided_at is None else record.decided_at.isoformat(),
    }
    return callbacks.fail(token, ApprovalRejected.__name__, json.dumps(cause))


def _answer(record: ApprovalRecord, recorded_earlier: bool, notified: bool) -> ApprovalDecided:
    status: DecidedStatus = "approved" if record.status == "approved" else "rejected"
    return ApprovalDecided(
        approval_id=record.approval_id,
        run_id=record.run_id,
        stage_name=record.stage_name,
        status=status,
        approver=record.approver or "",
        reason=record.reason,
        decided_at=record.decided_at or record.requested_at,
        recorded_earlier=recorded_earlier,
        execution_notified=notified,
    )


def _expired(record: ApprovalRecord) -> ApprovalExpired:
    return ApprovalExpired(
        f"approval {record.approval_id} (promote run {record.run_id} to {record.stage_name}) expired at "
        f"{record.expires_at.isoformat(timespec='seconds')} or its execution no longer waits; no answer rejects"
    )


def request_approval(
    request: ApprovalRequest,
    store: ApprovalStore,
    callbacks: ExecutionCallbacks,
    publisher: AlertPublisher,
    now: datetime,
) -> ApprovalRequested:
    """Park the execution under a short approval id and tell on-call how to answer.

    Parameters
    ----------
    request : ApprovalRequest
        The waiting task's token, run, stage, execution and timeout.
    store, callbacks, publisher
        Ports to the approvals table, Step Functions and the alert topic.
    now : datetime
        The current time (timezone-aware).

    Returns
    -------
    ApprovalRequested
        The approval id and its deadline. A retried task whose approval was already decided gets that decision at
        once (``decision_redelivered``) instead of a second alert.

    Raises
    ------
    ApprovalIdConflict
        Another execution or stage holds the derived id.
    """
    approval_id = approval_id_for(request.execution_id, request.stage_name)
    expires_at = now + timedelta(seconds=request.timeout_seconds)
    stored = store.open(
        ApprovalRecord(
            approval_id=approval_id,
            execution_id=request.execution_id,
            run_id=request.run_id,
            stage_name=request.stage_name,
            task_token=request.task_token,
            status="pending",
            summary=request.summary,
            requested_at=now,
            expires_at=expires_at,
            requested_by=_requested_by(request),
        )
    )
    answer = ApprovalRequested(
        approval_id=approval_id,
        run_id=request.run_id,
        stage_name=request.stage_name,
        status=stored.status,
        expires_at=stored.expires_at,
    )
    if stored.status in ("approved", "rejected"):
        _deliver(stored, callbacks)
        return answer.model_copy(update={"decision_redelivered": True})
    message_id = publisher.publish(_requested_alert(request, approval_id, stored.expires_at, now))
    return answer.model_copy(update={"alert_message_id": message_id})


def _conclude(
    decided: ApprovalRecord,
    store: ApprovalStore,
    callbacks: ExecutionCallbacks,
    publisher: AlertPublisher,
    now: datetime,
) -> ApprovalDecided:
    """Call the execution back with a decision this call made, then tell on-call."""
    notified = _deliver(decided, callbacks)
    if not notified and store.expire(decided.approval_id, decided.task_token.get_secret_value()):
        raise _expired(decided)
    # not notified but not expired either: a retried request task replaced the token and redelivers the decision
    publisher.publish(_decided_alert(decided, now))
    return _answer(decided, recorded_earlier=False, notified=True)


def decide_approval(
    request: DecideApprovalRequest,
    store: ApprovalStore,
    callbacks: ExecutionCallbacks,
    publisher: AlertPublisher,
    now: datetime,
) -> ApprovalDecided:
    """Approve or reject a waiting approval, exactly once.

    Parameters
    ----------
    request : DecideApprovalRequest
        Approval id, decision, approver and optional reason.
    store, callbacks, publisher
        Ports to the approvals table, Step Functions and the alert topic.
    now : datetime
        The current time (timezone-aware).

    Returns
    -------
    ApprovalDecided
        The decision this call made (the execution resumed on approve, failed with ``ApprovalRejected`` on reject,
        an ``approval_decided`` alert published), or, when an earlier call decided, the recorded decision with
        ``recorded_earlier`` and no second callback or alert.

    Raises
    ------
    ApprovalNotFound
        No approval has the id.
    ApprovalExpired
        The deadline passed, or the execution no longer waits (timed out, aborted).
    """
    status: DecidedStatus = "approved" if request.decision == "approve" else "rejected"
    for _ in range(_DECIDE_ATTEMPTS):
        decided = store.decide(request.approval_id, status, request.approver, request.reason, now)
        if decided is not None:
            return _conclude(decided, store, callbacks, publisher, now)
        current = store.get(request.approval_id)
        if current is None:
            raise ApprovalNotFound(f"no approval has the id {request.approval_id}")
        if current.status in ("approved", "rejected"):
            return _answer(current, recorded_earlier=True, notified=False)
        if current.status == "expired":
            raise _expired(current)
        if current.expires_at <= now:
            store.expire(current.approval_id, current.task_token.get_secret_value())
            raise _expired(current)
    raise PatchPilotError(f"approval {request.approval_id} changed while it was being decided; try again")
