"""`patchpilot invoke`: every sample event in events/ through the local runtime, and bad input."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchpilot_cli.main import app

pytestmark = pytest.mark.runtime
EVENTS = Path(__file__).resolve().parents[2] / "events"
NO_RULE = "no rule"

# file -> (--function or None, exit code, text the output must contain). Every file in events/ is listed.
EXPECTED: dict[str, tuple[str | None, int, str]] = {
    "approval/decide-approve.json": ("DecideApprovalFunction", 2, "ApprovalNotFound: no approval has the id zk47xva9"),
    "approval/decide-malformed.json": ("DecideApprovalFunction", 2, "decision: Input should be 'approve' or 'reject'"),
    "approval/decide-reject.json": (None, 0, NO_RULE),
    "approval/request-approval.json": ("RequestApprovalFunction", 0, '"approval_id": "zk47xva9"'),
    "chat/slack-interaction-bad-signature.json": ("SlackInteractionFunction", 0, '"statusCode": 401'),
    "chat/sns-stage-failed.json": ("NotifierFunction", 0, '"kind": "stage_failed"'),
    "chat/sns-unrenderable.json": ("NotifierFunction", 0, '"rejected": 1'),
    "ec2/instance-running-malformed.json": (None, 0, NO_RULE),
    "ec2/instance-running.json": (None, 0, "InstanceRegistrationFunction (rule Ec2InstanceRunning): ok"),
    "rollout/execution-input.json": (None, 0, NO_RULE),
    "rollout/start-cycle.json": ("StartRolloutFunction", 0, '"started": true'),
    "rollout/start-emergency.json": ("StartRolloutFunction", 0, '"execution_name": "emergency-'),
    "rollout/start-invalid.json": ("StartRolloutFunction", 2, "cve_ids.0: String should match pattern"),
    "rollout/start-manual-dev-staging.json": (None, 0, NO_RULE),
    "schedule/monthly-rollout.json": ("StartRolloutFunction", 0, '"run_id": "'),
    "ssm/command-invocation-failed.json": (None, 0, '"batchItemFailures": []'),
    "ssm/command-invocation-in-progress.json": (None, 0, NO_RULE),  # the rule queues final statuses only
    "ssm/command-invocation-malformed.json": (None, 2, "detail.instance-id: Field required"),
    "ssm/command-invocation-success.json": (None, 0, "CommandResultFunction (rule SsmCommandInvocationRule): ok"),
    "ssm/command-status-success.json": (None, 0, NO_RULE),
    "ssm/compliance-state-change.json": (None, 2, "UnknownComplianceNode: compliance event 2c4f9a8e"),
    "ssm/compliance-state-change-malformed.json": (
        None,
        2,
        "detail.compliance-status: Input should be 'compliant' or 'non_compliant'",
    ),
}


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["invoke", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_cli_invoke_expectations_cover_every_sample_event() -> None:
    on_disk = {str(path.relative_to(EVENTS)) for path in EVENTS.rglob("*.json")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_invoke_sample_event_succeeds_is_rejected_cleanly_or_matches_no_rule(name: str) -> None:
    function, expected_exit, expected_text = EXPECTED[name]
    args = ["--event", str(EVENTS / name)] + (["--function", function] if function else [])
    exit_code, output = _invoke(*args)
    assert exit_code == expected_exit, output
    assert expected_text in output
    assert "Traceback" not in output


@pytest.mark.parametrize("name", sorted(name for name, (function, _, _) in EXPECTED.items() if function))
def test_cli_invoke_routes_every_direct_payload_without_function(name: str) -> None:
    exit_code, output = _invoke("--event", str(EVENTS / name))
    assert exit_code == 0, output
    assert "no rule matches: this is not an EventBridge event" in output
    assert "pass --function, one of: " in output


def test_cli_invoke_validation_error_prints_one_line_per_field() -> None:
    exit_code, output = _invoke("--event", str(EVENTS / "ssm/command-invocation-malformed.json"))
    assert exit_code == 2
    lines = output.strip().splitlines()
    assert lines[0] == "CommandResultFunction (rule SsmCommandInvocationRule): rejected the event"
    assert lines[1].strip().startswith("BatchItemFailure: the message was reported failed: SQS redelivers it")
    assert [line.strip().split(":")[0] for line in lines[2:]] == ["detail.instance-id", "detail.requested-date-time"]
    assert "errors.pydantic.dev" not in output


def test_cli_invoke_direct_start_stops_the_execution_it_started() -> None:
    exit_code, output = _invoke("--event", str(EVENTS / "rollout/start-cycle.json"), "--function", "startrollout")
    assert exit_code == 0, output
    payload = json.loads(output[output.index("{") : output.index("}") + 1])
    assert payload["started"] is True
    assert f"stopped execution {payload['execution_arn']}" in output


def test_cli_invoke_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    exit_code, output = _invoke("--event", str(tmp_path / "nope.json"))
    assert exit_code == 2
    assert output.strip().splitlines() == [
        f"error: event file '{tmp_path / 'nope.json'}' does not exist; pass a JSON file, e.g. events/ssm/*.json"
    ]


def test_cli_invoke_non_json_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    exit_code, output = _invoke("--event", str(bad))
    assert exit_code == 2
    assert output.startswith(f"error: event file '{bad}' is not JSON (line 1, column 2")
    assert "expected a JSON object" in output
    assert len(output.strip().splitlines()) == 1


def test_cli_invoke_json_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "list.json"
    bad.write_text("[1, 2]")
    exit_code, output = _invoke("--event", str(bad))
    assert (exit_code, output.strip()) == (2, f"error: event file '{bad}' holds a JSON list; expected a JSON object")


def test_cli_invoke_unreadable_file_is_one_line_exit_2(tmp_path: Path) -> None:
    exit_code, output = _invoke("--event", str(tmp_path))
    assert exit_code == 2
    assert output.startswith(f"error: cannot read event file '{tmp_path}'")
    assert len(output.strip().splitlines()) == 1


def test_cli_invoke_unknown_function_names_the_accepted_values() -> None:
    exit_code, output = _invoke("--event", str(EVENTS / "ec2/instance-running.json"), "--function", "Nope")
    assert exit_code == 2
    assert output.startswith("error: unknown function 'Nope'; choose one of: AwaitInstallFunction, ")
    assert "StartRolloutFunction" in output
    assert len(output.strip().splitlines()) == 1
