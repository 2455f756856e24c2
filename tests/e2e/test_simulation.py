"""Whole patch cycles (`make demo`, `patchpilot simulate`) end to end, and summary.json's contract."""

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchpilot_cli.main import app
from patchpilot_sim.scenarios import SCENARIOS
from patchpilot_sim.simulate import SimulationOptions, run_simulation

pytestmark = [pytest.mark.runtime, pytest.mark.full_cycle]
SUMMARY_KEYS = {
    "status",
    "execution_arn",
    "stages",
    "excluded_patches",
    "state_transitions",
    "max_state_payload_bytes",
    "notifications",
    "aws_calls",
}


def test_simulation_healthy_cycle_passes_every_stage_in_order(tmp_path: Path) -> None:
    summary = run_simulation(SimulationOptions(instances=20, out_dir=tmp_path))
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["status"], summary["problems"]) == ("SUCCEEDED", [])
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [
        ("dev", "succeeded"),
        ("staging", "succeeded"),
        ("prod-1", "succeeded"),
        ("prod-2", "succeeded"),
        ("prod-3", "succeeded"),
    ]
    assert all(s["targeted"] == s["succeeded"] > 0 for s in summary["stages"])
    assert summary["stages"][1]["frozen_patch_count"] > 0
    assert summary["alerts"] == [
        "cycle_started",
        *["stage_started", "stage_passed"] * 2,
        "approval_requested",
        "approval_decided",
        *["stage_started", "stage_passed"] * 3,
        "cycle_finished",
    ]
    chat = summary["notifications"]
    assert chat["alerts_published"] == 14
    assert chat["delivered"]["teams"] == {
        "approval_decided": 1,
        "approval_requested": 1,
        "cycle_finished": 1,
        "cycle_started": 1,
        "stage_passed": 5,
        "stage_started": 5,
    }
    assert chat["delivered"]["slack"] == {**chat["delivered"]["teams"], "message_update": 1}  # approved in Slack
    assert (chat["messages"], chat["dead_lettered"]) == (29, 0)
    lines = [json.loads(line) for line in (tmp_path / "chat.jsonl").read_text().splitlines()]
    # chat.jsonl also holds the compliance snapshot's emergency run on dev, started after the cycle (issue 11)
    delivered = Counter({(p, k): n for p, kinds in chat["delivered"].items() for k, n in kinds.items()})
    after_cycle = Counter((line["platform"], line["kind"]) for line in lines) - delivered
    snapshot_run = ("emergency_started", "stage_started")
    assert after_cycle == Counter({(p, k): 1 for p in ("slack", "teams") for k in snapshot_run})
    assert len(lines) == chat["messages"] + after_cycle.total()
    assert all(set(line) == {"platform", "channel", "kind", "payload"} for line in lines)
    # per stage: install, scan, ONE cross-platform health check, and the check again after the bake; each production
    # stage first runs install, scan and the check on its canaries (one per OS, by default)
    assert summary["aws_calls"]["ssm.SendCommand"] == 5 * 4 + 3 * 3
    assert "InvalidPlatform" not in summary["invocations"]  # no health command half that runs nowhere
    assert all(row["inside_window"] for row in summary["installs"])
    assert [(row["patch_group"], row["canary"]) for row in summary["installs"]] == [
        ("dev", False),
        ("staging", False),
        *[(group, canary) for group in ("prod-1", "prod-2", "prod-3") for canary in (True, False)],
    ]
    assert summary["simulated_hours"] >= 24 * 6  # bakes: 24 + 48 + 24 + 24 + 24 hours
    assert '"service":"patchpilot"' in (tmp_path / "lambda.log").read_text()


@pytest.mark.parametrize("scenario", [name for name in SCENARIOS if name != "healthy"])
def test_simulation_scenario_ends_as_documented(scenario: str) -> None:
    summary = run_simulation(SimulationOptions(instances=20, scenario=scenario, out_dir=None))
    assert summary["problems"] == []
    assert summary["outcome_as_expected"] is True
    assert (summary["status"], summary["error"]) == (
        SCENARIOS[scenario].expected_status,
        SCENARIOS[scenario].expected_error,
    )
    if scenario == "bad-patch":
        [excluded] = summary["excluded_patches"]
        assert excluded["stage"] == "staging"
        assert "stage_failed" in summary["alerts"]
    if scenario == "two-bad-patches":  # one decision of staging excluded both, each for its own OS
        excluded = summary["excluded_patches"]
        assert [p["stage"] for p in excluded] == ["staging", "staging"]
        assert len({p["operating_systems"][0] for p in excluded}) == 2
    if scenario == "canary-catches":  # caught on prod-1's canaries, the rest of prod-1 patched after the exclusion
        [excluded] = summary["excluded_patches"]
        assert excluded["stage"] == "prod-1"
        prod_1 = [row["canary"] for row in summary["installs"] if row["patch_group"] == "prod-1"]
        assert prod_1 == [True, True, False]
    if scenario == "duplicate-start":
        assert (summary["executions_started"], summary["duplicate_starts_ignored"]) == (1, 1)
    if scenario == "next-month":
        [first] = summary["earlier_cycles"]
        assert (first["cycle"], first["status"]) == ("2026-12", "SUCCEEDED")
        [excluded] = first["excluded_patches"]
        assert excluded["stage"] == "staging"
        assert summary["excluded_patches"] == []  # the fixed version installs without a new exclusion
        assert summary["execution_arn"].endswith("cycle-2027-01")
    if scenario == "silent-os":
        assert summary["verdict_reasons"]["dev"]["approves_nothing"] >= 1
        assert summary["excluded_patches"] == []
    if scenario == "emergency":
        assert [s["status"] for s in summary["stages"]] == ["succeeded", "not_run", "succeeded", "not_run", "not_run"]
        assert summary["alerts"][0] == "emergency_started"
    if scenario == "chaos":
        # The storm outlasts the SDK's retries (6 attempts, backoff in simulated seconds): a call fails throttled
        # and the state machine's Retry carries the Task over it.
        assert summary["faults_injected"]["storm.ssm.ThrottlingException"] >= 6
        assert summary["faults_surfaced"]["ssm.ThrottlingException"] >= 1
        assert summary["task_errors_retried"]["TransientAwsError"] >= 1
    if scenario == "webhook-outage":
        chat = summary["notifications"]
        assert chat["dead_lettered"] == chat["redelivered"] >= 1
        assert chat["left_in_dead_letter_queue"] == 0
        assert chat["delivered"]["teams"]["stage_passed"] == 5  # each alert once per channel, outage or not


@pytest.mark.full_cycle(cycles=2)  # a 10- and a 60-instance cycle
def test_simulation_state_payload_does_not_grow_with_the_fleet() -> None:
    small = run_simulation(SimulationOptions(instances=10, scenario="lost-events", out_dir=None))
    large = run_simulation(SimulationOptions(instances=60, scenario="lost-events", out_dir=None))
    assert large["fleet_instances"] > 5 * small["fleet_instances"]
    assert abs(large["max_state_payload_bytes"] - small["max_state_payload_bytes"]) <= 16


def test_cli_simulate_failing_instance_exits_zero_when_the_cycle_is_stopped(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "failing-instance", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "scenario failing-instance: ended as the scenario expects" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["status"], summary["error"]) == ("FAILED", "StageHealthCheckFailed")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--scenario", "meteor"], "unknown scenario"), (["--instances", "0"], "at least 1")],
)
def test_cli_simulate_rejects_bad_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output
