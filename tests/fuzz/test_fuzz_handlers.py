"""Fuzz every handler's input: a valid result, a validation error or a typed error, never another exception.

A rejected input (ValidationError) must not reach a single port. The ports are in-memory fakes behind `StrictPort`,
as strict as botocore about text. Counts per outcome are printed at the end of the run (`make fuzz`).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from pydantic import SecretStr

from patchpilot.models.approval import ApprovalRecord
from patchpilot.models.records import ManagedInstance
from patchpilot_cli.policy_render import POLICY_PATH, PolicyError, load_policy
from tests.fuzz.harness import OUTCOMES, BatchResponse, Fakes, Target, handler_environment, run, sample_event, seed
from tests.fuzz.strategies import inputs

NOW = datetime.now(UTC)


def _text(event: Any, *keys: str) -> str | None:
    for key in keys:
        if not isinstance(event, dict):
            return None
        event = event.get(key)
    return event if isinstance(event, str) else None


def _invocation_events(event: Any) -> list[Any]:
    """The EventBridge events inside an SQS batch (bodies that are not JSON are skipped: the handler rejects them)."""
    records = event.get("Records") if isinstance(event, dict) else None
    found = []
    for record in records if isinstance(records, list) else []:
        body = record.get("body") if isinstance(record, dict) else None
        try:
            found.append(json.loads(body) if isinstance(body, str) else None)
        except ValueError:
            continue
    return found


def _track_command(fakes: Fakes, event: Any) -> None:
    for invocation in _invocation_events(event):
        command_id = _text(invocation, "detail", "command-id")
        if command_id:
            fakes.tracker.track_command(command_id, "2026-12", "dev")
            fakes.directory.add_command(command_id, "PatchPilot 2026-12 dev install")


def _wait_on_command(fakes: Fakes, event: Any) -> None:
    command_id = _text(event, "command_id")
    if command_id:
        fakes.tracker.register_wait(command_id, "2026-12", "dev", 1, "token-1")


def _pending_approval(fakes: Fakes, event: Any) -> None:
    approval_id = (_text(event, "approval_id") or "").strip().lower()
    if len(approval_id) == 8 and approval_id.isalnum():
        fakes.approvals.records[approval_id] = ApprovalRecord(
            approval_id=approval_id,
            execution_id="arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:cycle-2026-12",
            run_id="2026-12",
            stage_name="prod-1",
            task_token=SecretStr("token-1"),
            status="pending",
            summary="promote to prod-1?",
            requested_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )


def _managed_fleet(fakes: Fakes, event: Any) -> None:
    group = _text(event, "stage", "patch_group")
    if group:
        fakes.directory.managed[("PatchGroup", group)] = 3


def _managed_instances(fakes: Fakes, event: Any) -> None:
    group = _text(event, "stage", "patch_group")
    if group:
        fakes.directory.fleet[("PatchGroup", group)] = [
            ManagedInstance(
                instance_id=f"i-{n:017x}",
                ping_status="Online",
                platform_type="Linux",
                platform_name="Amazon Linux",
                platform_version="2023",
            )
            for n in range(1, 3)
        ]


def _command_result_seed() -> dict[str, Any]:
    """The SQS batch the queue delivers, its one EventBridge event a successful invocation."""
    event = seed("CommandResultFunction")
    for record in event["Records"]:
        invocation = json.loads(record["body"])
        invocation["detail"]["status"] = "Success"
        record["body"] = json.dumps(invocation)
    return event


H = "patchpilot.handlers."
TARGETS = [
    Target("PlanRolloutFunction", H + "plan_rollout", "plan_rollout", seed("PlanRolloutFunction")),
    Target("PlanStageFunction", H + "plan_stage", "plan_stage_step", seed("PlanStageFunction"), _managed_fleet),
    Target(
        "SnapshotStageFunction",
        H + "snapshot_stage",
        "snapshot_stage",
        seed("SnapshotStageFunction"),
        _managed_instances,
    ),
    Target("AwaitInstallFunction", H + "await_install", "register_install_wait", seed("AwaitInstallFunction")),
    Target(
        "CommandResultFunction",
        H + "command_result",
        "record_command_results",
        _command_result_seed(),
        _track_command,
        BatchResponse,
    ),
    Target(
        "ReconcileInstallFunction",
        H + "reconcile_install",
        "reconcile_install",
        seed("ReconcileInstallFunction"),
        _wait_on_command,
    ),
    Target("VerifyStageFunction", H + "verify_stage", "verify_stage_health", seed("VerifyStageFunction")),
    Target("RecordStageFunction", H + "record_stage", "record_stage_passed", seed("RecordStageFunction")),
    Target(
        "InstanceRegistrationFunction",
        H + "register_instance",
        "register_instance",
        sample_event("ec2/instance-running.json"),
    ),
    Target("ExcludePatchesFunction", H + "exclude_patches", "exclude_failing_patches", seed("ExcludePatchesFunction")),
    Target("BisectSuspectsFunction", H + "bisect_suspects", "advance_bisection", seed("BisectSuspectsFunction")),
    Target("RequestApprovalFunction", H + "request_approval", "request_approval", seed("RequestApprovalFunction")),
    Target(
        "DecideApprovalFunction",
        H + "decide_approval",
        "decide_approval",
        seed("DecideApprovalFunction"),
        _pending_approval,
    ),
    Target("StartRolloutFunction", H + "start_rollout", "start_rollout", seed("StartRolloutFunction")),
]


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.function)
def test_fuzz_seed_input_is_handled(target: Target) -> None:
    with handler_environment(target.function):
        handled = run(target, target.seed)
    assert handled.outcome == "valid"
    assert handled.result
    assert handled.result.get("batchItemFailures", []) == []  # a valid batch has no failed item
    if target.function == "CommandResultFunction":
        assert len(handled.fakes.tracker.results) == len(target.seed["Records"])


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.function)
def test_fuzz_handler_input_ends_valid_or_cleanly_rejected(target: Target) -> None:
    @given(event=inputs(target.seed))
    def check(event: Any) -> None:
        handled = run(target, event)
        assert handled.outcome == "valid" or handled.outcome.startswith("rejected:")

    before = sum(OUTCOMES[target.function].values())
    with handler_environment(target.function):
        check()
    assert sum(OUTCOMES[target.function].values()) > before


@pytest.mark.parametrize(
    ("function", "field", "value"),
    [
        ("RequestApprovalFunction", "summary", "promote \ud800 prod-1?"),
        ("RequestApprovalFunction", "details", {"note": "\udfff"}),
        ("RequestApprovalFunction", "task_token", "A" * 2049),
        ("InstanceRegistrationFunction", "id", "evt-\udc00"),
        ("AwaitInstallFunction", "task_token", "A" * 2049),
        ("AwaitInstallFunction", "command_id", "c" * 37),
    ],
)
def test_fuzz_known_bad_inputs_are_rejected_before_any_port(function: str, field: str, value: Any) -> None:
    target = next(t for t in TARGETS if t.function == function)
    with handler_environment(function):
        handled = run(target, target.seed | {field: value})
    assert handled.outcome == "rejected:ValidationError"
    assert handled.fakes.calls == []


POLICY_SEED = yaml.safe_load(POLICY_PATH.read_text())


@given(policy=inputs(POLICY_SEED))
@example(policy=POLICY_SEED)
def test_fuzz_policy_file_loads_or_fails_with_a_policy_error(policy: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "patch-policy.yaml"
        path.write_text(yaml.safe_dump(policy, allow_unicode=False))
        try:
            loaded = load_policy(path)
        except PolicyError:
            OUTCOMES["policy-file"]["rejected:PolicyError"] += 1
        else:
            assert loaded.stages
            OUTCOMES["policy-file"]["valid"] += 1


def test_fuzz_command_result_record_whose_body_is_not_text_is_a_failed_item() -> None:
    target = next(t for t in TARGETS if t.function == "CommandResultFunction")
    record = target.seed["Records"][0] | {"body": {}}  # what hypothesis found: Powertools' model admits it
    with handler_environment(target.function):
        handled = run(target, {"Records": [record]})
    assert handled.outcome == "valid"
    assert handled.result == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert not handled.fakes.tracker.results
