"""`patchpilot doctor`: the pure checks, the schedule evaluator, the readers' parsing and the CLI's bad input."""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from patchpilot.models.exclusion import ExclusionRecord, PatchEvidence
from patchpilot_cli import doctor_readers as read
from patchpilot_cli.aws_cron import UnsupportedExpression, next_fire_time
from patchpilot_cli.doctor import render_line, verdict
from patchpilot_cli.doctor_checks import (
    REQUIRED_PERMISSIONS,
    Baseline,
    Check,
    DeadLetters,
    Ec2Instance,
    FleetView,
    FunctionActivity,
    ManagedNode,
    ScheduleState,
    Simulation,
    check_dead_letters,
    check_exclusion_drift,
    check_functions,
    check_group_agents,
    check_group_baselines,
    check_group_nodes,
    check_group_platforms,
    check_group_scans,
    check_hybrid,
    check_instance_profile,
    check_outputs,
    check_role,
    check_schedule,
    check_untagged,
)
from patchpilot_cli.doctor_probe import event_check, group_check, wait_for_commands, wait_for_records
from patchpilot_cli.main import app
from patchpilot_sim.template import SamTemplate

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def _node(
    node_id: str, ping: str = "Online", platform: tuple[str, str, str] = ("Linux", "Ubuntu", "22.04")
) -> ManagedNode:
    return ManagedNode(node_id, ping, "3.3.1142.0", True, *platform)


def _fleet(**nodes: ManagedNode) -> FleetView:
    instances = [Ec2Instance(i, {"PatchGroup": "dev"}) for i in ("i-1", "i-2")]
    return FleetView(instances, dict(nodes), {i: NOW - timedelta(hours=2) for i in nodes})


# -- stack ----------------------------------------------------------------------------------------------------------
def test_doctor_outputs_missing_fail_with_their_names() -> None:
    check = check_outputs({"A": "1"}, ("A", "B", "C"))
    assert (check.status, check.found) == ("fail", "missing output(s) B, C")
    assert check_outputs({"A": "1"}, ("A",)).status == "ok"


def test_doctor_functions_one_ok_line_then_one_line_per_erring_function() -> None:
    activities = [
        FunctionActivity("PlanStageFunction", "pp-PlanStage", 12, 0),
        FunctionActivity("AwaitInstallFunction", "pp-AwaitInstall", 0, 0),
        FunctionActivity("VerifyStageFunction", "pp-VerifyStage", 10, 2),
        FunctionActivity("CommandResultFunction", "pp-CommandResult", 3, 3),
    ]
    found = check_functions(activities, DAY)
    assert [(c.name, c.status) for c in found] == [
        ("functions", "ok"),
        ("function VerifyStageFunction", "warn"),
        ("function CommandResultFunction", "fail"),
    ]
    assert found[0].found == "2 function(s) without errors in the last 24 h (12 invocation(s))"
    assert found[2].found == "3 error(s) in 3 invocation(s) in the last 24 h"
    assert "aws logs tail /aws/lambda/pp-CommandResult --since 24h" in found[2].fix


def test_doctor_dead_letters_say_how_many_and_the_oldest_reason() -> None:
    letters = DeadLetters("EventsDeadLetterQueue", 4, NOW, "ValidationError (bad detail)")
    check = check_dead_letters(letters)
    assert check.status == "fail"
    assert check.found == "4 message(s); oldest from 2026-11-29 12:00 UTC: ValidationError (bad detail)"
    assert check_dead_letters(DeadLetters("Q", 0)).status == "ok"


def test_doctor_schedule_disabled_or_missing_fails_and_enabled_names_the_next_fire_time() -> None:
    enabled = check_schedule(ScheduleState("pp-monthly", "ENABLED", "cron(0 20 ? * TUE#2 *)", "UTC"), NOW)
    assert enabled.status == "ok"
    assert enabled.found.endswith("next 2026-12-08 20:00 UTC")
    disabled = check_schedule(ScheduleState("pp-monthly", "DISABLED", "cron(0 20 ? * TUE#2 *)", "UTC"), NOW)
    assert disabled.status == "fail"
    assert "--state ENABLED" in disabled.fix
    assert check_schedule(ScheduleState("pp-monthly", None), NOW).status == "fail"


# -- schedule expressions ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("cron(0 20 ? * TUE#2 *)", "UTC", NOW, datetime(2026, 12, 8, 20, 0, tzinfo=UTC)),
        (
            "cron(0 20 ? * TUE#2 *)",
            "UTC",
            datetime(2026, 12, 8, 20, 0, tzinfo=UTC),
            datetime(2027, 1, 12, 20, 0, tzinfo=UTC),
        ),
        ("cron(30 3 ? * MON-FRI *)", "UTC", NOW, datetime(2026, 11, 30, 3, 30, tzinfo=UTC)),
        ("cron(0 9 1 * ? *)", "Europe/Berlin", NOW, datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2025)", "UTC", NOW, None),
        ("at(2027-01-01T00:00:00)", "UTC", NOW, datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_doctor_next_fire_time(expression: str, zone: str, after: datetime, expected: datetime | None) -> None:
    assert next_fire_time(expression, zone, after) == expected


@pytest.mark.parametrize("expression", ["cron(0 20 L * ? *)", "rate(1 day)", "every tuesday", "cron(0 20 * * *)"])
def test_doctor_next_fire_time_refuses_what_it_cannot_compute(expression: str) -> None:
    with pytest.raises(UnsupportedExpression, match=r".+"):
        next_fire_time(expression, "UTC", NOW)


# -- fleet ----------------------------------------------------------------------------------------------------------
def test_doctor_group_nodes_fail_on_unmanaged_and_offline_instances() -> None:
    check = check_group_nodes("dev", _fleet(**{"i-1": _node("i-1", "ConnectionLost")}))
    assert check.status == "fail"
    assert check.found == (
        "0/2 instances managed and Online; 1 not managed by SSM (i-2); 1 agent(s) not Online (i-1 ConnectionLost)"
    )
    healthy = check_group_nodes("dev", _fleet(**{"i-1": _node("i-1"), "i-2": _node("i-2")}))
    assert (healthy.status, healthy.found) == ("ok", "2/2 instances managed and Online")
    assert check_group_nodes("qa", _fleet()).status == "warn"


def test_doctor_group_platforms_fail_for_an_os_without_a_patchpilot_baseline() -> None:
    windows = ("Windows", "Microsoft Windows Server 2022 Datacenter", "10.0.20348")
    fleet = _fleet(**{"i-1": _node("i-1"), "i-2": _node("i-2", platform=windows)})
    check = check_group_platforms("dev", fleet, {"UBUNTU"})
    assert check.status == "fail"
    assert check.found == "UBUNTU 1, WINDOWS 1; no PatchPilot baseline for WINDOWS (i-2)"
    assert check_group_platforms("dev", fleet, {"UBUNTU", "WINDOWS"}).status == "ok"


def test_doctor_group_agents_warn_on_outdated_agents() -> None:
    old = ManagedNode("i-2", "Online", "3.1.0.0", False, "Linux", "Ubuntu", "22.04")
    check = check_group_agents("dev", _fleet(**{"i-1": _node("i-1"), "i-2": old}))
    assert (check.status, check.found) == ("warn", "SSM Agent 3.1.0.0, 3.3.1142.0; 1 not the latest (i-2)")


def test_doctor_group_scans_warn_when_older_than_26_hours_or_never() -> None:
    fleet = _fleet(**{"i-1": _node("i-1"), "i-2": _node("i-2")})
    fleet.last_operation["i-1"] = NOW - timedelta(hours=27)
    del fleet.last_operation["i-2"]
    check = check_group_scans("dev", fleet, NOW)
    assert (check.status, check.found) == ("warn", "1 older than 26 h (i-1); 1 never scanned (i-2)")
    fleet.last_operation.update({"i-1": NOW - timedelta(hours=25), "i-2": NOW})
    assert check_group_scans("dev", fleet, NOW).status == "ok"


def test_doctor_untagged_and_hybrid_nodes_are_reported() -> None:
    fleet = FleetView(
        [Ec2Instance("i-1", {"Patch Group": "dev"}), Ec2Instance("i-9", {"Name": "web"})],
        {"mi-0abc": _node("mi-0abc", "ConnectionLost")},
    )
    untagged = check_untagged(fleet, "dev")
    assert untagged.status == "warn"
    assert "(i-9)" in untagged.found
    assert "Key=PatchGroup,Value=dev" in untagged.fix
    hybrid = check_hybrid(fleet)
    assert hybrid.status == "warn"
    assert "1 not Online (mi-0abc)" in hybrid.found


# -- baselines ------------------------------------------------------------------------------------------------------
OURS = {
    "pb-00000000000000001": Baseline("pb-00000000000000001", "pp-dev-ubuntu", "UBUNTU", ("openssl.amd64",)),
    "pb-00000000000000002": Baseline("pb-00000000000000002", "pp-dev-windows", "WINDOWS"),
}


def test_doctor_group_baselines_fail_when_an_os_falls_back_to_another_baseline() -> None:
    aws_default = "arn:aws:ssm:us-east-1:aws:patchbaseline/pb-0574b43a65ea646ed"
    check = check_group_baselines("dev", OURS, {"UBUNTU": "pb-00000000000000001", "WINDOWS": aws_default})
    assert check.status == "fail"
    assert check.found == f"not PatchPilot's: WINDOWS -> {aws_default}"
    swapped = check_group_baselines("dev", OURS, {"UBUNTU": "pb-00000000000000002"})
    assert swapped.status == "fail"
    ok = check_group_baselines("dev", OURS, {"UBUNTU": "pb-00000000000000001", "WINDOWS": "pb-00000000000000002"})
    assert (ok.status, ok.found) == ("ok", "2 OS(es) -> pp-dev-ubuntu, pp-dev-windows")


def _exclusion(patch_id: str, baseline_id: str) -> ExclusionRecord:
    evidence = PatchEvidence(
        patch_id=patch_id,
        title="t",
        failing_with=1,
        failing_total=1,
        healthy_with=0,
        healthy_total=1,
        failed_installs=1,
    )
    return ExclusionRecord(
        run_id="2026-11", stage_name="staging", evidence=evidence, baseline_ids=[baseline_id], decided_at=NOW
    )


def test_doctor_exclusion_drift_names_each_patch_no_longer_rejected() -> None:
    kept = _exclusion("openssl.amd64", "pb-00000000000000001")
    drifted = _exclusion("KB5034441", "pb-00000000000000002")
    gone = _exclusion("curl.amd64", "pb-0000000000000dead")
    check = check_exclusion_drift([kept, drifted, gone], OURS)
    assert check.status == "fail"
    assert "KB5034441 (run 2026-11, staging) not rejected in pp-dev-windows" in check.found
    assert "curl.amd64 (run 2026-11, staging) not rejected in pb-0000000000000dead (gone)" in check.found
    assert "openssl" not in check.found
    assert check_exclusion_drift([kept], OURS).status == "ok"


# -- permissions ----------------------------------------------------------------------------------------------------
def test_doctor_role_denied_action_fails_and_undocumented_scoping_warns() -> None:
    need = next(n for n in REQUIRED_PERMISSIONS if n.role == "CommandResultFunctionRole")
    arn = "arn:aws:iam::123456789012:role/pp-CommandResultFunctionRole"
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:pp-rollout"
    allowed = [Simulation(a, {machine: "allowed"}) for a in need.actions]
    on_star = [Simulation(a, {"*": "implicitDeny"}) for a in need.actions]
    assert check_role(need, arn, allowed, on_star).status == "warn"
    assert check_role(need, arn, allowed, [Simulation(a, {"*": "allowed"}) for a in need.actions]).status == "ok"
    denied = check_role(need, arn, [Simulation("states:SendTaskSuccess", {machine: "explicitDeny"})], on_star)
    assert denied.status == "fail"
    assert denied.found == f"states:SendTaskSuccess on {machine}: explicitDeny"
    assert check_role(need, None, [], []).status == "fail"


def test_doctor_instance_profile_without_get_object_or_without_profile_fails() -> None:
    profile = "arn:aws:iam::123456789012:instance-profile/web"
    check = check_instance_profile("dev", "bkt", {profile: ["i-1"], "": ["i-2"]}, {profile: "implicitDeny"})
    assert check.status == "fail"
    assert check.found == (
        "on s3://bkt/runs/*: web implicitDeny (i-1); 1 instance(s) without an instance profile (i-2)"
    )
    assert check_instance_profile("dev", "bkt", {profile: ["i-1"]}, {profile: "allowed"}).status == "ok"


def test_doctor_required_permissions_name_roles_the_template_creates() -> None:
    template = SamTemplate()
    serverless = set(template.of_type("AWS::Serverless::Function")) | set(
        template.of_type("AWS::Serverless::StateMachine")
    )
    assert {need.role.removesuffix("Role") for need in REQUIRED_PERMISSIONS} <= serverless


# -- readers and output ---------------------------------------------------------------------------------------------
class _FakeSqs:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.received: list[dict[str, Any]] = []

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.messages))}}

    def receive_message(self, **params: Any) -> dict[str, Any]:
        self.received.append(params)
        return {"Messages": self.messages}


def test_doctor_dead_letter_reader_peeks_and_reads_the_reason_from_attributes_or_body() -> None:
    lambda_destination = {
        "Body": json.dumps({"responsePayload": {"errorType": "ValidationError", "errorMessage": "bad\nmore"}}),
        "Attributes": {"SentTimestamp": "1764417600000"},
    }
    eventbridge_dlq = {
        "Body": "{}",
        "Attributes": {"SentTimestamp": "1764421200000"},
        "MessageAttributes": {"ERROR_CODE": {"StringValue": "SDK_CLIENT_ERROR"}},
    }
    sqs = _FakeSqs([eventbridge_dlq, lambda_destination])
    letters = read.dead_letters(sqs, "https://q", "DLQ")
    assert letters == DeadLetters("DLQ", 2, datetime(2025, 11, 29, 12, 0, tzinfo=UTC), "ValidationError (bad)")
    assert sqs.received[0]["VisibilityTimeout"] == 0
    assert read.dead_letters(_FakeSqs([]), "https://q", "DLQ") == DeadLetters("DLQ", 0)


def test_doctor_run_ids_cover_recent_executions_and_the_last_three_cycles() -> None:
    class _Sfn:
        def list_executions(self, **_: Any) -> dict[str, Any]:
            return {"executions": [{"name": "cycle-2026-11"}, {"name": "emergency-2026-11-ab12"}]}

    assert read.recent_run_ids(_Sfn(), "arn") == ["2026-11", "emergency-2026-11-ab12"]
    assert read.cycle_run_ids(datetime(2026, 1, 5, tzinfo=UTC)) == [
        "2026-01",
        "manual-2026-01",
        "2025-12",
        "manual-2025-12",
        "2025-11",
        "manual-2025-11",
    ]


def test_doctor_output_is_one_line_per_check_and_a_go_verdict() -> None:
    found = [
        Check("stack", "outputs", "ok", "all 7", "ignored when ok"),
        Check("fleet", "untagged", "warn", "2", "tag"),
    ]
    assert [render_line(c) for c in found] == ["ok    stack: outputs: all 7", "warn  fleet: untagged: 2 -> fix: tag"]
    assert verdict(found) == "1 ok, 1 warn, 0 fail: GO"
    assert verdict([*found, Check("fleet", "x", "fail", "y")]) == "1 ok, 1 warn, 1 fail: NO-GO"


def test_doctor_without_credentials_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    missing = str(tmp_path / "none")
    for key, value in {
        "AWS_SHARED_CREDENTIALS_FILE": missing,
        "AWS_CONFIG_FILE": missing,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    result = CliRunner().invoke(app, ["doctor", "--stack-name", "patchpilot"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: cannot reach CloudFormation for stack 'patchpilot': Unable to locate credentials"
    )


class _FakeSsm:
    """ListCommandInvocations answering from a script of statuses per call."""

    def __init__(self, script: dict[str, list[dict[str, str]]]) -> None:
        self.script = script
        self.calls = 0

    def get_paginator(self, _: str) -> "_FakeSsm":
        return self

    def paginate(self, CommandId: str) -> list[dict[str, Any]]:  # noqa: N803
        self.calls += 1
        steps = self.script[CommandId]
        statuses = steps[min(self.calls - 1, len(steps) - 1)]
        return [{"CommandInvocations": [{"InstanceId": i, "Status": s} for i, s in statuses.items()]}]


def test_doctor_probe_waits_with_backoff_and_reports_what_never_ended() -> None:
    clock = [0.0]
    ssm = _FakeSsm({"c-1": [{"i-1": "InProgress"}]})
    results = wait_for_commands(ssm, ["c-1"], 60, lambda: clock[0], lambda s: clock.__setitem__(0, clock[0] + s))
    statuses, waited = results["c-1"]
    assert statuses == {"i-1": "InProgress"}
    assert waited >= 60
    assert ssm.calls < 20  # backoff: not one call per quarter second for a minute
    check = group_check("dev", [("AWS-RunShellScript", statuses)], waited)
    assert check.status == "fail"
    assert check.found.startswith("AWS-RunShellScript: 0/1 Success after ")
    assert check.found.endswith("; i-1 InProgress")


def test_doctor_probe_group_passes_when_every_invocation_succeeds() -> None:
    clock = [0.0]
    ssm = _FakeSsm({"c-1": [{"i-1": "Pending"}, {"i-1": "Success", "i-2": "Success"}]})
    results = wait_for_commands(ssm, ["c-1"], 60, lambda: clock[0], lambda s: clock.__setitem__(0, clock[0] + s))
    assert results["c-1"][0] == {"i-1": "Success", "i-2": "Success"}
    check = group_check("dev", [("AWS-RunShellScript", results["c-1"][0])], results["c-1"][1])
    assert (check.status, check.found) == ("ok", "AWS-RunShellScript: 2/2 Success after 0 s")
    assert group_check("qa", [], 0).status == "warn"


class _FakeRunsTable:
    """GetItem on the runs table: a command's row appears after `appears_after` reads (None: never)."""

    def __init__(self, appears_after: dict[str, int | None]) -> None:
        self.appears_after = appears_after
        self.reads: dict[str, int] = {}

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool) -> dict[str, Any]:  # noqa: N803
        command_id = Key["pk"]["S"].removeprefix("COMMAND#")
        assert (TableName, Key["sk"]["S"], ConsistentRead) == ("runs", "COMMAND", True)
        self.reads[command_id] = self.reads.get(command_id, 0) + 1
        after = self.appears_after[command_id]
        seen = after is not None and self.reads[command_id] > after
        return {"Item": {"foreign_command": {"BOOL": True}}} if seen else {}


def _advance(clock: list[float]) -> Any:
    return lambda seconds: clock.__setitem__(0, clock[0] + seconds)


def test_doctor_probe_observes_each_commands_recorded_status_event() -> None:
    clock = [0.0]
    table = _FakeRunsTable({"c-1": 0, "c-2": 2})
    arrivals = wait_for_records(table, "runs", ["c-1", "c-2"], 60, lambda: clock[0], _advance(clock))
    assert arrivals == {"c-1": 0.0, "c-2": 0.75}  # polls at 0, 0.25, 0.75 s
    samples = [("AWS-RunShellScript", "c-1", "i-1"), ("AWS-RunPowerShellScript", "c-2", "i-2")]
    check = event_check({"SsmCommandInvocationRule": "{}"}, samples, set(), arrivals, 60)
    assert check.status == "ok"
    assert check.found.endswith("PatchPilot recorded all 2 within 1 s")


def test_doctor_probe_fails_when_a_status_event_is_not_recorded_within_the_minute() -> None:
    clock = [0.0]
    table = _FakeRunsTable({"c-1": 0, "c-2": None})
    arrivals = wait_for_records(table, "runs", ["c-1", "c-2"], 60, lambda: clock[0], _advance(clock))
    assert arrivals["c-2"] is None
    assert 60 <= clock[0] < 66
    assert table.reads["c-1"] == 1  # a recorded command is not read again
    samples = [("AWS-RunShellScript", "c-1", "i-1"), ("AWS-RunShellScript", "c-2", "i-2")]
    check = event_check({"SsmCommandInvocationRule": "{}"}, samples, set(), arrivals, 60)
    assert check.status == "fail"
    assert "PatchPilot recorded none for 1/2 probe command(s) within 60 s (c-2)" in check.found
    assert "is ENABLED" in check.fix


def test_doctor_probe_rule_that_does_not_match_is_a_warning_and_no_rule_a_failure() -> None:
    samples = [("AWS-RunShellScript", "c-1", "i-1")]
    rule = {"SsmCommandInvocationRule": "{}"}
    assert event_check(rule, samples, {"AWS-RunShellScript"}, {}, 60).status == "warn"
    assert event_check({}, samples, set(), {}, 60).status == "fail"
    assert event_check(rule, [], set(), {}, 60).status == "warn"
