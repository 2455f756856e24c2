"""`patchpilot doctor`'s checks: small pure functions from what the readers fetched to one `Check` line each.

Nothing here calls AWS: `doctor_readers` fetches, these decide, `doctor` prints. Every check says what it found and,
unless it is ok, how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from patchpilot.logic.platforms import operating_system_of
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot_cli.aws_cron import UnsupportedExpression, next_fire_time

Status = Literal["ok", "warn", "fail"]
PATCH_GROUP_TAG_KEYS = ("PatchGroup", "Patch Group")  # the only keys Patch Manager honours
STALE_SCAN_AFTER = timedelta(hours=26)  # the daily scan association plus slack
SHOWN_IDS = 5


@dataclass(frozen=True)
class Check:
    """One line of the doctor's answer."""

    section: str
    name: str
    status: Status
    found: str
    fix: str = ""


def _ids(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    more = f" and {len(listed) - SHOWN_IDS} more" if len(listed) > SHOWN_IDS else ""
    return ", ".join(listed[:SHOWN_IDS]) + more


# -- stack --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionActivity:
    """A function's invocations and errors in the window (CloudWatch AWS/Lambda, no datapoints = 0)."""

    logical_id: str
    function_name: str
    invocations: int
    errors: int


@dataclass(frozen=True)
class DeadLetters:
    queue: str
    count: int
    oldest_sent: datetime | None = None
    oldest_reason: str | None = None


@dataclass(frozen=True)
class ScheduleState:
    name: str
    state: str | None  # None: the schedule does not exist
    expression: str = ""
    timezone: str | None = None


def check_outputs(present: Iterable[str], expected: Sequence[str]) -> Check:
    missing = [key for key in expected if key not in set(present)]
    if missing:
        return Check(
            "stack",
            "outputs",
            "fail",
            f"missing output(s) {', '.join(missing)}",
            "deploy the current template.yaml (sam build && sam deploy)",
        )
    return Check("stack", "outputs", "ok", f"all {len(expected)} outputs present")


def check_functions(activities: list[FunctionActivity], window: timedelta) -> list[Check]:
    """One line per function whose recent invocations erred, one ok line for all the others."""
    hours = int(window.total_seconds() // 3600)
    found = []
    for activity in activities:
        if activity.errors == 0:
            continue
        status: Status = "fail" if activity.errors >= activity.invocations else "warn"
        found.append(
            Check(
                "stack",
                f"function {activity.logical_id}",
                status,
                f"{activity.errors} error(s) in {activity.invocations} invocation(s) in the last {hours} h",
                f"read the errors: aws logs tail /aws/lambda/{activity.function_name} --since {hours}h "
                "--filter-pattern ERROR",
            )
        )
    clean = [a for a in activities if a.errors == 0]
    if clean:
        invocations = sum(a.invocations for a in clean)
        found.insert(
            0,
            Check(
                "stack",
                "functions",
                "ok",
                f"{len(clean)} function(s) without errors in the last {hours} h ({invocations} invocation(s))",
            ),
        )
    return found


def check_dead_letters(letters: DeadLetters) -> Check:
    name = f"dead letters {letters.queue}"
    if letters.count == 0:
        return Check("stack", name, "ok", "empty")
    oldest = f"; oldest from {letters.oldest_sent:%Y-%m-%d %H:%M} UTC" if letters.oldest_sent else ""
    reason = f": {letters.oldest_reason}" if letters.oldest_reason else ""
    return Check(
        "stack",
        name,
        "fail",
        f"{letters.count} message(s){oldest}{reason}",
        "each is an event PatchPilot rejected or could not deliver: fix the cause, then redrive "
        "(aws sqs start-message-move-task) or delete the messages",
    )


def check_schedule(schedule: ScheduleState, now: datetime) -> Check:
    name = f"schedule {schedule.name}"
    if schedule.state is None:
        return Check("stack", name, "fail", "not found", "deploy the current template.yaml (MonthlyRolloutSchedule)")
    try:
        upcoming = next_fire_time(schedule.expression, schedule.timezone, now)
        next_text = f"next {upcoming:%Y-%m-%d %H:%M} UTC" if upcoming else "never fires again"
    except UnsupportedExpression:
        next_text = "next fire time not computed"
    found = f"{schedule.state}, {schedule.expression} {schedule.timezone or 'UTC'}, {next_text}"
    if schedule.state != "ENABLED":
        return Check(
            "stack", name, "fail", found, f"aws scheduler update-schedule --name {schedule.name} --state ENABLED ..."
        )
    return Check("stack", name, "ok", found)


# -- fleet --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ec2Instance:
    instance_id: str
    tags: dict[str, str]
    profile_arn: str | None = None

    @property
    def patch_group(self) -> str | None:
        return next((self.tags[key] for key in PATCH_GROUP_TAG_KEYS if self.tags.get(key)), None)


@dataclass(frozen=True)
class ManagedNode:
    node_id: str
    ping_status: str
    agent_version: str
    is_latest_version: bool | None
    platform_type: str
    platform_name: str
    platform_version: str

    @property
    def operating_system(self) -> str:
        return operating_system_of(self.platform_type, self.platform_name, self.platform_version)

    @property
    def hybrid(self) -> bool:
        return self.node_id.startswith("mi-")


@dataclass(frozen=True)
class FleetView:
    """EC2 instances, SSM-managed nodes and their last patch operations (instance id -> end time)."""

    instances: list[Ec2Instance]
    nodes: dict[str, ManagedNode]
    last_operation: dict[str, datetime] = field(default_factory=dict)

    def in_group(self, group: str) -> list[Ec2Instance]:
        return [i for i in self.instances if i.patch_group == group]


def check_group_nodes(group: str, fleet: FleetView) -> Check:
    """The group's EC2 instances are SSM-managed and their agents Online."""
    name = f"group {group}: managed"
    instances = fleet.in_group(group)
    if not instances:
        return Check("fleet", name, "warn", "no running instance is tagged with this patch group", _tag_fix(group))
    unmanaged = [i.instance_id for i in instances if i.instance_id not in fleet.nodes]
    offline = {
        i.instance_id: fleet.nodes[i.instance_id].ping_status
        for i in instances
        if i.instance_id in fleet.nodes and fleet.nodes[i.instance_id].ping_status != "Online"
    }
    problems = []
    if unmanaged:
        problems.append(f"{len(unmanaged)} not managed by SSM ({_ids(unmanaged)})")
    if offline:
        problems.append(f"{len(offline)} agent(s) not Online ({_ids(f'{i} {s}' for i, s in offline.items())})")
    online = len(instances) - len(unmanaged) - len(offline)
    found = f"{online}/{len(instances)} instances managed and Online"
    if problems:
        return Check(
            "fleet",
            name,
            "fail",
            f"{found}; " + "; ".join(problems),
            "start the SSM Agent and check the instance profile has AmazonSSMManagedInstanceCore and the instance "
            "reaches the ssm/ssmmessages/ec2messages endpoints (aws ssm describe-instance-information)",
        )
    return Check("fleet", name, "ok", found)


def check_group_platforms(group: str, fleet: FleetView, supported: set[str]) -> Check:
    """Every managed node of the group runs an OS that PatchPilot has a baseline for in this group."""
    name = f"group {group}: platforms"
    nodes = [fleet.nodes[i.instance_id] for i in fleet.in_group(group) if i.instance_id in fleet.nodes]
    systems: dict[str, list[str]] = {}
    for node in nodes:
        systems.setdefault(node.operating_system, []).append(node.node_id)
    unsupported = {os_name: ids for os_name, ids in systems.items() if os_name not in supported}
    found = ", ".join(f"{os_name} {len(ids)}" for os_name, ids in sorted(systems.items())) or "no managed node"
    if unsupported:
        return Check(
            "fleet",
            name,
            "fail",
            f"{found}; no PatchPilot baseline for " + "; ".join(f"{o} ({_ids(i)})" for o, i in unsupported.items()),
            "add the OS to policy/patch-policy.yaml (make baselines, sam deploy) or move these instances to "
            "another patch group",
        )
    return Check("fleet", name, "ok", found)


def check_group_agents(group: str, fleet: FleetView) -> Check:
    name = f"group {group}: agents"
    nodes = [fleet.nodes[i.instance_id] for i in fleet.in_group(group) if i.instance_id in fleet.nodes]
    versions = sorted({node.agent_version for node in nodes})
    outdated = [node.node_id for node in nodes if node.is_latest_version is False]
    found = f"SSM Agent {', '.join(versions) or '-'}"
    if outdated:
        return Check(
            "fleet",
            name,
            "warn",
            f"{found}; {len(outdated)} not the latest ({_ids(outdated)})",
            "update the agent: aws ssm send-command --document-name AWS-UpdateSSMAgent --targets "
            f"Key=tag:PatchGroup,Values={group}",
        )
    return Check("fleet", name, "ok", found)


def check_group_scans(group: str, fleet: FleetView, now: datetime) -> Check:
    """The group's managed nodes reported a patch scan (or install) in the last 26 hours."""
    name = f"group {group}: last scan"
    nodes = [i.instance_id for i in fleet.in_group(group) if i.instance_id in fleet.nodes]
    never = [node for node in nodes if node not in fleet.last_operation]
    stale = [
        node for node in nodes if node in fleet.last_operation and now - fleet.last_operation[node] > STALE_SCAN_AFTER
    ]
    if never or stale:
        parts = ([f"{len(stale)} older than 26 h ({_ids(stale)})"] if stale else []) + (
            [f"{len(never)} never scanned ({_ids(never)})"] if never else []
        )
        return Check(
            "fleet",
            name,
            "warn",
            "; ".join(parts),
            "check the daily scan association (<stack>-daily-patch-scan) ran on them: aws ssm "
            "list-association-executions; PatchPilot plans from scan results",
        )
    newest = max((fleet.last_operation[node] for node in nodes), default=None)
    found = f"{len(nodes)} node(s) scanned within 26 h" + (f" (newest {newest:%Y-%m-%d %H:%M} UTC)" if newest else "")
    return Check("fleet", name, "ok", found)


def _tag_fix(group: str) -> str:
    return f"tag the instances: aws ec2 create-tags --resources <ids> --tags Key=PatchGroup,Value={group}"


def check_untagged(fleet: FleetView, default_group: str | None) -> Check:
    untagged = [i.instance_id for i in fleet.instances if i.patch_group is None]
    if not untagged:
        return Check("fleet", "untagged instances", "ok", "every running instance has a patch group tag")
    return Check(
        "fleet",
        "untagged instances",
        "warn",
        f"{len(untagged)} running instance(s) without a PatchGroup tag ({_ids(untagged)}): PatchPilot never patches "
        "them",
        _tag_fix(default_group or "<group>"),
    )


def check_hybrid(fleet: FleetView) -> Check:
    hybrid = [node for node in fleet.nodes.values() if node.hybrid]
    if not hybrid:
        return Check("fleet", "hybrid nodes", "ok", "none (no mi- managed nodes)")
    offline = [node.node_id for node in hybrid if node.ping_status != "Online"]
    found = f"{len(hybrid)} hybrid node(s) ({_ids(n.node_id for n in hybrid)}); patch groups come from their SSM tags"
    if offline:
        return Check(
            "fleet",
            "hybrid nodes",
            "warn",
            f"{found}; {len(offline)} not Online ({_ids(offline)})",
            "check the agent and the hybrid activation on those machines",
        )
    return Check("fleet", "hybrid nodes", "ok", found)


# -- baselines ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    baseline_id: str
    name: str
    operating_system: str
    rejected: tuple[str, ...] = ()


def check_group_baselines(group: str, ours: dict[str, Baseline], resolved: dict[str, str]) -> Check:
    """Each OS of the group resolves (GetPatchBaselineForPatchGroup) to one of the stack's baselines for that OS.

    `resolved` maps operating system -> the baseline id Patch Manager uses for the group.
    """
    name = f"group {group}: baselines"
    wrong = {
        os_name: baseline_id
        for os_name, baseline_id in resolved.items()
        if _short_id(baseline_id) not in ours or ours[_short_id(baseline_id)].operating_system != os_name
    }
    if wrong:
        return Check(
            "baselines",
            name,
            "fail",
            "not PatchPilot's: " + ", ".join(f"{o} -> {b}" for o, b in sorted(wrong.items())),
            f"register PatchPilot's baseline: aws ssm register-patch-baseline-for-patch-group --patch-group {group} "
            "--baseline-id <id> (or redeploy: the template registers them)",
        )
    names = sorted({ours[_short_id(b)].name for b in resolved.values()})
    return Check("baselines", name, "ok", f"{len(resolved)} OS(es) -> {', '.join(names)}")


def _short_id(baseline_id: str) -> str:
    """`pb-…` from an id or a baseline ARN."""
    return baseline_id.rsplit("/", 1)[-1]


def check_default_baselines(defaults: dict[str, str], ours: dict[str, Baseline]) -> Check:
    """Which baseline an instance outside every patch group gets, per OS of the fleet."""
    if not defaults:
        return Check("baselines", "default baselines", "ok", "no managed node to report on")
    shown = ", ".join(
        f"{os_name} -> {ours[_short_id(b)].name if _short_id(b) in ours else _short_id(b)}"
        for os_name, b in sorted(defaults.items())
    )
    return Check("baselines", "default baselines", "ok", f"instances without a patch group use: {shown}")


def check_exclusion_drift(exclusions: list[ExclusionRecord], ours: dict[str, Baseline]) -> Check:
    """Every exclusion in the ledger is still rejected in each baseline it was rejected in."""
    drifted: list[str] = []
    for record in exclusions:
        for baseline_id in record.baseline_ids:
            baseline = ours.get(_short_id(baseline_id))
            if baseline is None or record.patch_id not in baseline.rejected:
                where = baseline.name if baseline else f"{baseline_id} (gone)"
                drifted.append(f"{record.patch_id} (run {record.run_id}, {record.stage_name}) not rejected in {where}")
    if drifted:
        return Check(
            "baselines",
            "exclusions",
            "fail",
            f"{len(drifted)} exclusion(s) in the ledger no longer in a baseline: " + "; ".join(drifted[:SHOWN_IDS]),
            "a deploy reset RejectedPatches: re-add them (aws ssm update-patch-baseline --rejected-patches, merge "
            "with the current list) or, if they are meant to be allowed again, patchpilot exclusions remove",
        )
    if not exclusions:
        return Check("baselines", "exclusions", "ok", "no exclusion in the ledger of the recent runs")
    runs = sorted({record.run_id for record in exclusions})
    found = f"{len(exclusions)} ledger exclusion(s) all rejected in their baselines (runs {', '.join(runs)})"
    return Check("baselines", "exclusions", "ok", found)


# -- permissions --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Need:
    """A call a role of the stack makes: the actions on the resources (templates filled from the stack)."""

    role: str  # logical id of the AWS::IAM::Role in the deployed stack (SAM names a function's `<Function>Role`)
    why: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    resource_type_documented: bool = True  # False: the Service Authorization Reference lists no resource type
    # Condition keys the policy decides on that SimulatePrincipalPolicy cannot look up itself (it never reads a
    # resource's tags: they are passed as ContextEntries; IAM API reference, SimulatePrincipalPolicy ContextEntries).
    context: tuple[str, ...] = ()


INSTANCE_TAGS = "instance-tags"  # ssm:resourceTag/<key> for each tag of the instance simulated
STACK_TAG = "stack-tag"  # aws:ResourceTag/patchpilot-stack = the stack name (the tag every PatchPilot baseline has)


_DOCUMENT = "arn:{partition}:ssm:{region}::document/"
_INSTANCE = "arn:{partition}:ec2:{region}:{account}:instance/{instance}"
# The ONE table of what PatchPilot's roles must be allowed to do (IAM least privilege may narrow the policies, never
# below this). `{state_machine}` etc. are filled from the deployed stack.
REQUIRED_PERMISSIONS: tuple[Need, ...] = (
    Need(
        "RolloutStateMachineRole",
        "patch, scan and health commands",
        ("ssm:SendCommand",),
        (
            _DOCUMENT + "AWS-RunPatchBaseline",
            "arn:{partition}:ssm:{region}:{account}:document/{health_document}",  # the stack's health-check document
            _INSTANCE,
        ),
        context=(INSTANCE_TAGS,),
    ),
    Need("StartRolloutFunctionRole", "start the monthly cycle", ("states:StartExecution",), ("{state_machine}",)),
    Need(
        "CommandResultFunctionRole",
        "resume the rollout on command results",
        ("states:SendTaskSuccess", "states:SendTaskHeartbeat"),
        ("{state_machine}",),
        resource_type_documented=False,
    ),
    Need(
        "AwaitInstallFunctionRole",
        "resume the rollout when every instance already reported",
        ("states:SendTaskSuccess", "states:SendTaskHeartbeat"),
        ("{state_machine}",),
        resource_type_documented=False,
    ),
    Need(
        "RequestApprovalFunctionRole",
        "redeliver an earlier approval decision",
        ("states:SendTaskSuccess", "states:SendTaskFailure"),
        ("{state_machine}",),
        resource_type_documented=False,
    ),
    Need(
        "DecideApprovalFunctionRole",
        "resume the rollout on an approval",
        ("states:SendTaskSuccess", "states:SendTaskFailure"),
        ("{state_machine}",),
        resource_type_documented=False,
    ),
    Need(
        "ExcludePatchesFunctionRole",
        "exclude failing patches",
        ("ssm:UpdatePatchBaseline",),
        ("arn:{partition}:ssm:{region}:{account}:patchbaseline/{baseline}",),
        context=(STACK_TAG,),
    ),
    Need(
        "InstanceRegistrationFunctionRole",
        "first scan of new instances",
        ("ssm:SendCommand",),
        (_DOCUMENT + "AWS-RunPatchBaseline", _INSTANCE),
        context=(INSTANCE_TAGS,),
    ),
    Need("NotifierFunctionRole", "read the chat webhooks", ("secretsmanager:GetSecretValue",), ("{chat_secret}",)),
    Need(
        "SlackInteractionFunctionRole",
        "verify Slack clicks",
        ("secretsmanager:GetSecretValue",),
        ("{chat_secret}",),
    ),
    Need(
        "SlackInteractionFunctionRole",
        "resume the rollout on a Slack approval",
        ("states:SendTaskSuccess", "states:SendTaskFailure"),
        ("{state_machine}",),
        resource_type_documented=False,
    ),
)


@dataclass(frozen=True)
class Simulation:
    """SimulatePrincipalPolicy's answer for one action: decision per resource, plus context keys it lacked."""

    action: str
    decisions: dict[str, str]
    missing_context: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return bool(self.decisions) and all(d == "allowed" for d in self.decisions.values())


def check_role(need: Need, role_arn: str | None, scoped: list[Simulation], unscoped: list[Simulation]) -> Check:
    """The role may make the calls; for actions without a documented resource type also with Resource "*".

    `scoped` simulates the concrete resources; `unscoped` the same actions on "*" (only used for
    `resource_type_documented=False`).
    """
    name = f"{need.role}: {need.why}"
    if role_arn is None:
        return Check("permissions", name, "fail", "role not found in the stack", "deploy the current template.yaml")
    denied = [f"{s.action} on {r}: {d}" for s in scoped for r, d in s.decisions.items() if d != "allowed"]
    if denied or not scoped:
        return Check(
            "permissions",
            name,
            "fail",
            "; ".join(denied[:SHOWN_IDS]) or "nothing simulated",
            f"allow these in the role's policy (template.yaml) and redeploy; role {role_arn}",
        )
    actions = ", ".join(need.actions)
    if not need.resource_type_documented and not all(s.allowed for s in unscoped):
        return Check(
            "permissions",
            name,
            "warn",
            f"{actions} allowed only on the state machine ARN; the Service Authorization Reference lists no resource "
            'type for them (AWS evaluates Resource "*")',
            'confirm on a first rollout (a stage waits on command results) or allow them on Resource "*"',
        )
    return Check("permissions", name, "ok", f"{actions} allowed")


def check_instance_profile(group: str, bucket: str, profiles: dict[str, list[str]], decisions: dict[str, str]) -> Check:
    """Each instance profile used in the group lets the agent read `runs/` in the artifacts bucket.

    `profiles` maps profile ARN (or "" for none) -> instance ids; `decisions` maps profile ARN -> s3:GetObject decision.
    """
    name = f"group {group}: instance profile s3:GetObject"
    if not profiles:
        return Check("permissions", name, "warn", "no instance in the group to check")
    without = profiles.get("", [])
    denied = {arn: d for arn, d in decisions.items() if d != "allowed"}
    problems = [f"{arn.rsplit('/', 1)[-1]} {d} ({_ids(profiles[arn])})" for arn, d in sorted(denied.items())]
    if without:
        problems.append(f"{len(without)} instance(s) without an instance profile ({_ids(without)})")
    if problems:
        return Check(
            "permissions",
            name,
            "fail",
            f"on s3://{bucket}/runs/*: " + "; ".join(problems),
            f"allow s3:GetObject on arn:aws:s3:::{bucket}/runs/* in the instance role(s): the agent reads the "
            "install lists there (InstallOverrideList)",
        )
    names = ", ".join(sorted(arn.rsplit("/", 1)[-1] for arn in decisions))
    return Check("permissions", name, "ok", f"{names} may read s3://{bucket}/runs/*")
