"""Render policy/patch-policy.yaml into CloudFormation resources and splice them into template.yaml between markers.

Used by tools/render_baselines.py (``make baselines``) and by the unit test that fails when the template is out of
sync with the policy. Only the text between the two marker lines is ever rewritten.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from patchpilot.models.compliance import ComplianceRules
from patchpilot.models.policy import (
    APPROVE_AFTER_DAYS_UNSUPPORTED,
    KERNEL_PACKAGES,
    ApprovalRule,
    Environment,
    MaintenanceWindowSpec,
    OperatingSystem,
    PatchPolicy,
)
from patchpilot.models.rollout import (
    DEFAULT_PRODUCTION_CANARY,
    BisectPolicy,
    CanaryPolicy,
    InstallWindow,
    StageCatalog,
    StageDefinition,
)
from patchpilot.models.snapshots import SnapshotSettings
from patchpilot_cli.exclusion_ledger import EXCLUSIONS_PATH, LedgerError, apply_ledger, load_ledger

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "policy" / "patch-policy.yaml"
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

BEGIN_MARKER = "  # BEGIN generated from policy/patch-policy.yaml by tools/render_baselines.py (do not edit by hand)"
END_MARKER = "  # END generated"

START_CYCLE_FUNCTION = "StartRolloutFunction"
DEAD_LETTER_QUEUE = "EventsDeadLetterQueue"
TAG_KEY_PARAMETER = "PatchGroupTagKey"
BASELINE_STACK_TAG_KEY = "patchpilot-stack"

_UBUNTU_COMMENT = (
    "Ubuntu: Patch Manager does not support ApproveAfterDays/ApproveUntilDate (no reliable release dates in APT "
    "repositories). Rules approve what matches PRIORITY/SECTION as soon as it is published; the delay comes from the "
    "staged rollout (later stages patch days after Patch Tuesday) and bad packages go into RejectedPatches (BLOCK)."
)


UBUNTU_DESCRIPTION_NOTE = " Ubuntu has no approval delay (not supported): the staged rollout provides it."


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or fails validation."""


@dataclass(frozen=True)
class Intrinsic:
    """A CloudFormation short-form intrinsic with a scalar argument: ``!Ref X``, ``!GetAtt X.Arn``, ``!Sub "..."``."""

    tag: str
    value: str


@dataclass(frozen=True)
class Comment:
    """A comment line emitted before a resource."""

    text: str


def ref(name: str) -> Intrinsic:
    return Intrinsic("Ref", name)


def get_att(name: str) -> Intrinsic:
    return Intrinsic("GetAtt", name)


def sub(text: str) -> Intrinsic:
    return Intrinsic("Sub", text)


def load_policy(path: Path = POLICY_PATH, ledger_path: Path | None = EXCLUSIONS_PATH) -> PatchPolicy:
    """Read and validate the policy file (a PolicyError names every invalid field and its allowed values).

    With a ledger (policy/exclusions.yaml, see exclusion_ledger.py), its exclusions join the environments'
    rejected_patches, so the rendered baselines keep them across deploys.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"cannot read {path}: {error}") from error
    try:
        policy = PatchPolicy.model_validate(raw)
    except ValueError as error:
        raise PolicyError(f"{path} is not a valid patch policy:\n{error}") from error
    if ledger_path is None:
        return policy
    try:
        return apply_ledger(policy, load_ledger(ledger_path))
    except LedgerError as error:
        raise PolicyError(str(error)) from error


def camel(name: str) -> str:
    """`AMAZON_LINUX_2` -> `AmazonLinux2`, `prod-1` -> `Prod1`."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", name) if part)


def kebab(name: str) -> str:
    """`AMAZON_LINUX_2` -> `amazon-linux-2`."""
    return name.lower().replace("_", "-")


def baseline_logical_id(environment: str, os_name: str) -> str:
    return f"PatchBaseline{camel(environment)}{camel(os_name)}"


# -- resources -----------------------------------------------------------------------------------------------------
def _filters(os_name: str, rule: ApprovalRule) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"Key": "PRODUCT", "Values": list(rule.products)}]
    if os_name == "UBUNTU":
        filters.append({"Key": "SECTION", "Values": list(rule.sections or ["*"])})
        filters.append({"Key": "PRIORITY", "Values": list(rule.priorities)})
        return filters
    filters.append({"Key": "CLASSIFICATION", "Values": list(rule.classifications)})
    if rule.severities:
        key = "MSRC_SEVERITY" if os_name == "WINDOWS" else "SEVERITY"
        filters.append({"Key": key, "Values": list(rule.severities)})
    return filters


def _patch_rule(os_name: str, rule: ApprovalRule, approve_after_days: int) -> dict[str, Any]:
    patch_rule: dict[str, Any] = {"PatchFilterGroup": {"PatchFilters": _filters(os_name, rule)}}
    if os_name not in APPROVE_AFTER_DAYS_UNSUPPORTED:
        patch_rule["ApproveAfterDays"] = approve_after_days
    patch_rule["ComplianceLevel"] = rule.compliance_level
    if os_name != "WINDOWS":  # Linux only; on Ubuntu it lifts the implicit `*-security`-pocket-only rule
        patch_rule["EnableNonSecurity"] = rule.enable_non_security
    return patch_rule


def baseline_resource(env_name: str, env: Environment, os_name: OperatingSystem, groups: list[str]) -> dict[str, Any]:
    """One AWS::SSM::PatchBaseline (environment x OS), registered for the environment's patch groups."""
    props: dict[str, Any] = {
        "Name": sub(f"${{AWS::StackName}}-{env_name}-{kebab(os_name)}"),
        "Description": f"PatchPilot {env_name} baseline for {os_name}: {env.description}"
        + (UBUNTU_DESCRIPTION_NOTE if os_name in APPROVE_AFTER_DAYS_UNSUPPORTED and os_name in env.rules else ""),
        "OperatingSystem": os_name,
    }
    rules = env.rules.get(os_name, [])
    if rules:
        props["ApprovalRules"] = {"PatchRules": [_patch_rule(os_name, rule, env.approve_after_days) for rule in rules]}
    approved = env.approved_patches.get(os_name, [])
    if approved:
        props["ApprovedPatches"] = list(approved)
        props["ApprovedPatchesComplianceLevel"] = env.approved_patches_compliance_level
        if os_name != "WINDOWS":
            props["ApprovedPatchesEnableNonSecurity"] = False
    rejected = list(env.rejected_patches.get(os_name, []))
    if env.hold_kernel:
        rejected += [name for name in KERNEL_PACKAGES[os_name] if name not in rejected]
    if rejected:
        props["RejectedPatches"] = rejected
    props["RejectedPatchesAction"] = "BLOCK"
    if groups:
        props["PatchGroups"] = list(groups)
    props["Tags"] = [
        {"Key": "application", "Value": "patchpilot"},
        {"Key": "environment", "Value": env_name},
        # ExcludePatchesFunction may update only baselines carrying this stack's tag (template.yaml, aws:ResourceTag).
        {"Key": BASELINE_STACK_TAG_KEY, "Value": sub("${AWS::StackName}")},
    ]
    return {"Type": "AWS::SSM::PatchBaseline", "Properties": props}


def window_schedule(offset_days: int, hour: int) -> tuple[str, int]:
    """Cron + ScheduleOffset for Patch Tuesday (2nd Tuesday) + `offset_days` (third/fourth Tuesday + 0..6 days)."""
    week, offset = 2 + offset_days // 7, offset_days % 7
    return f"cron(0 {hour} ? * TUE#{week} *)", offset


def install_window(spec: MaintenanceWindowSpec) -> InstallWindow:
    """The stage's install window exactly as its AWS::SSM::MaintenanceWindow is rendered."""
    schedule, offset = window_schedule(spec.patch_tuesday_offset_days, spec.start_hour_utc)
    return InstallWindow(
        schedule=schedule,
        schedule_offset_days=offset,
        duration_hours=spec.duration_hours,
        cutoff_hours=spec.cutoff_hours,
    )


def _window_resources(policy: PatchPolicy, group: str) -> dict[str, Any]:
    stage = policy.stages[policy.stage_of(group)]
    schedule, offset = window_schedule(stage.window.patch_tuesday_offset_days, stage.window.start_hour_utc)
    window_id, target_id, task_id = (
        f"MaintenanceWindow{camel(group)}{suffix}" for suffix in ("", "Target", "ScanTask")
    )
    window: dict[str, Any] = {
        "Name": sub(f"${{AWS::StackName}}-{group}"),
        "Description": (
            f"Patch group {group} (stage {policy.stage_of(group)}): Patch Tuesday + "
            f"{stage.window.patch_tuesday_offset_days} days, {stage.window.start_hour_utc:02d}:00 UTC"
        ),
        "Schedule": schedule,
    }
    if offset:
        window["ScheduleOffset"] = offset
    window |= {
        "Duration": stage.window.duration_hours,
        "Cutoff": stage.window.cutoff_hours,
        "AllowUnassociatedTargets": False,
        "Tags": [{"Key": "application", "Value": "patchpilot"}, {"Key": "patch-group", "Value": group}],
    }
    target = {
        "WindowId": ref(window_id),
        "Name": f"{group}-instances",
        "ResourceType": "INSTANCE",
        "Targets": [{"Key": sub(f"tag:${{{TAG_KEY_PARAMETER}}}"), "Values": [group]}],
    }
    task = {
        "WindowId": ref(window_id),
        "Name": f"{group}-scan",
        "TaskType": "RUN_COMMAND",
        "TaskArn": "AWS-RunPatchBaseline",
        "Priority": 1,
        "MaxConcurrency": stage.max_concurrency,
        "MaxErrors": stage.max_errors,
        "CutoffBehavior": "CANCEL_TASK",
        "Targets": [{"Key": "WindowTargetIds", "Values": [ref(target_id)]}],
        "TaskInvocationParameters": {
            "MaintenanceWindowRunCommandParameters": {
                "Comment": f"PatchPilot scan of patch group {group}",
                "Parameters": {"Operation": ["Scan"]},
            }
        },
    }
    return {
        window_id: {"Type": "AWS::SSM::MaintenanceWindow", "Properties": window},
        target_id: {"Type": "AWS::SSM::MaintenanceWindowTarget", "Properties": target},
        task_id: {"Type": "AWS::SSM::MaintenanceWindowTask", "Properties": task},
    }


def _eligibility(env: Environment) -> tuple[list[str], list[str]]:
    """Classifications and severities a production stage may receive (the union of its environment's rules)."""
    classes: set[str] = set()
    severities: set[str] = set()
    for rules in env.rules.values():
        for rule in rules:
            classes.update(rule.classifications or ())
            classes.update(rule.sections or ())
            severities.update(rule.severities or ())
            severities.update(rule.priorities or ())
    classes.discard("*")
    return sorted(classes), sorted(severities)


def _canary(configured: CanaryPolicy | Literal[False] | None, production: bool) -> CanaryPolicy | None:
    """A stage's canary: as configured, none when switched off, one per OS by default in production."""
    if configured is False:
        return None
    if configured is None:
        return DEFAULT_PRODUCTION_CANARY if production else None
    return configured


def stage_snapshots(configured: SnapshotSettings | None, production: bool) -> SnapshotSettings | None:
    """A stage's pre-patch snapshots: as the policy says, else on for production stages (off for test stages)."""
    if configured is not None:
        return configured if configured.enabled else None
    return SnapshotSettings() if production else None


def stage_bisect(
    configured: BisectPolicy | Literal[False] | None, snapshots: SnapshotSettings | None
) -> BisectPolicy | None:
    """A stage's bisection: as configured, none when switched off, else on wherever the stage takes snapshots."""
    if configured is False:
        return None
    if configured is None:
        return BisectPolicy() if snapshots is not None and snapshots.enabled else None
    return configured


def stage_catalog(policy: PatchPolicy) -> StageCatalog:
    """The stage catalog the rollout planner reads: stages in policy order, prod-environment groups = production."""
    stages = []
    for name, stage in policy.stages.items():
        group = next(group for group in policy.patch_groups if policy.stage_of(group) == name)
        environment = policy.patch_groups[group].environment
        production = environment == "prod"
        snapshots = stage_snapshots(stage.snapshots, production)
        classes, severities = _eligibility(policy.environments[environment]) if production else ([], [])
        stages.append(
            StageDefinition(
                name=name,
                patch_group=group,
                role="production" if production else "test",
                max_concurrency=stage.max_concurrency,
                max_errors=stage.max_errors,
                bake_seconds=stage.bake_seconds,
                install_minutes=stage.install_minutes,
                requires_approval=stage.requires_approval,
                health_check=stage.health_check,
                alarm_name_prefix=stage.alarm_name_prefix,
                eligible_classifications=classes,
                eligible_severities=severities,
                window=install_window(stage.window),
                change_calendar=policy.change_calendar,
                canary=_canary(stage.canary, production),
                snapshots=snapshots,
                bisect=stage_bisect(stage.bisect, snapshots),
            )
        )
    return StageCatalog(stages=stages, approvers=list(policy.approvals.approvers))


def _scheduling_resources(policy: PatchPolicy) -> dict[str, Any]:
    role = {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "scheduler.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}},
                }
            ],
        },
        "Policies": [
            {
                "PolicyName": "StartMonthlyRollout",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "StartCycle",
                            "Effect": "Allow",
                            "Action": "lambda:InvokeFunction",
                            "Resource": get_att(f"{START_CYCLE_FUNCTION}.Arn"),
                        },
                        {
                            "Sid": "DeadLetter",
                            "Effect": "Allow",
                            "Action": "sqs:SendMessage",
                            "Resource": get_att(f"{DEAD_LETTER_QUEUE}.Arn"),
                        },
                    ],
                },
            }
        ],
    }
    schedule = {
        "Name": sub("${AWS::StackName}-monthly-rollout"),
        "Description": "Start the monthly patch cycle (every stage, in order); a second start of a month is a no-op.",
        "ScheduleExpression": policy.rollout.schedule,
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Target": {
            "Arn": get_att(f"{START_CYCLE_FUNCTION}.Arn"),
            "RoleArn": get_att("MonthlyRolloutScheduleRole.Arn"),
            "Input": json.dumps({"mode": "scheduled"}, separators=(",", ":")),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
            "DeadLetterConfig": {"Arn": get_att(f"{DEAD_LETTER_QUEUE}.Arn")},
        },
    }
    association = {
        "AssociationName": sub("${AWS::StackName}-daily-patch-scan"),
        "Name": "AWS-RunPatchBaseline",
        "ScheduleExpression": policy.daily_scan.schedule,
        "Targets": [{"Key": "InstanceIds", "Values": ["*"]}],
        "Parameters": {"Operation": ["Scan"]},
        "MaxConcurrency": policy.daily_scan.max_concurrency,
        "MaxErrors": policy.daily_scan.max_errors,
    }
    catalog = {
        "Name": sub("/${AWS::StackName}/stage-catalog"),
        "Type": "String",
        "Description": "Rollout stages rendered from policy/patch-policy.yaml (read by the rollout planner).",
        "Value": stage_catalog(policy).model_dump_json(exclude_defaults=True),
    }
    return {
        "StageCatalogParameter": {"Type": "AWS::SSM::Parameter", "Properties": catalog},
        "DailyPatchScanAssociation": {"Type": "AWS::SSM::Association", "Properties": association},
        "MonthlyRolloutScheduleRole": {"Type": "AWS::IAM::Role", "Properties": role},
        "MonthlyRolloutSchedule": {"Type": "AWS::Scheduler::Schedule", "Properties": schedule},
    }


def compliance_rules(policy: PatchPolicy) -> ComplianceRules:
    """The compliance settings the compliance functions read: thresholds and each patch group's environment."""
    return ComplianceRules(
        production_min_rate_percent=policy.compliance.production_min_rate_percent,
        stale_scan_hours=policy.compliance.stale_scan_hours,
        risk_after_days=policy.compliance.risk_after_days,
        production_environments=list(policy.compliance.production_environments),
        group_environments={name: group.environment for name, group in policy.patch_groups.items()},
    )


def _compliance_resources(policy: PatchPolicy) -> dict[str, Any]:
    parameter = {
        "Name": sub("/${AWS::StackName}/compliance-rules"),
        "Type": "String",
        "Description": "Compliance thresholds and patch group environments rendered from policy/patch-policy.yaml.",
        "Value": compliance_rules(policy).model_dump_json(),
    }
    threshold = policy.compliance.production_min_rate_percent
    alarm = {
        "AlarmName": sub("${AWS::StackName}-production-compliance"),
        "AlarmDescription": (
            f"Production patch compliance (compliant nodes / all nodes of the environments "
            f"{', '.join(policy.compliance.production_environments)}) is below {threshold:g} % "
            "(policy compliance.production_min_rate_percent)."
        ),
        "Namespace": "PatchPilot",
        "MetricName": "ProductionComplianceRate",
        "Dimensions": [{"Name": "service", "Value": "patchpilot"}],
        "Statistic": "Minimum",
        "Period": 21600,
        "EvaluationPeriods": 1,
        "Threshold": threshold,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "ignore",
        "AlarmActions": [ref("ComplianceAlarmTopic")],
        "OKActions": [ref("ComplianceAlarmTopic")],
    }
    return {
        "ComplianceRulesParameter": {"Type": "AWS::SSM::Parameter", "Properties": parameter},
        "ProductionComplianceAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": alarm},
    }


def render_resources(policy: PatchPolicy) -> dict[str, Any]:
    """Every generated resource by logical id, in a stable order (comments are `Comment` values keyed `#...`)."""
    resources: dict[str, Any] = {}
    for env_name, env in policy.environments.items():
        groups = policy.groups_of(env_name)
        for os_name in policy.operating_systems:
            logical_id = baseline_logical_id(env_name, os_name)
            if os_name in APPROVE_AFTER_DAYS_UNSUPPORTED and env.rules.get(os_name):
                resources[f"#{logical_id}"] = Comment(_UBUNTU_COMMENT)
            resources[logical_id] = baseline_resource(env_name, env, os_name, groups)
    for group in policy.patch_groups:
        resources |= _window_resources(policy, group)
    return resources | _scheduling_resources(policy) | _compliance_resources(policy)


# -- YAML text -----------------------------------------------------------------------------------------------------
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./:-]*$")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _scalar(value: Any) -> str:
    if isinstance(value, Intrinsic):
        return f"!{value.tag} {_scalar(value.value)}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _flow(value: Any) -> str | None:
    """`{Key: A, Values: [b, c]}` for a small mapping of plain scalars or scalar lists; None when it does not fit."""
    if not isinstance(value, dict):
        return None
    parts = []
    for key, item in value.items():
        if isinstance(item, Intrinsic | dict):
            return None
        if isinstance(item, list):
            if not item or not all(_is_scalar(x) and not isinstance(x, Intrinsic) for x in item):
                return None
            parts.append(f"{key}: [{', '.join(_scalar(x) for x in item)}]")
        else:
            parts.append(f"{key}: {_scalar(item)}")
    text = "{" + ", ".join(parts) + "}"
    return text if len(text) <= 90 else None


def _emit(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_scalar(item):
                lines.append(f"{pad}{key}: {_scalar(item)}")
            elif isinstance(item, list) and item and all(_is_scalar(x) and not isinstance(x, Intrinsic) for x in item):
                lines.append(f"{pad}{key}: [{', '.join(_scalar(x) for x in item)}]")
            else:
                lines.append(f"{pad}{key}:")
                _emit(item, indent + 2, lines)
        return
    for item in value:
        if _is_scalar(item):
            lines.append(f"{pad}- {_scalar(item)}")
            continue
        flow = _flow(item)
        if flow is not None:
            lines.append(f"{pad}- {flow}")
            continue
        nested: list[str] = []
        _emit(item, indent + 2, nested)
        lines.append(f"{pad}- {nested[0].lstrip()}")
        lines.extend(nested[1:])


def render_block(policy: PatchPolicy) -> str:
    """The YAML text that goes between the markers (resources indented under `Resources:`), ending with a newline."""
    lines: list[str] = []
    for logical_id, resource in render_resources(policy).items():
        if isinstance(resource, Comment):
            lines.append("")
            lines.extend(f"  # {line}" for line in _wrap(resource.text, 114))
            continue
        if not lines or not lines[-1].lstrip().startswith("#"):
            lines.append("")
        lines.append(f"  {logical_id}:")
        _emit(resource, 4, lines)
    return "\n".join(lines) + "\n\n"


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return [*lines, current] if current else lines


# -- splicing ------------------------------------------------------------------------------------------------------
def _marker_span(text: str) -> tuple[int, int]:
    begin = text.find(BEGIN_MARKER + "\n")
    end = text.find(END_MARKER + "\n")
    if begin < 0 or end < 0 or end < begin or text.count(BEGIN_MARKER) != 1 or text.count(END_MARKER + "\n") != 1:
        raise PolicyError(
            f"template must contain the marker lines exactly once, in order:\n{BEGIN_MARKER}\n{END_MARKER}"
        )
    return begin + len(BEGIN_MARKER) + 1, end


def generated_section(template_text: str) -> str:
    """The text currently between the markers."""
    start, end = _marker_span(template_text)
    return template_text[start:end]


def splice(template_text: str, block: str) -> str:
    """`template_text` with only the text between the markers replaced by `block`."""
    start, end = _marker_span(template_text)
    return template_text[:start] + block + template_text[end:]


def write_template(policy: PatchPolicy, path: Path = TEMPLATE_PATH) -> bool:
    """Rewrite the generated section of the template in place (read just before writing); True if it changed."""
    block = render_block(policy)
    text = path.read_text()
    updated = splice(text, block)
    if updated == text:
        return False
    path.write_text(updated)
    return True
