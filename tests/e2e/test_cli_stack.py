"""The deployed-stack commands, run against the local runtime acting as the AWS endpoint."""

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.integrations.ssm_patches import SsmPatchBaselines
from patchpilot.models.exclusion import ExclusionRecord, PatchEvidence
from patchpilot_cli import main as cli_main
from patchpilot_cli.exclusion_ledger import load_ledger
from patchpilot_cli.main import app
from patchpilot_cli.operator import connect, pending_approvals
from patchpilot_cli.stack import resolve_outputs
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import build_fleet
from patchpilot_sim.simulate import LOCAL_LIMITS
from patchpilot_sim.stack_standin import register_stack_outputs
from tests.fakes import sample_exclusion

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.xdist_group("test_cli_stack")]
STACK = "patchpilot-test"
EVENTS = Path(__file__).resolve().parents[2] / "events"
REQUEST = json.loads((EVENTS / "approval/request-approval.json").read_text())


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as rt:
        rt.add_instances([i for i in build_fleet(10, 3) if i.patch_group in {"dev", "prod-1"}])
        register_stack_outputs(rt, STACK)
        yield rt


def _cli(*args: str, user_input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--stack-name", STACK], input=user_input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, _without_lambda_logs(result.output)


def _without_lambda_logs(output: str) -> str:
    """The CLI's own output: the runtime started before CliRunner swapped sys.stdout, so the in-process handlers'
    JSON log and metric lines (CloudWatch's, in a deployment) land in the captured output too."""
    return "".join(line for line in output.splitlines(keepends=True) if not line.startswith('{"'))


def _request_approval(runtime: LocalRuntime, stage: str) -> str:
    result = runtime.lambdas.invoke("RequestApprovalFunction", {**REQUEST, "stage_name": stage})
    assert not result.failed, result.error_message
    return str(result.payload["approval_id"])


def _waiting_approval(runtime: LocalRuntime, cycle: str) -> tuple[str, str]:
    """Start dev then prod-1 (approval gate before prod-1) and wait until the execution asks for approval."""
    request = {
        "mode": "manual",
        "cycle": cycle,
        "stages": ["dev", "prod-1"],
        "bake_seconds": {"dev": 1, "prod-1": 1},
        "limits": LOCAL_LIMITS,
        "approval_timeout_seconds": 120,
    }
    started = runtime.lambdas.invoke("StartRolloutFunction", request)
    assert not started.failed, started.error_message
    arn = str(started.payload["execution_arn"])
    outputs = resolve_outputs(STACK, None)
    waiting: list[Any] = []

    def asked() -> bool:
        waiting[:] = [a for a in pending_approvals(connect(outputs)) if a.execution_id == arn]
        return bool(waiting)

    # Simulated time stands still once the request is pending: the operator answers within its 120-second timeout.
    assert runtime.run_until(asked, max_simulated_seconds=45 * 24 * 3600), f"{arn} never asked for approval"
    return waiting[0].approval_id, arn


def test_cli_start_runs_a_cycle_that_status_watch_follows_to_the_end(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator refreshes every --interval seconds: simulated seconds here, the simulation runs between refreshes
    monkeypatch.setattr(cli_main, "time", SimpleNamespace(sleep=runtime.clock.advance))
    exit_code, output = _cli("start", "--cycle", "2026-10", "--stages", "dev", "--bake-seconds", "dev=1")
    assert exit_code == 0, output
    assert output.startswith("started execution ")
    assert ":execution:patchpilot-local-RolloutStateMachine:" in output
    again_code, again = _cli("start", "--cycle", "2026-10", "--stages", "dev", "--bake-seconds", "dev=1")
    assert again_code == 0, again
    assert again.startswith("already running: execution ")
    code, watched = _cli("status", "--watch", "--interval", "3600")
    assert code == 0, watched
    assert "RUNNING" in watched
    assert "stage dev: " in watched
    final = watched.split(f"stack {STACK}:")[-1]
    assert "SUCCEEDED" in final
    assert "RUNNING" not in final


def test_cli_emergency_validates_ids_before_calling_the_stack(runtime: LocalRuntime) -> None:
    before = len(runtime.lambdas.records)
    exit_code, output = _cli("emergency", "--cve", "CVE-24-1", "--patch", "KB5034441")
    assert exit_code == 2
    assert output.startswith("error: invalid --cve 'CVE-24-1': String should match pattern")
    assert "(expected CVE-YYYY-NNNN" in output
    assert len(output.strip().splitlines()) == 1
    assert len(runtime.lambdas.records) == before


def test_cli_emergency_without_ids_names_the_accepted_options(runtime: LocalRuntime) -> None:
    exit_code, output = _cli("emergency", "--stages", "dev")
    assert (exit_code, output.strip()) == (
        2,
        "error: emergency needs at least one --patch ID (e.g. KB5034441) or --cve CVE-YYYY-NNNN",
    )


def test_cli_emergency_starts_an_emergency_run(runtime: LocalRuntime) -> None:
    exit_code, output = _cli("emergency", "--cve", "CVE-2024-6387", "--stages", "dev", "--bake-seconds", "dev=1")
    assert exit_code == 0, output
    assert output.startswith("started execution emergency-")
    arn = output.strip().splitlines()[1].strip()
    sfn = runtime.admin.client("stepfunctions")
    assert json.loads(sfn.describe_execution(executionArn=arn)["input"])["mode"] == "emergency"
    _stop(runtime, arn)


def _stop(runtime: LocalRuntime, arn: str) -> None:
    """Stop an execution this test does not follow to its end (moto refuses until its worker has started)."""
    runtime.clock.quiesce()
    runtime.admin.client("stepfunctions").stop_execution(executionArn=arn)
    runtime.settle()


def test_cli_start_rejects_a_bad_cycle_in_one_line(runtime: LocalRuntime) -> None:
    exit_code, output = _cli("start", "--cycle", "2026-13")
    assert exit_code == 2
    assert output.startswith("error: invalid --cycle '2026-13'")
    assert "(expected YYYY-MM, e.g. 2026-12)" in output


def test_cli_start_rejects_a_bad_bake_option(runtime: LocalRuntime) -> None:
    exit_code, output = _cli("start", "--bake-seconds", "dev")
    assert (exit_code, output.strip()) == (
        2,
        "error: invalid --bake-seconds 'dev' (expected STAGE=SECONDS, e.g. prod-1=3600)",
    )


def test_cli_status_shows_a_pending_approval(runtime: LocalRuntime) -> None:
    approval_id = _request_approval(runtime, "prod-2")
    exit_code, output = _cli("status")
    assert exit_code == 0, output
    assert f"waiting for approval {approval_id}: run 2026-12 -> prod-2" in output


def test_cli_approve_resumes_the_waiting_execution_once(runtime: LocalRuntime) -> None:
    approval_id, arn = _waiting_approval(runtime, "2026-07")
    _, shown = _cli("status")
    assert f"waiting for approval {approval_id}: run manual-2026-07 -> prod-1" in shown
    exit_code, output = _cli("approve", approval_id.upper(), "--reason", "staging clean", "--approver", "alice")
    assert exit_code == 0, output
    assert (
        output.strip()
        == f"approval {approval_id} approved by alice: run manual-2026-07 -> prod-1 (the execution was told)"
    )
    table = runtime.resources.table_names["RunsTable"]
    item = runtime.admin.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": "APPROVAL"}}
    )["Item"]
    assert (item["status"]["S"], item["approver"]["S"], item["reason"]["S"]) == ("approved", "alice", "staging clean")
    assert runtime.wait_for_execution(arn, timeout=120)["status"] == "SUCCEEDED"
    runtime.settle(timeout=10)
    again_code, again = _cli("reject", approval_id, "--approver", "bob")
    assert again_code == 0, again
    assert again.strip() == f"approval {approval_id} was already approved by alice; nothing changed"


def test_cli_reject_stops_the_rollout_and_defaults_the_approver_to_user(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "carol")
    approval_id, arn = _waiting_approval(runtime, "2026-06")
    exit_code, output = _cli("reject", approval_id, "--reason", "freeze")
    assert exit_code == 0, output
    assert output.startswith(f"approval {approval_id} rejected by carol: run manual-2026-06 -> prod-1")
    description = runtime.wait_for_execution(arn, timeout=60)
    runtime.settle(timeout=10)
    assert description["status"] == "FAILED"
    assert any(a.get("kind") == "approval_decided" for a in runtime.notifications())


def test_cli_approve_of_an_execution_that_no_longer_waits_says_so(runtime: LocalRuntime) -> None:
    approval_id = _request_approval(runtime, "prod-3")
    exit_code, output = _cli("approve", approval_id, "--approver", "alice")
    assert exit_code == 2
    assert output.startswith(f"error: ApprovalExpired: approval {approval_id} (promote run 2026-12 to prod-3)")


def test_cli_approve_unknown_id_is_a_clean_error(runtime: LocalRuntime) -> None:
    exit_code, output = _cli("approve", "abcdefgh", "--approver", "alice")
    assert (exit_code, output.strip()) == (2, "error: ApprovalNotFound: no approval has the id abcdefgh")


def test_cli_approve_malformed_id_names_the_format(runtime: LocalRuntime) -> None:
    exit_code, output = _cli("approve", "not-an-id", "--approver", "alice")
    assert exit_code == 2
    assert output.startswith("error: invalid APPROVAL_ID 'not-an-id'")
    assert "8 letters/digits from the approval alert" in output


def _seed_exclusion(runtime: LocalRuntime, run_id: str, patch_id: str) -> str:
    baseline_id = str(
        runtime.baselines.handle(
            "GetPatchBaselineForPatchGroup", {"PatchGroup": "prod-1", "OperatingSystem": "AMAZON_LINUX_2023"}
        )["BaselineId"]
    )
    SsmPatchBaselines(boto3.client("ssm")).reject_patches(baseline_id, [patch_id])
    record = sample_exclusion(patch_id, "staging", run_id, baseline_ids=(baseline_id,), decided_at=runtime.clock.now())
    ledger = DynamoDBExclusionLedger(runtime.resources.table_names["RunsTable"], runtime.admin.client("dynamodb"))
    assert ledger.record(record)
    return baseline_id


def test_cli_exclusions_list_shows_the_evidence(runtime: LocalRuntime) -> None:
    baseline_id = _seed_exclusion(runtime, "2026-08", "openssl-3.0.8-1.amzn2023")
    exit_code, output = _cli("exclusions", "list", "--run", "2026-08")
    assert exit_code == 0, output
    assert output.startswith("openssl-3.0.8-1.amzn2023 excluded at staging on ")
    assert "on 9/10 unhealthy and 0/10 healthy instances, 2 failed install(s); openssl-3.0.8-1.amzn2023 title" in output
    assert f"rejected in baselines: {baseline_id}" in output
    empty_code, empty = _cli("exclusions", "list", "--run", "2026-01")
    assert (empty_code, empty.strip()) == (0, "run 2026-01: no patch was excluded")


def test_cli_exclusions_remove_unrejects_the_patch_and_retires_the_row(runtime: LocalRuntime) -> None:
    patch = "curl-8.5.0-1.amzn2023"
    baseline_id = _seed_exclusion(runtime, "2026-09", patch)
    declined_code, declined = _cli("exclusions", "remove", "--run", "2026-09", "--patch", patch, user_input="n\n")
    assert declined_code == 1
    assert "nothing changed" in declined
    ssm = boto3.client("ssm")
    assert patch in ssm.get_patch_baseline(BaselineId=baseline_id)["RejectedPatches"]
    exit_code, output = _cli("exclusions", "remove", "--run", "2026-09", "--patch", patch, "--yes")
    assert exit_code == 0, output
    assert f"removed the exclusion of {patch} at staging: baselines changed: {baseline_id}" in output
    assert patch not in ssm.get_patch_baseline(BaselineId=baseline_id)["RejectedPatches"]
    ledger = DynamoDBExclusionLedger(runtime.resources.table_names["RunsTable"], runtime.admin.client("dynamodb"))
    assert ledger.exclusions_of("2026-09") == []
    _, listed = _cli("exclusions", "list", "--run", "2026-09")
    assert " - REMOVED by " in listed
    again_code, again = _cli("exclusions", "remove", "--run", "2026-09", "--patch", patch, "--yes")
    assert (again_code, again.strip()) == (
        2,
        f"error: patch '{patch}' is not excluded in run '2026-09' (run 2026-09 excluded nothing)",
    )


def test_cli_exclusions_export_writes_the_ledger_that_make_baselines_renders(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    patch = "glibc.x86_64"
    evidence = PatchEvidence(
        patch_id=patch,
        title="glibc.x86_64:0:2.34-117.amzn2023.0.1",
        failing_with=2,
        failing_total=2,
        healthy_with=0,
        healthy_total=3,
        failed_installs=2,
        operating_systems=["AMAZON_LINUX_2023"],
    )
    record = ExclusionRecord(
        run_id="2026-07",
        stage_name="staging",
        evidence=evidence,
        baseline_ids=[],
        decided_at=runtime.clock.now(),
        rejected_as=["glibc-2.34-117.amzn2023.0.1.x86_64"],
        patch_groups=["staging", "prod-1"],
    )
    ledger = DynamoDBExclusionLedger(runtime.resources.table_names["RunsTable"], runtime.admin.client("dynamodb"))
    assert ledger.record(record)
    output = tmp_path / "exclusions.yaml"
    exit_code, said = _cli("exclusions", "export", "--output", str(output))
    assert exit_code == 0, said
    assert f"{output}: " in said
    assert "now run `make baselines`" in said
    exported = load_ledger(output)
    [entry] = [e for e in exported.exclusions if e.run_id == "2026-07"]
    assert (entry.reject, entry.environments) == ("glibc-2.34-117.amzn2023.0.1.x86_64", ["prod", "staging"])
    again_code, _ = _cli("exclusions", "export", "--output", str(output))
    assert again_code == 0
    assert load_ledger(output) == exported  # exporting twice changes nothing


def test_cli_missing_stack_is_one_line_exit_2(runtime: LocalRuntime) -> None:
    result = CliRunner().invoke(app, ["status", "--stack-name", "no-such-stack"])
    assert result.exit_code == 2
    assert _without_lambda_logs(result.output).strip() == (
        "error: stack 'no-such-stack' not found in the default region; deploy it (sam deploy) or pass "
        "--stack-name/--region (default stack: $PATCHPILOT_STACK or 'patchpilot')"
    )


def test_cli_stack_name_defaults_to_the_environment(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an execution on the stack (whichever tests ran before on this worker)
    started_code, started = _cli("start", "--cycle", "2025-03", "--stages", "dev", "--bake-seconds", "dev=1")
    assert started_code == 0, started
    # When the stack comes from PATCHPILOT_STACK, not --stack-name
    monkeypatch.setenv("PATCHPILOT_STACK", STACK)
    result = CliRunner().invoke(app, ["status", "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert _without_lambda_logs(result.output).startswith(f"stack {STACK}: 1 recent execution(s)")
    arn = runtime.state_machine_arn().replace(":stateMachine:", ":execution:") + ":manual-2025-03"
    assert runtime.wait_for_execution(arn, timeout=120)["status"] == "SUCCEEDED"


def test_cli_simulate_scenario_list_describes_every_scenario() -> None:
    result = CliRunner().invoke(app, ["simulate", "--scenario", "list"])
    assert result.exit_code == 0
    listed = _without_lambda_logs(result.output)
    assert [line.split()[0] for line in listed.strip().splitlines()][:2] == ["healthy", "failing-instance"]
    assert "reconciliation recovers them" in listed


def test_cli_resume_refuses_a_cycle_never_started_and_leaves_a_live_one_alone(runtime: LocalRuntime) -> None:
    code, output = _cli("resume", "--cycle", "2025-01", "--manual")
    assert code == 1, output
    assert "NothingToResume: run manual-2025-01 has no execution" in output
    started_code, started = _cli("start", "--cycle", "2025-02", "--stages", "dev", "--bake-seconds", "dev=1")
    assert started_code == 0, started
    code, output = _cli("resume", "--cycle", "2025-02", "--manual")
    assert code == 0, output
    assert output.startswith("nothing to resume: execution manual-2025-02 (run manual-2025-02) is ")
    arn = runtime.state_machine_arn().replace(":stateMachine:", ":execution:") + ":manual-2025-02"
    assert runtime.wait_for_execution(arn, timeout=120)["status"] == "SUCCEEDED"
