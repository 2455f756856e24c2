"""The rollout state machine (statemachines/rollout.asl.json) executed by moto with the real handlers in-process."""

import json

import pytest

from patchpilot_sim.runtime import LocalRuntime
from tests.runtime_helpers import entered_states, launch_fleet, sent_commands, start, task_outputs

pytestmark = pytest.mark.runtime


def test_rollout_test_stages_install_scan_verify_bake_and_freeze_the_patch_set() -> None:
    with LocalRuntime(seed=11) as runtime:
        fleet = launch_fleet(runtime, groups={"dev", "staging"})
        description = start(runtime, ["dev", "staging"])
        arn = description["executionArn"]
        assert description["status"] == "SUCCEEDED"
        states = entered_states(runtime, arn)
        assert states[:5] == [
            "Plan Rollout",
            "Emergency Run?",
            "Notify Cycle Started",
            "Roll Out Stages",
            "Approval Required?",
        ]
        assert states.count("Bake") == 2
        paged = runtime.history(arn)  # GetExecutionHistory, every page
        followed = runtime.history_since(arn, 0)[:7] + runtime.history_since(arn, 7)  # what a follower reads
        assert [(e["id"], e["type"]) for e in followed] == [(e["id"], e["type"]) for e in paged]
        assert followed[-1].get("executionSucceededEventDetails") == paged[-1].get("executionSucceededEventDetails")
        assert states[-2:] == ["Notify Cycle Finished", "Rollout Succeeded"]
        commands = sent_commands(runtime, arn)
        phases = [(c["DocumentName"], c["Parameters"].get("Operation", [""])[0]) for c in commands]
        assert phases == [("AWS-RunPatchBaseline", "Install"), ("AWS-RunPatchBaseline", "Scan")] * 2
        assert {c["Targets"][0]["Values"][0] for c in commands} == {"dev", "staging"}
        assert all(
            c["Targets"][0]["Key"] == "tag:PatchGroup" and c["Comment"].startswith("PatchPilot ") for c in commands
        )
        outcomes = json.loads(description["output"])["stages_passed"]
        assert [(o["stage_name"], o["targeted"], o["unhealthy"]) for o in outcomes] == [
            ("dev", len(fleet["dev"]), 0),
            ("staging", len(fleet["staging"]), 0),
        ]
        frozen = outcomes[-1]["frozen_patch_count"]
        assert frozen > 0
        installed = set().union(*(runtime.fleet.installed_during_cycle(i.instance_id) for i in fleet["staging"]))
        assert frozen == len(installed)
        assert [a["kind"] for a in runtime.notifications()] == [
            "cycle_started",
            *["stage_started", "stage_passed"] * 2,
            "cycle_finished",
        ]


def test_rollout_production_installs_exactly_the_frozen_set_after_approval() -> None:
    with LocalRuntime(seed=12) as runtime:
        fleet = launch_fleet(runtime, instances=20, groups={"staging", "prod-1"})
        approvals: list[str] = []

        def approve_when_asked() -> None:
            for alert in runtime.notifications():
                if alert["kind"] == "approval_requested" and alert["approval_id"] not in approvals:
                    approvals.append(alert["approval_id"])
                    runtime.lambdas.invoke(
                        "DecideApprovalFunction",
                        {"approval_id": alert["approval_id"], "decision": "approve", "approver": "test"},
                    )
            if not approvals:
                runtime.scheduler.after(600, approve_when_asked)

        runtime.scheduler.after(600, approve_when_asked)
        description = start(runtime, ["staging", "prod-1"])
        assert description["status"] == "SUCCEEDED"
        install = next(
            c for c in sent_commands(runtime, description["executionArn"]) if c["Targets"][0]["Values"] == ["prod-1"]
        )
        [override] = install["Parameters"]["InstallOverrideList"]
        assert override.startswith("s3://")
        assert override.endswith("/install-prod-1.yaml")
        staged = set().union(*(runtime.fleet.installed_during_cycle(i.instance_id) for i in fleet["staging"]))
        for instance in fleet["prod-1"]:
            assert runtime.fleet.installed_during_cycle(instance.instance_id) <= staged
        assert len(approvals) == 1


def test_rollout_failed_instance_fails_the_stage_after_one_retry_and_alerts() -> None:
    with LocalRuntime(seed=13) as runtime:
        fleet = launch_fleet(runtime, groups={"dev", "staging"})
        fleet["dev"][0].install_outcome = "Failed"
        description = start(runtime, ["dev", "staging"])
        arn = description["executionArn"]
        assert (description["status"], description["error"]) == ("FAILED", "StageHealthCheckFailed")
        assert "stage dev (patch step, attempt 2)" in description["cause"]
        assert entered_states(runtime, arn).count("Find Failing Patches") == 2
        assert not [c for c in sent_commands(runtime, arn) if c["Targets"][0]["Values"] == ["staging"]]
        assert [a["kind"] for a in runtime.notifications()] == [
            "cycle_started",
            "stage_started",
            "stage_failed",
            "stage_failed",
            "rollout_failed",
        ]


def test_rollout_lost_events_are_recovered_by_bounded_reconciliation() -> None:
    with LocalRuntime(seed=14) as runtime:
        fleet = launch_fleet(runtime, groups={"dev"})
        fleet["dev"][-1].drop_terminal_event = True
        description = start(runtime, ["dev"])
        assert description["status"] == "SUCCEEDED"
        assert "Reconcile Command Results" in entered_states(runtime, description["executionArn"])
        assert runtime.fleet.dropped_events
        assert runtime.aws_calls["ssm.ListCommandInvocations"] >= 1


def test_rollout_rate_controlled_waves_quieter_than_a_fixed_heartbeat_reconcile_nothing() -> None:
    with LocalRuntime(seed=17) as runtime:
        fleet = launch_fleet(runtime, instances=40, groups={"staging"})
        for instance in fleet["staging"]:
            instance.install_minutes = 45.0  # each wave is quiet for 36-56 minutes: over the 15-minute floor
        description = start(runtime, ["staging"])
        arn = description["executionArn"]
        assert description["status"] == "SUCCEEDED", description.get("cause")
        installs = [c for c in runtime.fleet.commands.values() if c.operation == "Install"]
        assert len(installs) == 1
        assert len(installs[0].invocations) > 2  # staging's MaxConcurrency 50 %: at least two waves
        assert "Reconcile Command Results" not in entered_states(runtime, arn)
        waits = [
            json.loads(e["stateEnteredEventDetails"]["input"])["spec"]
            for e in runtime.history(arn)
            if (e.get("stateEnteredEventDetails") or {}).get("name") == "Wait For Command Results"
        ]
        install_wait = next(spec for spec in waits if spec["phase"] == "install")
        assert install_wait["heartbeat_seconds"] > 56 * 60
        assert install_wait["wait_timeout_seconds"] > install_wait["timeout_seconds"]


def test_rollout_unreachable_instance_counts_against_the_error_budget() -> None:
    with LocalRuntime(seed=15) as runtime:
        fleet = launch_fleet(runtime, groups={"dev"})
        fleet["dev"][0].online = False
        description = start(runtime, ["dev"])
        assert (description["status"], description["error"]) == ("FAILED", "StageHealthCheckFailed")
        verdict = task_outputs(runtime, description["executionArn"], "Verify Stage Health")[0]["verdict"]
        assert verdict["reasons"]["unreachable"] == 1


@pytest.mark.parametrize(
    ("request_fields", "error", "cause"),
    [
        ({"stages": ["prod-1"]}, "InvalidRolloutRequest", "need a test stage before them"),
        ({"stages": ["dev", "qa"]}, "InvalidRolloutRequest", "unknown stage"),
    ],
)
def test_rollout_rejects_bad_requests_before_any_command(
    request_fields: dict[str, object], error: str, cause: str
) -> None:
    with LocalRuntime(seed=16) as runtime:
        launch_fleet(runtime, groups={"dev"})
        stages = request_fields.pop("stages")
        description = start(runtime, stages, **request_fields)  # type: ignore[arg-type]
        assert (description["status"], description["error"]) == ("FAILED", error)
        assert cause in description["cause"]
        assert runtime.aws_calls["ssm.SendCommand"] == 0
        assert [a["kind"] for a in runtime.notifications()] == ["rollout_failed"]


def test_rollout_empty_patch_group_fails_with_no_instances_error() -> None:
    with LocalRuntime(seed=17) as runtime:
        launch_fleet(runtime, groups={"staging"})
        description = start(runtime, ["dev"])
        assert (description["status"], description["error"]) == ("FAILED", "NoInstancesInPatchGroup")
        assert runtime.aws_calls["ssm.SendCommand"] == 0
