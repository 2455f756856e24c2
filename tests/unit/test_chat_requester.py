"""Who requested a run reaches its approval gate (so that person cannot approve production from chat)."""

from datetime import UTC, datetime

from patchpilot.logic.approval import request_approval
from patchpilot.logic.cycle import start_rollout
from patchpilot.logic.rollout_plan import plan_rollout
from patchpilot.models.approval import ApprovalRequest
from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.rollout import RolloutRequest
from tests.fakes import FakeStarter, InMemoryApprovalStore, RecordingAlertPublisher, RecordingCallbacks
from tests.unit.test_slack_interaction import CATALOG

NOW = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)


def test_requester_is_carried_from_the_start_request_into_the_run_context() -> None:
    starter = FakeStarter()
    start_rollout(StartRolloutRequest(mode="manual", requested_by="U0ANA"), starter, NOW)
    [execution_input] = starter.executions.values()
    plan = plan_rollout(RolloutRequest.model_validate_json(execution_input), CATALOG, NOW)
    assert plan.run.requested_by == "U0ANA"
    assert plan.model_dump(mode="json")["run"]["requested_by"] == "U0ANA"


def test_requester_does_not_make_the_same_emergency_request_a_second_run() -> None:
    starter = FakeStarter()
    first = start_rollout(StartRolloutRequest(mode="emergency", patch_ids=["KB1"], requested_by="ana"), starter, NOW)
    second = start_rollout(StartRolloutRequest(mode="emergency", patch_ids=["KB1"], requested_by="bob"), starter, NOW)
    assert first.run_id == second.run_id
    assert second.started is False


def test_requester_is_stored_with_the_approval_and_a_blank_or_null_one_is_none() -> None:
    store = InMemoryApprovalStore()
    for stage, requester in (("prod-1", "U0ANA"), ("staging", None), ("prod-2", "  ")):
        request = ApprovalRequest(
            task_token=f"token-{stage}",  # type: ignore[arg-type]
            run_id="manual-2026-12",
            stage_name=stage,
            execution_id="arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:manual-2026-12",
            timeout_seconds=600,
            summary=f"promote to {stage}",
            details={"requested_by": requester},
        )
        approval_id = request_approval(request, store, RecordingCallbacks(), RecordingAlertPublisher(), NOW).approval_id
        assert store.records[approval_id].requested_by == {"prod-1": "U0ANA"}.get(stage)
