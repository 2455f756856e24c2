"""`patchpilot doctor`: is a deployed stack ready for its first Patch Tuesday? One line per check, exit 0/1/2.

Read-only by default (see `doctor_readers`). The sections: the stack (outputs, functions' recent errors, dead-letter
queues, the monthly schedule), the fleet per patch group (EC2 vs SSM-managed nodes, agents, platforms, last scans,
untagged instances, hybrid nodes), the baselines (each group resolves to PatchPilot's, defaults, ledger exclusions
still rejected), and permissions (IAM policy simulation of the stack's roles and the instance profiles). `--probe`
(doctor_probe) additionally sends one harmless command per group.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError

from patchpilot_cli import doctor_checks as checks
from patchpilot_cli import doctor_readers as read
from patchpilot_cli.doctor_checks import (
    PATCH_GROUP_TAG_KEYS,
    REQUIRED_PERMISSIONS,
    Baseline,
    Check,
    Ec2Instance,
    FleetView,
    Need,
)
from patchpilot_cli.errors import InputError
from patchpilot_cli.stack import REQUIRED_OUTPUTS, STACK_ENV, StackOutputs, default_stack_name, resolve_outputs

EXPECTED_OUTPUTS = (*REQUIRED_OUTPUTS, "ArtifactsBucketName", "EventsDeadLetterQueueUrl")
ERROR_WINDOW = timedelta(hours=24)
PROBE_KEY = "runs/patchpilot-doctor/probe.txt"
SAMPLE_INSTANCE = "i-0123456789abcdef0"


@dataclass
class Stack:
    """What the sections share: the stack's outputs and resources, and what was read once."""

    outputs: StackOutputs
    resources: dict[str, read.StackResource]
    now: datetime
    group: str | None = None
    fleet: FleetView | None = None
    ours: dict[str, Baseline] = field(default_factory=dict)
    groups_of: dict[str, list[str]] = field(default_factory=dict)  # baseline id -> registered patch groups
    groups: list[str] = field(default_factory=list)

    @property
    def arn_parts(self) -> tuple[str, str, str]:
        """(partition, region, account) from the state machine ARN."""
        parts = self.outputs.state_machine_arn.split(":")
        return parts[1], parts[3], parts[4]

    def of_type(self, resource_type: str) -> list[read.StackResource]:
        return [r for r in self.resources.values() if r.resource_type == resource_type]

    def systems_of(self, group: str) -> set[str]:
        """The operating systems PatchPilot has a baseline for in the group."""
        return {b.operating_system for bid, b in self.ours.items() if group in self.groups_of.get(bid, [])}


def load(outputs: StackOutputs, now: datetime, group: str | None) -> Stack:
    """Read what every section needs once: the stack's resources, its baselines, the fleet, the patch groups."""
    stack = Stack(outputs, read.stack_resources(outputs.client("cloudformation"), outputs.stack_name), now, group)
    ssm = outputs.client("ssm")
    baseline_ids = [r.physical_id for r in stack.of_type("AWS::SSM::PatchBaseline")]
    stack.ours, stack.groups_of = read.baselines(ssm, baseline_ids)
    catalog = stack.resources.get("StageCatalogParameter")
    groups = read.stage_groups(ssm, catalog.physical_id) if catalog else []
    groups += sorted({g for registered in stack.groups_of.values() for g in registered} - set(groups))
    if group is not None and group not in groups:
        raise InputError(
            f"--group {group!r} is not a patch group of stack {outputs.stack_name} (known: {', '.join(groups)})"
        )
    stack.groups = [group] if group else groups
    stack.fleet = read.fleet_view(outputs.client("ec2"), ssm)
    return stack


# -- sections -------------------------------------------------------------------------------------------------------
def stack_checks(stack: Stack) -> list[Check]:
    found = [checks.check_outputs(stack.outputs.values, EXPECTED_OUTPUTS)]
    cloudwatch = stack.outputs.client("cloudwatch")
    functions = sorted(stack.of_type("AWS::Lambda::Function"), key=lambda r: r.logical_id)
    activities = [
        read.function_activity(cloudwatch, f.logical_id, f.physical_id, stack.now, ERROR_WINDOW) for f in functions
    ]
    found += checks.check_functions(activities, ERROR_WINDOW)
    sqs = stack.outputs.client("sqs")
    for queue in sorted(stack.of_type("AWS::SQS::Queue"), key=lambda r: r.logical_id):
        if "DeadLetter" in queue.logical_id:
            found.append(checks.check_dead_letters(read.dead_letters(sqs, queue.physical_id, queue.logical_id)))
    scheduler = stack.outputs.client("scheduler")
    for schedule in stack.of_type("AWS::Scheduler::Schedule"):
        found.append(checks.check_schedule(read.schedule_state(scheduler, schedule.physical_id), stack.now))
    return found


def fleet_checks(stack: Stack) -> list[Check]:
    fleet = stack.fleet or FleetView([], {})
    found: list[Check] = []
    for group in stack.groups:
        found += [
            checks.check_group_nodes(group, fleet),
            checks.check_group_platforms(group, fleet, stack.systems_of(group)),
            checks.check_group_agents(group, fleet),
            checks.check_group_scans(group, fleet, stack.now),
        ]
    if stack.group is None:
        found += [checks.check_untagged(fleet, stack.groups[0] if stack.groups else None), checks.check_hybrid(fleet)]
    return found


def _fleet_systems(fleet: FleetView, group: str | None = None) -> set[str]:
    ids = {i.instance_id for i in (fleet.in_group(group) if group else fleet.instances)}
    ids |= set() if group else set(fleet.nodes)
    return {fleet.nodes[i].operating_system for i in ids if i in fleet.nodes} - {"UNKNOWN"}


def baseline_checks(stack: Stack) -> list[Check]:
    ssm = stack.outputs.client("ssm")
    fleet = stack.fleet or FleetView([], {})
    found = []
    for group in stack.groups:
        # Every OS the stack has baselines for (not only those registered now: a lost registration is the finding).
        systems = {b.operating_system for b in stack.ours.values()} | _fleet_systems(fleet, group)
        found.append(checks.check_group_baselines(group, stack.ours, read.resolved_baselines(ssm, group, systems)))
    if stack.group is None:
        found.append(checks.check_default_baselines(read.default_baselines(ssm, _fleet_systems(fleet)), stack.ours))
    recent = read.recent_run_ids(stack.outputs.client("stepfunctions"), stack.outputs.state_machine_arn)
    runs = list(dict.fromkeys([*recent, *read.cycle_run_ids(stack.now)]))
    exclusions = read.ledger_exclusions(stack.outputs.client("dynamodb"), stack.outputs.runs_table, runs)
    found.append(checks.check_exclusion_drift(exclusions, stack.ours))
    return found


def _sample_instance(stack: Stack) -> Ec2Instance:
    """A managed instance of the fleet, or a hypothetical one in a patch group when the fleet has none."""
    fleet = stack.fleet or FleetView([], {})
    sample = Ec2Instance(SAMPLE_INSTANCE, {key: "sample" for key in PATCH_GROUP_TAG_KEYS})
    return next((i for i in fleet.instances if i.instance_id in fleet.nodes and i.patch_group), sample)


def _context_of(need: Need, stack: Stack) -> dict[str, list[str]]:
    """The ContextEntries the simulation needs: the resource tags IAM would read from the resources themselves."""
    context: dict[str, list[str]] = {}
    if checks.INSTANCE_TAGS in need.context:
        context |= {f"ssm:resourceTag/{key}": [value] for key, value in _sample_instance(stack).tags.items()}
    if checks.STACK_TAG in need.context:
        context["aws:ResourceTag/patchpilot-stack"] = [stack.outputs.stack_name]
    return context


def _resources_of(need: Need, stack: Stack) -> list[str]:
    partition, region, account = stack.arn_parts
    instance = _sample_instance(stack).instance_id
    chat_secret = stack.resources.get("ChatSecret")
    health_document = stack.resources.get("HealthCheckDocument")
    filled = []
    for template in need.resources:
        for baseline in sorted(stack.ours) if "{baseline}" in template else [""]:
            filled.append(
                template.format(
                    partition=partition,
                    region=region,
                    account=account,
                    instance=instance,
                    baseline=baseline,
                    state_machine=stack.outputs.state_machine_arn,
                    chat_secret=chat_secret.physical_id if chat_secret else "",
                    health_document=health_document.physical_id if health_document else "",
                )
            )
    return filled


def permission_checks(stack: Stack) -> list[Check]:
    iam = stack.outputs.client("iam")
    partition, _, account = stack.arn_parts
    found = []
    for need in REQUIRED_PERMISSIONS:
        role = stack.resources.get(need.role)
        if role is None:
            found.append(checks.check_role(need, None, [], []))
            continue
        role_arn = f"arn:{partition}:iam::{account}:role/{role.physical_id}"
        scoped = read.simulate(iam, role_arn, list(need.actions), _resources_of(need, stack), _context_of(need, stack))
        unscoped = [] if need.resource_type_documented else read.simulate(iam, role_arn, list(need.actions), ["*"])
        found.append(checks.check_role(need, role_arn, scoped, unscoped))
    bucket = stack.outputs.values.get("ArtifactsBucketName")
    if bucket:
        found += [_profile_check(stack, iam, group, bucket) for group in stack.groups]
    return found


def _profile_check(stack: Stack, iam: object, group: str, bucket: str) -> Check:
    fleet = stack.fleet or FleetView([], {})
    profiles: dict[str, list[str]] = {}
    for instance in fleet.in_group(group):
        profiles.setdefault(instance.profile_arn or "", []).append(instance.instance_id)
    partition = stack.arn_parts[0]
    decisions = {}
    for profile in (p for p in profiles if p):
        role = read.instance_profile_role(iam, profile)
        if role is None:
            decisions[profile] = "no role"
            continue
        objects = [f"arn:{partition}:s3:::{bucket}/{PROBE_KEY}"]
        decisions[profile] = read.simulate(iam, role, ["s3:GetObject"], objects)[0].decisions.get(objects[0], "?")
    return checks.check_instance_profile(group, bucket, profiles, decisions)


SECTIONS: tuple[tuple[str, Callable[[Stack], list[Check]]], ...] = (
    ("stack", stack_checks),
    ("fleet", fleet_checks),
    ("baselines", baseline_checks),
    ("permissions", permission_checks),
)


def _unreadable(section: str, error: Exception) -> Check:
    message = (
        error.response.get("Error", {}).get("Message", str(error)) if isinstance(error, ClientError) else str(error)
    )
    return Check(
        section,
        "read",
        "fail",
        f"could not read: {message}",
        "run the doctor with read access to the stack's resources (ReadOnlyAccess + iam:SimulatePrincipalPolicy)",
    )


def run_sections(stack: Stack) -> list[Check]:
    """Every check of the doctor (no probe), in section order; a section that cannot be read is one fail line."""
    found: list[Check] = []
    for section, run in SECTIONS:
        try:
            found.extend(run(stack))
        except (ClientError, BotoCoreError) as error:
            found.append(_unreadable(section, error))
    return found


def diagnose(outputs: StackOutputs, now: datetime, group: str | None = None) -> tuple[Stack | None, list[Check]]:
    """Load the stack and run every section; (None, one fail line) when the stack's resources cannot be read."""
    try:
        stack = load(outputs, now, group)
    except (ClientError, BotoCoreError) as error:
        return None, [_unreadable("stack", error)]
    return stack, run_sections(stack)


# -- output ---------------------------------------------------------------------------------------------------------
def render_line(check: Check) -> str:
    fix = f" -> fix: {check.fix}" if check.fix and check.status != "ok" else ""
    return f"{check.status:4}  {check.section}: {check.name}: {check.found}{fix}"


def verdict(found: list[Check]) -> str:
    counts = {status: sum(c.status == status for c in found) for status in ("ok", "warn", "fail")}
    go = "GO" if counts["fail"] == 0 else "NO-GO"
    return f"{counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail: {go}"


def as_json(outputs: StackOutputs, now: datetime, found: list[Check]) -> str:
    return json.dumps(
        {
            "stack": outputs.stack_name,
            "region": outputs.region,
            "checked_at": now.isoformat(timespec="seconds"),
            "go": not any(c.status == "fail" for c in found),
            "checks": [asdict(c) for c in found],
        },
        indent=2,
    )


def _probe(stack: Stack, timeout: float, say: Callable[[str], None], json_output: bool) -> list[Check]:
    """Run the probe, print its lines as they come; it says what it does first (on stderr with --json)."""
    from patchpilot_cli.doctor_probe import run_probe

    try:
        found = run_probe(stack, timeout, say=_to_stderr if json_output else say)
    except (ClientError, BotoCoreError) as error:
        found = [_unreadable("probe", error)]
    for check in found:
        say(render_line(check))
    return found


def _to_stderr(line: str) -> None:
    typer.echo(line, err=True)


def _quiet(_: str) -> None:
    """--json prints only the JSON document."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def doctor(
    stack_name: Annotated[
        str | None,
        typer.Option("--stack-name", help=f"the deployed stack (default: ${STACK_ENV} or 'patchpilot')"),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region of the stack")] = None,
    group: Annotated[str | None, typer.Option("--group", help="check only this patch group")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
    probe: Annotated[
        bool, typer.Option("--probe", help="also send one harmless command per group (says what it does first)")
    ] = False,
    probe_timeout: Annotated[float, typer.Option(help="seconds to wait for the probe commands")] = 60.0,
) -> None:
    """Check a deployed stack before its first Patch Tuesday: one line per check, exit 0 = go, 1 = no-go."""
    now = datetime.now(UTC)
    try:
        outputs = resolve_outputs(stack_name or default_stack_name(), region)
        stack, found = diagnose(outputs, now, group)
    except InputError as error:
        raise _fail(str(error)) from None
    say: Callable[[str], None] = _quiet if json_output else typer.echo
    say(f"stack {outputs.stack_name} ({outputs.region or 'default region'}), {now:%Y-%m-%d %H:%M} UTC")
    for check in found:
        say(render_line(check))
    if probe and stack is not None:
        found += _probe(stack, probe_timeout, say, json_output)
    if json_output:
        typer.echo(as_json(outputs, now, found))
    else:
        typer.echo(verdict(found))
    raise typer.Exit(1 if any(c.status == "fail" for c in found) else 0)
