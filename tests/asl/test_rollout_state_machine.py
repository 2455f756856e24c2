"""The rollout state machine (statemachines/rollout.asl.json) executed by moto with the real handlers in-process."""

import json

import pytest

from patchpilot_local.runtime import LocalRuntime
from tests.runtime_helpers import dev_fleet, entered_states, rollout_request, run_rollout, send_command_parameters

pytestmark = pytest.mark.runtime


def test_rollout_healthy_stage_installs_waits_verifies_and_bakes() -> None:
    with LocalRuntime(seed=11) as runtime:
        fleet = dev_fleet(runtime)
        description = run_rollout(runtime, rollout_request(max_concurrency="50%"))
        arn = description["executionArn"]
        assert description["status"] == "SUCCEEDED"
        assert entered_states(runtime, arn) == [
            "Plan Stage",
            "Start Install Tracking",
            "Install Patches",
            "Wait For Install Results",
            "Verify Stage Health",
            "Bake",
            "Rollout Succeeded",
        ]
        parameters = send_command_parameters(runtime, arn)
        assert parameters["DocumentName"] == "AWS-RunPatchBaseline"
        assert parameters["Targets"] == [{"Key": "tag:PatchGroup", "Values": ["dev"]}]
        assert parameters["Parameters"]["Operation"] == ["Install"]
        assert (parameters["MaxConcurrency"], parameters["MaxErrors"]) == ("50%", "0")
        assert parameters["Comment"] == "PatchPilot test-run/dev"
        verdict = json.loads(description["output"])["verdict"]
        assert (verdict["targeted"], verdict["succeeded"], verdict["failed"]) == (len(fleet), len(fleet), 0)
        assert runtime.notifications() == []


def test_rollout_failed_install_fails_the_stage_with_the_named_error_and_alerts() -> None:
    with LocalRuntime(seed=12) as runtime:
        fleet = dev_fleet(runtime)
        fleet[0].install_outcome = "Failed"
        description = run_rollout(runtime, rollout_request())
        assert description["status"] == "FAILED"
        assert description["error"] == "StageHealthCheckFailed"
        assert f"1 of {len(fleet)} instances failed" in description["cause"]
        assert "Bake" not in entered_states(runtime, description["executionArn"])
        alerts = runtime.notifications()
        assert [(a["kind"], a["stage_name"], a["error"]) for a in alerts] == [
            ("stage_failed", "dev", "StageHealthCheckFailed")
        ]


def test_rollout_error_budget_tolerates_failures_within_max_errors() -> None:
    with LocalRuntime(seed=13) as runtime:
        fleet = dev_fleet(runtime, instances=30)
        fleet[0].install_outcome = "Failed"
        description = run_rollout(runtime, rollout_request(max_errors="1", max_concurrency="1"))
        assert description["status"] == "SUCCEEDED"
        verdict = json.loads(description["output"])["verdict"]
        assert (verdict["failed"], verdict["allowed_failures"]) == (1, 1)


def test_rollout_lost_events_are_recovered_by_bounded_reconciliation() -> None:
    with LocalRuntime(seed=14) as runtime:
        fleet = dev_fleet(runtime)
        fleet[-1].drop_terminal_event = True
        description = run_rollout(runtime, rollout_request())
        assert description["status"] == "SUCCEEDED"
        states = entered_states(runtime, description["executionArn"])
        assert "Reconcile Install Results" in states
        assert runtime.fleet.dropped_events, "the scenario must really lose an event"
        assert runtime.aws_calls["ssm.ListCommandInvocations"] >= 1


def test_rollout_offline_instance_delivery_timeout_fails_the_stage() -> None:
    with LocalRuntime(seed=15) as runtime:
        fleet = dev_fleet(runtime)
        fleet[0].online = False
        description = run_rollout(runtime, rollout_request())
        assert (description["status"], description["error"]) == ("FAILED", "StageHealthCheckFailed")
        assert "1 install failures" in description["cause"]


def test_rollout_rejects_invalid_request_before_any_command_is_sent() -> None:
    with LocalRuntime(seed=16) as runtime:
        dev_fleet(runtime)
        request = {"run_id": "bad run!", "stage": {"name": "dev", "patch_group": "dev", "bake_seconds": 1}}
        description = run_rollout(runtime, request, name="invalid")
        assert description["status"] == "FAILED"
        assert description["error"] == "ValidationError"
        assert "run_id" in description["cause"]
        assert runtime.aws_calls["ssm.SendCommand"] == 0
        assert [a["kind"] for a in runtime.notifications()] == ["rollout_failed"]


def test_rollout_empty_patch_group_fails_with_no_instances_error() -> None:
    with LocalRuntime(seed=17) as runtime:
        dev_fleet(runtime)
        description = run_rollout(runtime, rollout_request(patch_group="prod-9"))
        assert (description["status"], description["error"]) == ("FAILED", "NoInstancesInPatchGroup")
        assert runtime.aws_calls["ssm.SendCommand"] == 0
