"""Approve/Reject from Slack on fakes: signature, window, replay, approvers, requester, bad bodies, decide once."""

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from patchpilot.logic.approval import request_approval
from patchpilot.logic.chat_render import RESUME_ACTION_ID, next_steps, render_slack
from patchpilot.logic.cycle import resume_failed_attempt, run_of_execution, start_rollout
from patchpilot.logic.slack_interaction import InteractionPorts, InteractionSettings, handle_interaction
from patchpilot.models.approval import ApprovalRequest
from patchpilot.models.chat import InteractionRejected, PostResult
from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.rollout import RolloutRequest, StageCatalog
from tests.fakes import (
    NOW,
    FakeStarter,
    InMemoryApprovalStore,
    InMemoryInteractionGuard,
    InMemoryRunLedger,
    RecordingAlertPublisher,
    RecordingCallbacks,
    ScriptedPoster,
    sample_alert,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
RESPONSE_URL = "https://hooks.slack.com/actions/T0/1/abc"
CATALOG = StageCatalog.model_validate(
    {
        "stages": [
            {"name": "staging", "patch_group": "staging", "role": "test", "requires_approval": True},
            {"name": "prod-1", "patch_group": "prod-1", "role": "production", "requires_approval": True},
        ],
        "approvers": ["U0ANA", "bob"],
    }
)
CLICK_AT = NOW + timedelta(minutes=3)


def _body(approval_id: str = "", action: str = "patchpilot_approve", user: dict[str, str] | None = None) -> str:
    payload = {
        "type": "block_actions",
        "user": user or {"id": "U0ANA", "username": "ana"},
        "actions": [{"action_id": action, "value": approval_id, "type": "button"}],
        "response_url": RESPONSE_URL,
    }
    return urlencode({"payload": json.dumps(payload)})


def _signed(body: str, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(CLICK_AT.timestamp()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


class Gate:
    """One waiting approval per stage, and the ports the endpoint uses."""

    def __init__(self, requested_by: str | None = None) -> None:
        self.store = InMemoryApprovalStore()
        self.callbacks = RecordingCallbacks()
        self.alerts = RecordingAlertPublisher()
        self.poster = ScriptedPoster()
        self.guard = InMemoryInteractionGuard()
        self.starter = FakeStarter()
        self.ledger = InMemoryRunLedger()
        self.ids: dict[str, str] = {}
        for stage in ("staging", "prod-1"):
            request = ApprovalRequest(
                task_token=f"token-{stage}",  # type: ignore[arg-type]
                run_id="manual-2026-12",
                stage_name=stage,
                execution_id="arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:manual-2026-12",
                timeout_seconds=3600,
                summary=f"promote run manual-2026-12 to {stage}",
                details={"requested_by": requested_by} if requested_by else {},
            )
            self.ids[stage] = request_approval(request, self.store, self.callbacks, self.alerts, NOW).approval_id
        self.alerts.alerts.clear()

    def click(self, body: str, headers: dict[str, str], prefix: str = "https://hooks.slack.com/") -> dict[str, Any]:
        settings = InteractionSettings(signing_secret=SECRET, catalog=CATALOG, response_url_prefix=prefix)
        ports = InteractionPorts(
            self.store, self.callbacks, self.alerts, self.guard, self.poster, self.starter, self.ledger
        )
        return handle_interaction(body, headers, settings, ports, CLICK_AT)

    def unchanged(self) -> bool:
        return (
            not self.callbacks.resumed
            and not self.callbacks.failed
            and all(record.status == "pending" for record in self.store.records.values())
        )


def test_slack_interaction_approve_resumes_the_execution_and_updates_the_message_in_place() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"])
    answer = gate.click(body, _signed(body))
    assert (answer["status"], answer["approver"], answer["recorded_earlier"]) == (
        "approved",
        "slack:ana (U0ANA)",
        False,
    )
    [(token, outcome)] = gate.callbacks.resumed
    assert (token, outcome["approved"]) == ("token-prod-1", True)
    [(url, update)] = gate.poster.posts
    assert url == RESPONSE_URL
    assert update["replace_original"] is True
    assert "approved by slack:ana (U0ANA)" in update["text"]
    assert [alert.kind for alert in gate.alerts.alerts] == ["approval_decided"]
    assert answer["message_updated"] is True


def test_slack_interaction_reject_fails_the_waiting_task() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"], action="patchpilot_reject")
    assert gate.click(body, _signed(body))["status"] == "rejected"
    [(token, error, _)] = gate.callbacks.failed
    assert (token, error) == ("token-prod-1", "ApprovalRejected")


def test_slack_interaction_double_click_decides_once() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"])
    gate.click(body, _signed(body))
    again = gate.click(body, _signed(body, int(CLICK_AT.timestamp()) + 1))
    assert again["recorded_earlier"] is True
    assert len(gate.callbacks.resumed) == 1
    assert "(it had already been decided)" in gate.poster.posts[-1][1]["text"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "not signed"),
        ({"X-Slack-Request-Timestamp": "1796000000"}, "not signed"),
        ("bad-signature", "signature does not match"),
        ("wrong-secret", "signature does not match"),
        ("stale", "outside the 5-minute window"),
        ("future", "outside the 5-minute window"),
        ("not-a-number", "outside the 5-minute window"),
    ],
)
def test_slack_interaction_unsigned_badly_signed_or_stale_is_401_and_changes_nothing(headers: Any, reason: str) -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"])
    now = int(CLICK_AT.timestamp())
    forged = {
        "bad-signature": {**_signed(body), "X-Slack-Signature": "v0=" + "0" * 64},
        "wrong-secret": _signed(body, secret="not-the-secret"),
        "stale": _signed(body, now - 301),
        "future": _signed(body, now + 301),
        "not-a-number": {**_signed(body), "X-Slack-Request-Timestamp": "soon"},
    }
    with pytest.raises(InteractionRejected, match=reason) as rejected:
        gate.click(body, forged.get(headers, headers) if isinstance(headers, str) else headers)
    assert rejected.value.status == 401
    assert gate.unchanged()


def test_slack_interaction_within_the_window_edge_is_accepted() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"])
    assert gate.click(body, _signed(body, int(CLICK_AT.timestamp()) - 300))["status"] == "approved"


def test_slack_interaction_replayed_request_is_401_even_inside_the_window() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"], action="patchpilot_reject")
    headers = _signed(body)
    gate.click(body, headers)
    with pytest.raises(InteractionRejected, match="replay") as rejected:
        gate.click(body, headers)
    assert rejected.value.status == 401
    assert len(gate.callbacks.failed) == 1


def test_slack_interaction_user_not_on_the_approvers_list_is_403_and_changes_nothing() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"], user={"id": "U0MALLORY", "username": "mallory"})
    with pytest.raises(InteractionRejected, match="not on the policy's approvers list") as rejected:
        gate.click(body, _signed(body))
    assert rejected.value.status == 403
    assert gate.unchanged()


def test_slack_interaction_requester_cannot_approve_production_but_may_answer_a_test_stage() -> None:
    gate = Gate(requested_by="U0ANA")
    body = _body(gate.ids["prod-1"])
    with pytest.raises(InteractionRejected, match="requested run manual-2026-12") as rejected:
        gate.click(body, _signed(body))
    assert rejected.value.status == 403
    assert gate.unchanged()
    staging = _body(gate.ids["staging"])
    assert gate.click(staging, _signed(staging, int(CLICK_AT.timestamp()) + 1))["status"] == "approved"
    other = _body(gate.ids["prod-1"], user={"id": "U0BOB", "username": "bob"})
    assert gate.click(other, _signed(other, int(CLICK_AT.timestamp()) + 2))["approver"] == "slack:bob (U0BOB)"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "not a Slack interaction payload"),
        ("payload=%7Bnot-json", "not a Slack interaction payload"),
        ("garbage", "not a Slack interaction payload"),
        (
            urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": "U0ANA"}, "actions": []})}),
            "not a",
        ),
        (
            urlencode(
                {
                    "payload": json.dumps(
                        {"type": "view_submission", "user": {"id": "U0ANA"}, "actions": [{"action_id": "x"}]}
                    )
                }
            ),
            "unsupported interaction type",
        ),
        (_body("k7m2x9qa", action="patchpilot_delete_prod"), "unsupported action"),
        (_body("'; DROP TABLE"), "does not carry an approval id"),
        ("payload=" + "x" * 70_000, "too large"),
    ],
)
def test_slack_interaction_malformed_body_is_400_never_an_error(body: str, reason: str) -> None:
    gate = Gate()
    with pytest.raises(InteractionRejected, match=reason) as rejected:
        gate.click(body, _signed(body))
    assert rejected.value.status == 400
    assert gate.unchanged()


def test_slack_interaction_unknown_approval_is_404() -> None:
    gate = Gate()
    body = _body("k7m2x9qa")
    with pytest.raises(InteractionRejected, match="no approval has the id k7m2x9qa") as rejected:
        gate.click(body, _signed(body))
    assert rejected.value.status == 404


def test_slack_interaction_expired_approval_is_410_and_the_task_is_not_resumed() -> None:
    gate = Gate()
    for record in list(gate.store.records.values()):
        gate.store.records[record.approval_id] = record.model_copy(update={"expires_at": NOW + timedelta(seconds=1)})
    body = _body(gate.ids["prod-1"])
    with pytest.raises(InteractionRejected, match="expired") as rejected:
        gate.click(body, _signed(body))
    assert rejected.value.status == 410
    assert gate.callbacks.resumed == []


def test_slack_interaction_response_url_outside_slack_is_never_called() -> None:
    gate = Gate()
    body = _body(gate.ids["prod-1"])
    answer = gate.click(body, _signed(body), prefix="https://hooks.example.invalid/")
    assert (answer["status"], answer["message_updated"], gate.poster.posts) == ("approved", False, [])


def test_slack_interaction_a_failed_message_update_still_reports_the_decision() -> None:
    gate = Gate()
    gate.poster.results = [PostResult(status=0, error="timed out")]
    body = _body(gate.ids["prod-1"])
    answer = gate.click(body, _signed(body))
    assert (answer["status"], answer["message_updated"]) == ("approved", False)


# -- Resume (rollout_failed) -----------------------------------------------------------------------------------------
def _failed_cycle(gate: Gate, name: str = "cycle-2026-12", passed: tuple[str, ...] = ("staging",)) -> None:
    start_rollout(StartRolloutRequest(cycle="2026-12", bake_seconds={"staging": 5}), gate.starter, NOW)
    gate.starter.statuses[name] = "FAILED"
    for stage in passed:
        gate.ledger.record_stage_passed("2026-12", stage)


def test_slack_interaction_resume_starts_the_next_attempt_once_and_says_who_resumed() -> None:
    gate = Gate()
    _failed_cycle(gate)
    body = _body("cycle-2026-12", action="patchpilot_resume")
    answer = gate.click(body, _signed(body))
    assert (answer["action"], answer["started"], answer["execution_name"], answer["resumed_by"]) == (
        "resume",
        True,
        "cycle-2026-12-r2",
        "slack:ana (U0ANA)",
    )
    assert answer["skipped_stages"] == ["staging"]
    attempt = RolloutRequest.model_validate_json(gate.starter.executions["cycle-2026-12-r2"])
    assert (attempt.run_id, attempt.completed_stages) == ("2026-12", ["staging"])
    [(url, update)] = gate.poster.posts
    assert url == RESPONSE_URL
    assert update["replace_original"] is True
    assert "resumed by slack:ana (U0ANA): started execution cycle-2026-12-r2" in update["text"]
    assert "actions" not in {block["type"] for block in update["blocks"]}
    assert gate.unchanged()  # no approval decided, no task token used


def test_slack_interaction_resume_second_click_starts_nothing_more() -> None:
    gate = Gate()
    _failed_cycle(gate)
    first = _body("cycle-2026-12", action="patchpilot_resume")
    gate.click(first, _signed(first))
    second = _body("cycle-2026-12", action="patchpilot_resume", user={"id": "U0BOB", "username": "bob"})
    answer = gate.click(second, _signed(second, timestamp=int(CLICK_AT.timestamp()) + 1))
    assert (answer["started"], answer["execution_name"], answer["status"]) == (False, "cycle-2026-12-r2", "RUNNING")
    assert sorted(gate.starter.executions) == ["cycle-2026-12", "cycle-2026-12-r2"]
    assert "already resumed, execution cycle-2026-12-r2 (RUNNING)" in gate.poster.posts[-1][1]["text"]


def test_slack_interaction_resume_button_of_an_older_attempt_does_not_resume_a_newer_failure() -> None:
    gate = Gate()
    _failed_cycle(gate)
    resume_failed_attempt("cycle-2026-12", gate.starter, gate.ledger)
    gate.starter.statuses["cycle-2026-12-r2"] = "FAILED"
    body = _body("cycle-2026-12", action="patchpilot_resume")  # the first alert's button, clicked late
    answer = gate.click(body, _signed(body))
    assert (answer["started"], answer["execution_name"], answer["status"]) == (False, "cycle-2026-12-r2", "FAILED")
    assert "cycle-2026-12-r3" not in gate.starter.executions


def test_slack_interaction_resume_of_a_running_attempt_starts_nothing() -> None:
    gate = Gate()
    _failed_cycle(gate)
    gate.starter.statuses["cycle-2026-12"] = "RUNNING"
    body = _body("cycle-2026-12", action="patchpilot_resume")
    answer = gate.click(body, _signed(body))
    assert (answer["started"], answer["status"]) == (False, "RUNNING")
    assert list(gate.starter.executions) == ["cycle-2026-12"]


@pytest.mark.parametrize(
    ("value", "user", "status", "reason"),
    [
        ("cycle-2026-12", {"id": "U0MALLORY", "username": "mallory"}, 403, "not on the policy's approvers"),
        ("cycle-2026-11", None, 404, "no execution"),
        ("rollout; DROP", None, 400, "rollout execution name"),
        ("emergency-2026-12", None, 400, "rollout execution name"),
        ("", None, 400, "rollout execution name"),
    ],
)
def test_slack_interaction_resume_refusals_start_nothing(
    value: str, user: dict[str, str] | None, status: int, reason: str
) -> None:
    gate = Gate()
    _failed_cycle(gate)
    body = _body(value, action="patchpilot_resume", user=user)
    with pytest.raises(InteractionRejected, match=reason) as refused:
        gate.click(body, _signed(body))
    assert refused.value.status == status
    assert list(gate.starter.executions) == ["cycle-2026-12"]
    assert gate.poster.posts == []


def test_slack_interaction_resume_forged_signature_starts_nothing() -> None:
    gate = Gate()
    _failed_cycle(gate)
    body = _body("cycle-2026-12", action="patchpilot_resume")
    with pytest.raises(InteractionRejected, match="signature does not match"):
        gate.click(body, _signed(body, secret="guess"))
    assert list(gate.starter.executions) == ["cycle-2026-12"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cycle-2026-12", ("cycle-2026-12", "2026-12")),
        ("cycle-2026-12-r3", ("cycle-2026-12", "2026-12")),
        ("manual-2026-01-r2", ("manual-2026-01", "manual-2026-01")),
        ("emergency-2026-12-0123456789ab-r2", ("emergency-2026-12-0123456789ab", "emergency-2026-12-0123456789ab")),
    ],
)
def test_run_of_execution_names_the_run_of_any_attempt(name: str, expected: tuple[str, str]) -> None:
    assert run_of_execution(name) == expected


@pytest.mark.parametrize(
    "name", ["cycle-2026-13", "cycle-2026-12-x", "emergency-2026-12", "manual-2026-12-0123456789ab"]
)
def test_run_of_execution_refuses_other_names(name: str) -> None:
    with pytest.raises(ValueError, match="not the name of a PatchPilot rollout execution"):
        run_of_execution(name)


def test_chat_render_rollout_failed_carries_a_resume_button_with_the_failed_attempt() -> None:
    alert = sample_alert(
        kind="rollout_failed",
        severity="critical",
        stage_name=None,
        run_id="cycle-2026-12-r2",
        execution_id="arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:cycle-2026-12-r2",
    )
    payload = render_slack(alert)
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    [resume] = [button for button in buttons if button["action_id"] == RESUME_ACTION_ID]
    assert resume["value"] == "cycle-2026-12-r2"
    assert resume["confirm"]["confirm"]["text"] == "Resume"
    assert next_steps(alert)[0] == "patchpilot resume --cycle 2026-12"
    other = sample_alert()
    assert RESUME_ACTION_ID not in json.dumps(render_slack(other))
