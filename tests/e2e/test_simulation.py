"""`make demo`'s cycle (patchpilot simulate) end to end, and summary.json's contract."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchpilot_local.cli import app
from patchpilot_local.simulate import SimulationOptions, run_simulation

pytestmark = pytest.mark.runtime
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


def test_simulation_healthy_cycle_writes_summary(tmp_path: Path) -> None:
    summary = run_simulation(SimulationOptions(instances=20, out_dir=tmp_path))
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == summary
    assert set(summary) >= SUMMARY_KEYS
    assert summary["status"] == "SUCCEEDED"
    [stage] = summary["stages"]
    assert stage["status"] == "succeeded"
    assert stage["targeted"] == stage["succeeded"] > 0
    assert stage["failed"] == 0
    assert summary["state_transitions"] >= 7
    assert summary["aws_calls"]["ssm.SendCommand"] == 1
    assert summary["aws_calls"]["sfn.SendTaskSuccess"] == 1
    assert summary["outcome_as_expected"] is True
    assert (tmp_path / "lambda.log").read_text().count('"service":"patchpilot"') > 0


def test_simulation_state_payload_does_not_grow_with_the_fleet(tmp_path: Path) -> None:
    small = run_simulation(SimulationOptions(instances=10, out_dir=None))
    large = run_simulation(SimulationOptions(instances=200, out_dir=None))
    assert large["stages"][0]["targeted"] > 5 * small["stages"][0]["targeted"]
    assert abs(large["max_state_payload_bytes"] - small["max_state_payload_bytes"]) <= 8


def test_cli_simulate_failing_instance_exits_zero_when_the_stage_is_stopped(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "failing-instance", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["status"], summary["error"], summary["notifications"]) == ("FAILED", "StageHealthCheckFailed", 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--scenario", "meteor"], "unknown scenario"), (["--instances", "0"], "at least 1")],
)
def test_cli_simulate_rejects_bad_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output
