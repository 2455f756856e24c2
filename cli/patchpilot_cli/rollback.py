"""`patchpilot rollback`: restore an instance's root volume from its pre-patch snapshot, or print a run's plan.

Bad input changes nothing and exits 2: a run no execution is named after, an instance the run never snapshotted, or a
stage of the run that is still running (its install or verification could still touch the instance).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer

from patchpilot.integrations.dynamodb_snapshots import DynamoDBSnapshotLedger
from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots
from patchpilot.integrations.ports import RunExecutions, SnapshotLedger, VolumeSnapshots
from patchpilot.integrations.sfn_runs import StepFunctionsRunExecutions
from patchpilot.logic.rollback import check_rollback, run_rollback_plan, start_rollback
from patchpilot.models.exceptions import RollbackRefused
from patchpilot_cli.errors import InputError
from patchpilot_cli.stack import StackOutputs, default_stack_name, resolve_outputs

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class RollbackPorts:
    """The stack's snapshot ledger, EC2 and the run's executions, through the functions' own adapters."""

    ledger: SnapshotLedger
    volumes: VolumeSnapshots
    executions: RunExecutions


def connect(outputs: StackOutputs) -> RollbackPorts:
    return RollbackPorts(
        ledger=DynamoDBSnapshotLedger(outputs.runs_table, outputs.client("dynamodb")),
        volumes=Ec2VolumeSnapshots(outputs.client("ec2")),
        executions=StepFunctionsRunExecutions(outputs.client("stepfunctions"), outputs.state_machine_arn),
    )


def plan_lines(ports: RollbackPorts, run_id: str) -> list[str]:
    """The run's rollback plan as text: which instances have which snapshots, the commands that restore them."""
    rows = run_rollback_plan(run_id, ports.executions, ports.ledger, ports.volumes)
    if not rows:
        return [f"run {run_id}: no pre-patch snapshot was taken (no stage with snapshots has installed)"]
    lines = [f"run {run_id}: rollback plan for {len(rows)} instance(s) with pre-patch snapshots"]
    for row in rows:
        data = f", data {', '.join(row.data_snapshot_ids)}" if row.data_snapshot_ids else ""
        done = f"; rolled back: {row.last_rollback}" if row.last_rollback else ""
        lines.append(
            f"  {row.stage_name} {row.instance_id}: root {row.root_snapshot_id}{data}, taken {row.taken_at}{done}"
        )
        lines.append(f"    {row.command}")
    return lines


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _ports(stack_name: str | None, region: str | None) -> RollbackPorts:
    try:
        return connect(resolve_outputs(stack_name or default_stack_name(), region))
    except InputError as error:
        _fail(str(error))


def rollback(
    run: Annotated[str, typer.Option("--run", help="the run id, e.g. 2026-12 (execution names show it)")],
    instance: Annotated[str | None, typer.Option("--instance", help="the instance to restore, e.g. i-0abc...")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be done; change nothing")] = False,
    plan: Annotated[bool, typer.Option("--plan", help="print the run's rollback plan; change nothing")] = False,
    stack_name: Annotated[str | None, typer.Option(help="the stack (default: $PATCHPILOT_STACK or patchpilot)")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the configured one)")] = None,
) -> None:
    """Restore an instance's root volume from its pre-patch snapshot of a run (EC2 CreateReplaceRootVolumeTask)."""
    if plan == (instance is not None):
        _fail("give --instance i-... to roll one instance back, or --plan to print the run's rollback plan")
    if instance is not None and not INSTANCE_ID.match(instance):
        _fail(f"invalid --instance {instance!r} (expected an EC2 instance id, e.g. i-0123456789abcdef0)")
    ports = _ports(stack_name, region)
    try:
        if plan:
            for line in plan_lines(ports, run):
                typer.echo(line)
            return
        chosen = check_rollback(run, str(instance), ports.executions, ports.ledger)
    except RollbackRefused as refused:
        _fail(str(refused))
    root = chosen.root_snapshot
    what = (
        f"restore the root volume of {chosen.instance_id} from {root.snapshot_id if root else '-'} (taken "
        f"{chosen.taken_at:%Y-%m-%d %H:%M} UTC before stage {chosen.stage_name} of run {run} installed); the "
        "instance restarts; the replaced volume is kept"
    )
    if dry_run:
        typer.echo(f"dry run: would {what} (EC2 CreateReplaceRootVolumeTask); nothing changed")
        return
    who = os.environ.get("USER") or "patchpilot-cli"
    record = start_rollback(chosen, ports.volumes, ports.ledger, who, datetime.now(UTC))
    typer.echo(f"rollback started: {what}")
    typer.echo(
        f"  task {record.task_id} ({record.task_state}), recorded in run {run} (patchpilot rollback --run {run} --plan)"
    )
    typer.echo(
        f"  follow it: aws ec2 describe-replace-root-volume-tasks --replace-root-volume-task-ids {record.task_id}"
    )
