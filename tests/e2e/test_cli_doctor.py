"""`patchpilot doctor` against the local runtime acting as a deployed stack, each misconfiguration injected."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.models.exclusion import ExclusionRecord, PatchEvidence
from patchpilot_cli.main import app
from patchpilot_sim.deployed_stack import AGENT_STATEMENT, attach_instance_profiles, deploy_stack
from patchpilot_sim.fleet import PatchOperation, SimulatedInstance
from patchpilot_sim.runtime import STACK_NAME, LocalRuntime
from patchpilot_sim.scenarios import build_fleet

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.xdist_group("test_cli_doctor")]
EVENTS = Path(__file__).resolve().parents[2] / "events"
GROUPS = ("dev", "staging", "prod-1", "prod-2", "prod-3")
EXCLUDED = "openssl-3.0.8-1.amzn2023"
ROLE = f"arn:aws:iam::123456789012:role/{STACK_NAME}-MonthlyRolloutScheduleRole"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime() as rt:
        rt.add_instances(build_fleet(5, 3))  # one instance per patch group
        deploy_stack(rt, STACK_NAME)
        attach_instance_profiles(rt, rt.bucket_names["ArtifactsBucket"], dict.fromkeys(GROUPS, True))
        yield rt


def _doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", "--stack-name", STACK_NAME, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, "".join(
        line for line in result.output.splitlines(keepends=True) if not line.startswith('{"')
    )


def _lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{status:4}  ")]


def _baseline_of(group: str, os_name: str) -> str:
    answer = boto3.client("ssm").get_patch_baseline_for_patch_group(PatchGroup=group, OperatingSystem=os_name)
    return str(answer["BaselineId"])


def _exclude(runtime: LocalRuntime, group: str, os_name: str) -> str:
    """An exclusion as ExcludePatches leaves it: rejected in the baseline and recorded in the ledger (this month)."""
    baseline_id = _baseline_of(group, os_name)
    ssm = boto3.client("ssm")
    rejected = ssm.get_patch_baseline(BaselineId=baseline_id).get("RejectedPatches", [])
    ssm.update_patch_baseline(
        BaselineId=baseline_id, RejectedPatches=[*rejected, EXCLUDED], RejectedPatchesAction="BLOCK"
    )
    evidence = PatchEvidence(
        patch_id=EXCLUDED,
        title="openssl security update",
        failing_with=1,
        failing_total=1,
        healthy_with=0,
        healthy_total=0,
        failed_installs=1,
        operating_systems=[os_name],
    )
    record = ExclusionRecord(
        run_id=f"{datetime.now(UTC):%Y-%m}",
        stage_name=group,
        evidence=evidence,
        baseline_ids=[baseline_id],
        failing_instances=["i-0123456789abcdef0"],
        decided_at=runtime.clock.now(),
    )
    ledger = DynamoDBExclusionLedger(runtime.resources.table_names["RunsTable"], runtime.admin.client("dynamodb"))
    assert ledger.record(record)
    return baseline_id


def _second_tuesday_8pm_after(now: datetime) -> str:
    day = now.replace(hour=20, minute=0, second=0, microsecond=0)
    while not (day.weekday() == 1 and 8 <= day.day <= 14 and day > now):
        day += timedelta(days=1)
    return f"{day:%Y-%m-%d %H:%M}"


def _instance_of(runtime: LocalRuntime, group: str) -> SimulatedInstance:
    return next(i for i in runtime.fleet.instances.values() if i.patch_group == group)


def test_doctor_reports_a_healthy_stack_then_each_injected_misconfiguration(runtime: LocalRuntime) -> None:
    # Given a freshly deployed stack, its fleet managed and scanned, and one exclusion still in its baseline
    excluded_in = _exclude(runtime, "prod-1", "AMAZON_LINUX_2023")
    # When the doctor checks it
    code, output = _doctor()
    # Then nothing fails: go
    assert code == 0, output
    assert _lines(output, "fail") == []
    assert output.strip().endswith(": GO")
    assert "ok    stack: dead letters EventsDeadLetterQueue: empty" in output
    assert "ok    baselines: exclusions: 1 ledger exclusion(s) all rejected in their baselines" in output
    assert "ok    fleet: untagged instances: every running instance has a patch group tag" in output
    assert "ok    permissions: group prod-1: instance profile s3:GetObject:" in output
    assert "ok    permissions: RolloutStateMachineRole: patch, scan and health commands: ssm:SendCommand " in output
    assert "ok    permissions: NotifierFunctionRole: read the chat webhooks: secretsmanager:GetSecretValue " in output
    assert "permissions: SlackInteractionFunctionRole: resume the rollout on a Slack approval: " in output
    schedule = next(line for line in output.splitlines() if "stack: schedule" in line)
    assert schedule.startswith("ok    ")
    assert f"ENABLED, cron(0 20 ? * TUE#2 *) UTC, next {_second_tuesday_8pm_after(datetime.now(UTC))} UTC" in schedule

    # Given the five misconfigurations the doctor exists for, and three more a deploy or a hand can cause
    iam = runtime.admin.client("iam")  # the prod-2 instance profile loses s3:GetObject on runs/
    iam.put_role_policy(
        RoleName=f"{STACK_NAME}-prod-2-instance",
        PolicyName="ManagedInstance",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [AGENT_STATEMENT]}),
    )
    offline = _instance_of(runtime, "staging")
    offline.online = False  # its agent stops answering
    (untagged,) = runtime.add_instances([SimulatedInstance("", "dev", "UBUNTU", tags={"Name": "forgotten"})])
    ssm = boto3.client("ssm")  # a deploy resets the baseline's RejectedPatches
    ssm.update_patch_baseline(BaselineId=excluded_in, RejectedPatches=[], RejectedPatchesAction="BLOCK")
    malformed = json.loads((EVENTS / "ssm/command-invocation-malformed.json").read_text())
    runtime.router.put_event(malformed)  # rejected on every attempt: dead-lettered
    runtime.settle(timeout=30)
    stale = _instance_of(runtime, "prod-3")
    scanned = datetime.now(UTC) - timedelta(hours=30)  # the doctor runs on the wall clock, as in a deployment
    stale.last_operation = PatchOperation("Scan", scanned, scanned, "RebootIfNeeded", frozenset())

    runtime.admin.client("scheduler").update_schedule(  # the monthly schedule switched off
        Name=f"{STACK_NAME}-monthly-rollout",
        ScheduleExpression="cron(0 20 ? * TUE#2 *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        State="DISABLED",
        Target={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:StartRolloutFunction", "RoleArn": ROLE},
    )
    windows_baseline = _baseline_of("prod-3", "WINDOWS")  # prod-3's Windows instances fall back to AWS's default
    ssm.deregister_patch_baseline_for_patch_group(BaselineId=windows_baseline, PatchGroup="prod-3")
    role = f"{STACK_NAME}-InstanceRegistrationFunctionRole"  # least privilege gone too far: no first scan
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=name)

    # When the doctor checks again
    code, output = _doctor()
    # Then each is reported on its own line, with a fix, and the answer is no-go
    assert code == 1, output
    assert output.strip().endswith(": NO-GO")
    failed = "\n".join(_lines(output, "fail"))
    assert f"prod-2-instance implicitDeny ({_instance_of(runtime, 'prod-2').instance_id})" in failed
    assert "fleet: group staging: managed: 0/1 instances managed and Online; " in failed
    assert f"1 agent(s) not Online ({offline.instance_id} ConnectionLost)" in failed
    assert f"{EXCLUDED} (run {datetime.now(UTC):%Y-%m}, prod-1) not rejected in {STACK_NAME}-prod-" in failed
    assert "stack: dead letters EventsDeadLetterQueue: 1 message(s); oldest from " in failed
    assert ": aws.ssm EC2 Command Invocation Status-change Notification failed on every receive (redrive" in failed
    # Command results arrive through CommandResultQueue: the function reports the bad record as a batch item failure
    # (not a function error, so Lambda's Errors metric stays 0) and after maxReceiveCount receives the queue's redrive
    # policy moves it to the dead-letter queue, which is what the doctor reports (above).
    attempts = sum(r.function == "CommandResultFunction" for r in runtime.lambdas.records)
    assert attempts == 5
    assert "function CommandResultFunction:" not in failed
    assert f"stack: schedule {STACK_NAME}-monthly-rollout: DISABLED, cron(0 20 ? * TUE#2 *) UTC, next " in failed
    assert (
        "baselines: group prod-3: baselines: not PatchPilot's: WINDOWS -> arn:aws:ssm:us-east-1:aws:patchbaseline/"
        in failed
    )
    assert "InstanceRegistrationFunctionRole: first scan of new instances: ssm:SendCommand on arn:aws:ssm:" in failed
    warned = "\n".join(_lines(output, "warn"))
    assert f"without a PatchGroup tag ({untagged.instance_id})" in warned
    assert f"fleet: group prod-3: last scan: 1 older than 26 h ({stale.instance_id})" in warned
    assert all(" -> fix: " in line for line in _lines(output, "fail") + _lines(output, "warn"))


def test_doctor_json_lists_every_check(runtime: LocalRuntime) -> None:
    code, output = _doctor("--json", "--group", "dev")
    report = json.loads(output)
    assert report["stack"] == STACK_NAME
    assert code == (0 if report["go"] else 1)
    names = {(c["section"], c["name"]) for c in report["checks"]}
    assert ("fleet", "group dev: managed") in names
    assert ("baselines", "group dev: baselines") in names
    assert not any("group staging" in name for _, name in names)
    assert {c["status"] for c in report["checks"]} <= {"ok", "warn", "fail"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--stack-name", "nope"), "error: stack 'nope' not found in the default region"),
        (("--group", "qa"), f"error: --group 'qa' is not a patch group of stack {STACK_NAME} (known: dev, staging"),
    ],
)
def test_doctor_bad_input_is_one_line_exit_2(runtime: LocalRuntime, args: tuple[str, ...], message: str) -> None:
    exit_code, output = _doctor(*args)
    assert exit_code == 2
    assert output.startswith(message)
    assert len(output.strip().splitlines()) == 1
