"""Boundary inputs: text AWS cannot carry, ids and tokens beyond AWS's bounds, a heartbeat as long as the wait."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from patchpilot.models.approval import ApprovalRequest
from patchpilot.models.bounds import TASK_TOKEN_MAX_LENGTH, reject_lone_surrogates
from patchpilot.models.events import CommandInvocationEvent
from patchpilot.models.registration import InstanceStateEvent
from patchpilot.models.state import AwaitInstallRequest, ReconcileRequest, WaitLimits

EVENTS = Path(__file__).resolve().parents[2] / "events"
COMMAND_ID = "4f0b2a6e-7c1d-4a3b-9e2f-5d6c7b8a9e01"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def _approval(**overrides: Any) -> dict[str, Any]:
    return _load("approval/request-approval.json") | overrides


def _await(**overrides: Any) -> dict[str, Any]:
    fields = {"task_token": "t", "run_id": "r1", "stage_name": "dev", "command_id": COMMAND_ID, "expected_instances": 1}
    return fields | overrides


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"summary": "patch \ud800 prod"}, "summary"),
        ({"details": {"note": ["ok", "\udfff"]}}, r"details\.note\[1\]"),
        ({"details": {"\ud834": 1}}, r"details\.<key>"),
        ({"task_token": "AQ\udc00"}, "task_token"),
    ],
)
def test_approval_request_rejects_lone_surrogates_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=f"{field} holds a lone surrogate"):
        ApprovalRequest.model_validate(_approval(**overrides))


def test_approval_request_keeps_valid_non_ascii_text() -> None:
    request = ApprovalRequest.model_validate(_approval(summary="Pätch prod-1 — 🚀 ok"))
    assert request.summary == "Pätch prod-1 — 🚀 ok"
    assert request.model_dump_json()


def test_instance_registration_event_rejects_a_surrogate_in_the_envelope() -> None:
    event = _load("ec2/instance-running.json")
    event["id"] = "evt-\ud800"
    with pytest.raises(ValidationError, match=r"id holds a lone surrogate"):
        InstanceStateEvent.model_validate(event)


def test_command_invocation_event_rejects_surrogates_and_overlong_command_ids() -> None:
    event = _load("ssm/command-invocation-success.json")
    with pytest.raises(ValidationError, match=r"resources\[0\] holds a lone surrogate"):
        CommandInvocationEvent.model_validate(event | {"resources": ["arn:\udc80"]})
    event["detail"]["command-id"] = COMMAND_ID + "0"
    with pytest.raises(ValidationError, match="at most 36 characters"):
        CommandInvocationEvent.model_validate(event)


def test_task_tokens_are_bounded_by_the_step_functions_limit() -> None:
    token = "A" * TASK_TOKEN_MAX_LENGTH
    assert AwaitInstallRequest.model_validate(_await(task_token=token)).task_token == token
    with pytest.raises(ValidationError, match="at most 2048 characters"):
        AwaitInstallRequest.model_validate(_await(task_token=token + "A"))
    with pytest.raises(ValidationError, match="at most 2048"):
        ApprovalRequest.model_validate(_approval(task_token=token + "A"))


@pytest.mark.parametrize("model", [ApprovalRequest, AwaitInstallRequest])
def test_validation_errors_never_echo_a_task_token(model: Any) -> None:
    secret = "AQsecretTokenValue" * 200
    payload = _approval(task_token=secret, timeout_seconds=0) if model is ApprovalRequest else _await(task_token=secret)
    with pytest.raises(ValidationError, match=r"task_token|timeout_seconds") as error:
        model.model_validate(payload)
    assert "AQsecret" not in str(error.value)
    assert "AQsecret" not in repr(error.value)


@pytest.mark.parametrize("command_id", ["", COMMAND_ID + "f", "cmd 1", "cmd/../1"])
def test_command_ids_are_bounded_by_the_ssm_format(command_id: str) -> None:
    with pytest.raises(ValidationError, match="command_id"):
        ReconcileRequest.model_validate(
            {"command_id": command_id, "expected_instances": 1, "attempts_so_far": 0, "max_attempts": 1}
        )


@pytest.mark.parametrize(
    "instance_id",
    ["i-123", "i-0123456789abcdef01", "i-0123456789abcd", "mi-0123456789abcdef0", "I-01234567", "i-0123456\ud800"],
)
def test_instance_ids_outside_the_ssm_format_are_rejected(instance_id: str) -> None:
    event = _load("ec2/instance-running.json")
    event["detail"]["instance-id"] = instance_id
    with pytest.raises(ValidationError, match=r"instance-id|lone surrogate"):
        InstanceStateEvent.model_validate(event)


@pytest.mark.parametrize(("heartbeat", "timeout"), [(600, 600), (900, 300)])
def test_wait_limits_reject_a_heartbeat_not_shorter_than_the_timeout(heartbeat: int, timeout: int) -> None:
    with pytest.raises(ValidationError, match=r"heartbeat_seconds .* must be shorter than install_timeout_seconds"):
        WaitLimits(heartbeat_seconds=heartbeat, install_timeout_seconds=timeout)
    assert WaitLimits(heartbeat_seconds=timeout - 1, install_timeout_seconds=timeout).heartbeat_seconds == timeout - 1


def test_reject_lone_surrogates_returns_valid_input_unchanged() -> None:
    data = {"a": ["é", {"b": ("c", 1, None)}], "ü": 2.5}
    assert reject_lone_surrogates(data) is data
