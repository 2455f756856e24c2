"""`patchpilot plan`: what a cycle would patch, stage by stage, and when, before it starts. Read-only.

The stack's own stage catalog (StageCatalogParameter) and monthly schedule (MonthlyRolloutSchedule), the fleet and
its last scans through the Lambda functions' SSM adapters; the decisions in `patchpilot.logic.plan_preview`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import boto3
import typer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from patchpilot.integrations.ssm_calendar import SsmChangeCalendar
from patchpilot.integrations.ssm_compliance import SsmFleetComplianceSource
from patchpilot.integrations.ssm_directory import SsmCommandDirectory
from patchpilot.logic.plan_preview import PlanOptions, PlanPorts, next_cycle, preview_plan, scheduled_start
from patchpilot.models.compliance import ComplianceReadFailed
from patchpilot.models.exceptions import InvalidRolloutRequest, UnsupportedSchedule
from patchpilot.models.plan_preview import PlanPreview
from patchpilot.models.rollout import RolloutRequest, StageCatalog
from patchpilot.reporting.plan_text import render_text
from patchpilot_cli.errors import InputError
from patchpilot_cli.stack import STACK_ENV, StackOutputs, default_stack_name, resolve_outputs

CATALOG_RESOURCE = "StageCatalogParameter"
SCHEDULE_RESOURCE = "MonthlyRolloutSchedule"
# Reads of a large fleet slow down under throttling instead of failing (botocore "Retries" guide: adaptive mode).
READ_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})


class StackUnreadable(Exception):
    """The stack's rollout resources cannot be read as PatchPilot wrote them (exit 1, not bad input)."""


@dataclass(frozen=True)
class DeployedRollout:
    """What the stack says about its rollout: the stage catalog and the monthly schedule."""

    catalog: StageCatalog
    schedule: str
    timezone: str
    schedule_state: str


def _physical_ids(outputs: StackOutputs) -> dict[str, str]:
    found: dict[str, str] = {}
    pages = (
        outputs.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=outputs.stack_name)
    )
    for page in pages:
        for item in page["StackResourceSummaries"]:
            found[item["LogicalResourceId"]] = item.get("PhysicalResourceId", "")
    return found


def read_rollout(outputs: StackOutputs) -> DeployedRollout:
    """The deployed stage catalog and monthly schedule; InputError when the stack has neither."""
    resources = _physical_ids(outputs)
    missing = [name for name in (CATALOG_RESOURCE, SCHEDULE_RESOURCE) if not resources.get(name)]
    if missing:
        raise InputError(
            f"stack {outputs.stack_name!r} has no {', '.join(missing)}: is it a PatchPilot stack (template.yaml)?"
        )
    raw = outputs.client("ssm").get_parameter(Name=resources[CATALOG_RESOURCE])["Parameter"]["Value"]
    schedule = outputs.client("scheduler").get_schedule(Name=resources[SCHEDULE_RESOURCE])
    try:
        catalog = StageCatalog.model_validate_json(raw)
    except ValidationError as error:
        raise UnsupportedSchedule(
            f"the stack's stage catalog {resources[CATALOG_RESOURCE]} is not valid: {error}"
        ) from None
    return DeployedRollout(
        catalog=catalog,
        schedule=schedule["ScheduleExpression"],
        timezone=schedule.get("ScheduleExpressionTimezone") or "UTC",
        schedule_state=schedule.get("State", "ENABLED"),
    )


def plan_ports(region: str | None) -> PlanPorts:
    """The SSM/EC2 adapters the Lambda functions use, on clients with adaptive (throttling-aware) retries."""
    ssm = boto3.client("ssm", region_name=region, config=READ_CONFIG)
    ec2 = boto3.client("ec2", region_name=region, config=READ_CONFIG)
    return PlanPorts(SsmCommandDirectory(ssm), SsmFleetComplianceSource(ssm, ec2), SsmChangeCalendar(ssm))


def cycle_moment(rollout: DeployedRollout, cycle: str | None, now: datetime) -> tuple[str, datetime, list[str]]:
    """The cycle, when it would start, and notes: its scheduled start, or now if that has passed (a manual start)."""
    name = cycle or next_cycle(rollout.schedule, now, rollout.timezone)
    scheduled = scheduled_start(rollout.schedule, name, rollout.timezone)  # validates YYYY-MM
    if name < f"{now.year:04d}-{now.month:02d}":
        raise InputError(f"cycle {name} is over (this month is {now:%Y-%m}); plan this month's or a later one")
    notes = []
    if rollout.schedule_state != "ENABLED":
        notes.append(f"the monthly schedule is {rollout.schedule_state}: the cycle starts only with `patchpilot start`")
    if scheduled < now:
        notes.append(
            f"the schedule started cycle {name} at {scheduled:%Y-%m-%d %H:%M} UTC already: planned as if started now "
            "(`patchpilot start`)"
        )
        return name, now, notes
    return name, scheduled, notes


def build_request(cycle: str, stages: list[str] | None) -> RolloutRequest:
    """The run as the schedule would start it; InputError on a malformed stage name."""
    try:
        return RolloutRequest(run_id=cycle, mode="scheduled", stages=stages)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InputError(f"invalid --stages: {problems}") from None


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def make_preview(
    outputs: StackOutputs, cycle: str | None, stages: list[str] | None, options: PlanOptions, now: datetime
) -> PlanPreview:
    """Read the stack and its fleet and compute the preview (InputError on bad input)."""
    rollout = read_rollout(outputs)
    try:
        name, starts, notes = cycle_moment(rollout, cycle, now)
        request = build_request(name, stages)
        preview = preview_plan(rollout.catalog, request, starts, plan_ports(outputs.region), options, now)
    except InvalidRolloutRequest as error:
        raise InputError(str(error)) from None
    return preview.model_copy(update={"assumptions": [*notes, *preview.assumptions]})


def plan(
    cycle: Annotated[str | None, typer.Option(help="YYYY-MM (default: the next cycle the schedule starts)")] = None,
    stages: Annotated[str | None, typer.Option(help="comma-separated stages, e.g. dev,staging (default all)")] = None,
    approval_wait: Annotated[
        float, typer.Option(help="hours an approval gate is assumed to wait for its answer")
    ] = PlanOptions().approval_wait.total_seconds() / 3600,
    all_patches: Annotated[bool, typer.Option("--all-patches", help="list every missing patch")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
    stack_name: Annotated[
        str | None, typer.Option("--stack-name", help=f"the deployed stack (default: ${STACK_ENV} or 'patchpilot')")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region of the stack")] = None,
) -> None:
    """Preview a cycle before it starts: per stage its instances per OS, the patches to install, when it runs."""
    if not 0 <= approval_wait <= 7 * 24:
        raise _fail("--approval-wait must be from 0 to 168 hours")
    wanted = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    try:
        outputs = resolve_outputs(stack_name or default_stack_name(), region)
        preview = make_preview(
            outputs, cycle, wanted, PlanOptions(approval_wait=timedelta(hours=approval_wait)), datetime.now(UTC)
        )
    except InputError as error:
        raise _fail(str(error)) from None
    except (ComplianceReadFailed, ClientError, BotoCoreError, UnsupportedSchedule, StackUnreadable) as error:
        raise _fail(f"cannot plan: {error}", code=1) from None
    if json_output:
        typer.echo(json.dumps(preview_json(preview), indent=2))
        return
    for line in render_text(preview, all_patches):
        typer.echo(line)


def preview_json(preview: PlanPreview) -> dict[str, Any]:
    """The preview as a JSON document (timestamps ISO 8601)."""
    document: dict[str, Any] = preview.model_dump(mode="json")
    return document
