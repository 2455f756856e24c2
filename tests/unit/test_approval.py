import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from patchpilot.logic.approval import approval_id_for, decide_approval, request_approval
from patchpilot.models.approval import APPROVAL_ID_ALPHABET, ApprovalDecided, ApprovalRequest, DecideApprovalRequest
from patchpilot.models.exceptions import ApprovalExpired, ApprovalIdConflict, ApprovalNotFound, ApprovalRejected
from tests.fakes import InMemoryApprovalStore, RecordingAlertPublisher, RecordingCallbacks

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:2026-12"
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAdIvQm9ndXMtdGFzay10b2tlbi1mb3ItdGVzdHM="
NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def _request(token: str = TOKEN, stage: str = "prod-1", timeout: int = 3600) -> ApprovalRequest:
    return ApprovalRequest.model_validate(
        {
            "task_token": token,
            "run_id": "2026-12",
            "stage_name": stage,
            "execution_id": EXECUTION,
            "timeout_seconds": timeout,
            "summary": "promote run 2026-12 to stage prod-1 (patch group prod-1)",
            "details": {"frozen_patches": 12, "stages_passed": ["dev", "staging"]},
        }
    )


def _decision(
    approval_id: str, decision: str = "approve", reason: str | None = "staging clean"
) -> DecideApprovalRequest:
    return DecideApprovalRequest.model_validate(
        {"approval_id": approval_id, "decision": decision, "approver": "alice", "reason": reason}
    )


class _Gate:
    def __init__(self, token_valid: bool = True) -> None:
        self.store = InMemoryApprovalStore()
        self.callbacks = RecordingCallbacks(token_valid=token_valid)
        self.alerts = RecordingAlertPublisher()

    def request(self, request: ApprovalRequest | None = None, now: datetime = NOW) -> str:
        return request_approval(request or _request(), self.store, self.callbacks, self.alerts, now).approval_id

    def decide(self, decision: DecideApprovalRequest, now: datetime = NOW + timedelta(minutes=5)) -> ApprovalDecided:
        return decide_approval(decision, self.store, self.callbacks, self.alerts, now)


def test_approval_id_for_is_deterministic_short_and_unambiguous() -> None:
    first = approval_id_for(EXECUTION, "prod-1")
    assert first == approval_id_for(EXECUTION, "prod-1")
    assert len(first) == 8
    assert set(first) <= set(APPROVAL_ID_ALPHABET)
    assert not set(APPROVAL_ID_ALPHABET) & set("01ilo")


def test_approval_id_for_differs_per_execution_and_stage() -> None:
    ids = {approval_id_for(f"{EXECUTION}-{n}", stage) for n in range(200) for stage in ("prod-1", "prod-2")}
    assert len(ids) == 400


def test_request_approval_stores_pending_wait_with_deadline_and_alerts_with_the_id() -> None:
    gate = _Gate()
    requested = request_approval(_request(), gate.store, gate.callbacks, gate.alerts, NOW)
    record = gate.store.records[requested.approval_id]
    assert (record.status, record.run_id, record.stage_name) == ("pending", "2026-12", "prod-1")
    assert record.task_token.get_secret_value() == TOKEN
    assert (record.requested_at, record.expires_at) == (NOW, NOW + timedelta(hours=1))
    assert requested.alert_message_id == "message-1"
    [alert] = gate.alerts.alerts
    assert (alert.kind, alert.severity, alert.approval_id, alert.execution_id) == (
        "approval_requested",
        "warning",
        requested.approval_id,
        EXECUTION,
    )
    assert f"patchpilot approve {requested.approval_id}" in alert.summary
    assert f"patchpilot reject {requested.approval_id}" in alert.summary
    assert alert.details["frozen_patches"] == 12
    assert alert.details["expires_at"] == "2026-12-10T10:00:00+00:00"
    assert (gate.callbacks.resumed, gate.callbacks.failed) == ([], [])


def test_request_approval_never_puts_the_token_in_the_alert_or_the_answer() -> None:
    gate = _Gate()
    requested = request_approval(_request(), gate.store, gate.callbacks, gate.alerts, NOW)
    gate.decide(_decision(requested.approval_id))
    assert len(gate.alerts.alerts) == 2
    for alert in gate.alerts.alerts:
        assert TOKEN not in alert.model_dump_json()
    assert TOKEN not in requested.model_dump_json()
    assert TOKEN not in repr(_request()) + _request().model_dump_json()


def test_request_approval_retry_reuses_the_id_and_refreshes_token_and_deadline() -> None:
    gate = _Gate()
    first = gate.request()
    later = NOW + timedelta(minutes=2)
    second = gate.request(_request(token="token-of-the-retry"), now=later)
    assert first == second
    assert len(gate.store.records) == 1
    record = gate.store.records[first]
    assert record.task_token.get_secret_value() == "token-of-the-retry"
    assert (record.status, record.requested_at, record.expires_at) == ("pending", NOW, later + timedelta(hours=1))


def test_request_approval_retry_after_a_decision_redelivers_it_to_the_new_token() -> None:
    gate = _Gate()
    approval_id = gate.request()
    gate.store.decide(approval_id, "rejected", "bob", "bad kernel", NOW)
    requested = request_approval(_request(token="token-2"), gate.store, gate.callbacks, gate.alerts, NOW)
    assert (requested.status, requested.decision_redelivered, requested.alert_message_id) == ("rejected", True, None)
    [(token, error, cause)] = gate.callbacks.failed
    assert (token, error) == ("token-2", "ApprovalRejected")
    assert json.loads(cause)["approver"] == "bob"
    assert len(gate.alerts.alerts) == 1


def test_request_approval_id_held_by_another_wait_raises_conflict() -> None:
    gate = _Gate()
    approval_id = gate.request()
    stolen = gate.store.records[approval_id].model_copy(update={"execution_id": "another-execution"})
    gate.store.records[approval_id] = stolen
    with pytest.raises(ApprovalIdConflict, match=approval_id):
        gate.request()


def test_decide_approval_approve_resumes_the_execution_once_with_the_outcome() -> None:
    gate = _Gate()
    approval_id = gate.request()
    decided = gate.decide(_decision(approval_id))
    assert (decided.status, decided.recorded_earlier, decided.execution_notified) == ("approved", False, True)
    [(token, output)] = gate.callbacks.resumed
    assert token == TOKEN
    assert output == {
        "approved": True,
        "approval_id": approval_id,
        "approver": "alice",
        "reason": "staging clean",
        "decided_at": NOW + timedelta(minutes=5),
    }
    assert gate.store.records[approval_id].status == "approved"
    decided_alert = gate.alerts.alerts[-1]
    assert (decided_alert.kind, decided_alert.severity, decided_alert.details["approver"]) == (
        "approval_decided",
        "info",
        "alice",
    )


def test_decide_approval_second_decision_returns_the_recorded_one_without_a_second_callback() -> None:
    gate = _Gate()
    approval_id = gate.request()
    gate.decide(_decision(approval_id))
    again = gate.decide(_decision(approval_id, decision="reject", reason="changed my mind"))
    assert (again.status, again.approver, again.reason) == ("approved", "alice", "staging clean")
    assert (again.recorded_earlier, again.execution_notified) == (True, False)
    assert len(gate.callbacks.resumed) == 1
    assert gate.callbacks.failed == []
    assert [a.kind for a in gate.alerts.alerts] == ["approval_requested", "approval_decided"]


def test_decide_approval_reject_fails_the_task_with_approval_rejected() -> None:
    gate = _Gate()
    approval_id = gate.request()
    decided = gate.decide(_decision(approval_id, decision="reject", reason="CVE fix breaks nginx on staging"))
    assert decided.status == "rejected"
    assert gate.callbacks.resumed == []
    [(token, error, cause)] = gate.callbacks.failed
    assert (token, error) == (TOKEN, ApprovalRejected.__name__)
    assert json.loads(cause) == {
        "approval_id": approval_id,
        "run_id": "2026-12",
        "stage_name": "prod-1",
        "approver": "alice",
        "reason": "CVE fix breaks nginx on staging",
        "decided_at": "2026-12-10T09:05:00+00:00",
    }
    assert gate.alerts.alerts[-1].severity == "warning"


def test_decide_approval_unknown_id_raises_approval_not_found() -> None:
    gate = _Gate()
    with pytest.raises(ApprovalNotFound, match="no approval has the id abcd2345"):
        gate.decide(_decision("abcd2345"))
    assert (gate.callbacks.resumed, gate.callbacks.failed) == ([], [])


def test_decide_approval_after_the_deadline_raises_approval_expired_and_marks_it() -> None:
    gate = _Gate()
    approval_id = gate.request()
    with pytest.raises(
        ApprovalExpired,
        match=rf"approval {approval_id} \(promote run 2026-12 to prod-1\) expired at 2026-12-10T10:00:00\+00:00",
    ):
        gate.decide(_decision(approval_id), now=NOW + timedelta(hours=1))
    assert gate.store.records[approval_id].status == "expired"
    with pytest.raises(ApprovalExpired, match=rf"approval {approval_id} \(promote run 2026-12 to prod-1\) expired at"):
        gate.decide(_decision(approval_id), now=NOW + timedelta(hours=2))
    assert (gate.callbacks.resumed, gate.callbacks.failed) == ([], [])
    assert [a.kind for a in gate.alerts.alerts] == ["approval_requested"]


def test_decide_approval_execution_no_longer_waiting_raises_approval_expired() -> None:
    gate = _Gate(token_valid=False)
    approval_id = gate.request()
    with pytest.raises(ApprovalExpired, match=rf"approval {approval_id} .* or its execution no longer waits"):
        gate.decide(_decision(approval_id))
    assert len(gate.callbacks.resumed) == 1
    assert gate.store.records[approval_id].status == "expired"
    assert [a.kind for a in gate.alerts.alerts] == ["approval_requested"]


def test_decide_approval_request_normalises_the_id_and_blank_reason() -> None:
    request = DecideApprovalRequest.model_validate(
        {"approval_id": " ABCD2345 ", "decision": "reject", "approver": " alice ", "reason": "  "}
    )
    assert (request.approval_id, request.approver, request.reason) == ("abcd2345", "alice", None)


@pytest.mark.parametrize(
    "change",
    [
        {"approval_id": "abcd234"},
        {"approval_id": "abcd23450"},
        {"approval_id": "abcd2l45"},
        {"approval_id": "abcd-345"},
        {"decision": "maybe"},
        {"approver": "   "},
        {"extra": "field"},
    ],
)
def test_decide_approval_request_rejects_bad_input(change: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match=rf"1 validation error for DecideApprovalRequest\n{next(iter(change))}\n"):
        DecideApprovalRequest.model_validate(
            {"approval_id": "abcd2345", "decision": "approve", "approver": "alice"} | change
        )


@pytest.mark.parametrize("change", [{"timeout_seconds": 0}, {"task_token": ""}, {"stage_name": "Prod 1"}])
def test_approval_request_rejects_bad_input(change: dict[str, object]) -> None:
    payload = json.loads(_request().model_dump_json()) | {"task_token": TOKEN} | change
    with pytest.raises(ValidationError, match=rf"1 validation error for ApprovalRequest\n{next(iter(change))}\n"):
        ApprovalRequest.model_validate(payload)
