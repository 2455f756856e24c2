"""`patchpilot rollback`: restore an instance's root volume from its pre-patch snapshot, or print a run's plan.

Bad input changes nothing and exits 2: a run no execution is named after, an instance the run never snapshotted, or a
stage of the run that is still running (its install or verification could still touch the instance).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from patchpilot.integrations.dynamodb_snapshots import DynamoDBSnapshotLedger
from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots
from patchpilot.integrations.ports import SnapshotLedger, VolumeSnapshots
from patchpilot.logic.rollback import client_token, rollback_plan, snapshot_to_restore
from patchpilot.models.exceptions import RollbackRefused
from patchpilot.models.snapshots import RollbackRecord, SnapshotSet
from patchpilot_cli.errors import InputError
from patchpilot_cli.operator import _current_state
from patchpilot_cli.stack import StackOutputs, default_stack_name, resolve_outputs

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class RollbackPorts:
    """The stack's snapshot ledger, EC2 and Step Functions."""

    ledger: SnapshotLedger
    volumes: VolumeSnapshots
    sfn: Any
    state_machine_arn: str


def connect(outputs: StackOutputs) -> RollbackPorts:
    return RollbackPorts(
        ledger=DynamoDBSnapshotLedger(outputs.runs_table, outputs.client("dynamodb")),
        volumes=Ec2VolumeSnapshots(outputs.client("ec2")),
        sfn=outputs.client("stepfunctions"),
        state_machine_arn=outputs.state_machine_arn,
    )


def _of_run(name: str, run_id: str) -> bool:
    """Whether an execution name is an attempt of the run (`cycle-<run>` or `<run>`, then `-r2`, `-r3`...)."""
    return re.fullmatch(rf"(cycle-)?{re.escape(run_id)}(-r\d+)?", name) is not None


def run_executions(ports: RollbackPorts, run_id: str) -> list[dict[str, Any]]:
    """The run's executions; InputError if there is none (no such run)."""
    found: list[dict[str, Any]] = []
    for page in ports.sfn.get_paginator("list_executions").paginate(stateMachineArn=ports.state_machine_arn):
        found.extend(e for e in page["executions"] if _of_run(e["name"], run_id))
    if not found:
        raise InputError(f"run {run_id!r} not found: no execution of {ports.state_machine_arn} is named after it")
    return found


def check_rollback(ports: RollbackPorts, run_id: str, instance_id: str) -> SnapshotSet:
    """The snapshot set to restore, or InputError (run unknown, no snapshot of the instance, its stage running)."""
    if not INSTANCE_ID.match(instance_id):
        raise InputError(f"invalid --instance {instance_id!r} (expected an EC2 instance id, e.g. i-0123456789abcdef0)")
    executions = run_executions(ports, run_id)
    try:
        chosen = snapshot_to_restore(run_id, instance_id, ports.ledger.sets_of(run_id))
    except RollbackRefused as refused:
        raise InputError(str(refused)) from None
    for execution in executions:
        if execution["status"] != "RUNNING":
            continue
        _, stage = _current_state(ports.sfn, execution["executionArn"])
        if stage in (None, chosen.stage_name):
            raise InputError(
                f"stage {chosen.stage_name} of run {run_id} is still running ({execution['name']}): roll back once "
                "it has ended (patchpilot status), or stop the execution first"
            )
    return chosen


def start_rollback(ports: RollbackPorts, chosen: SnapshotSet, requested_by: str) -> RollbackRecord:
    """Start the root-volume replacement and record it (the client token makes a repeated request one task)."""
    root = chosen.root_snapshot
    if root is None:  # snapshot_to_restore refuses such a set
        raise InputError(f"instance {chosen.instance_id} has no root-volume snapshot")
    task_id = ports.volumes.replace_root_volume(
        chosen.instance_id,
        root.snapshot_id,
        client_token(chosen.run_id, chosen.instance_id, root.snapshot_id),
        {
            "PatchPilotRun": chosen.run_id,
            "PatchPilotStage": chosen.stage_name,
            "PatchPilotInstance": chosen.instance_id,
        },
    )
    record = RollbackRecord(
        run_id=chosen.run_id,
        instance_id=chosen.instance_id,
        stage_name=chosen.stage_name,
        snapshot_id=root.snapshot_id,
        task_id=task_id,
        task_state="pending",
        requested_by=requested_by,
        requested_at=datetime.now(UTC),
    )
    ports.ledger.record_rollback(record)
    return record


def plan_lines(ports: RollbackPorts, run_id: str) -> list[str]:
    """The run's rollback plan as text: which instances have which snapshots, the commands that restore them."""
    run_executions(ports, run_id)
    rows = rollback_plan(run_id, ports.ledger.sets_of(run_id), ports.ledger.rollbacks_of(run_id))
    if not rows:
        return [f"run {run_id}: no pre-patch snapshot was taken (no stage with snapshots installed yet)"]
    lines = [f"run {run_id}: rollback plan for {len(rows)} instance(s) with pre-patch snapshots"]
    for row in rows:
        data = f", data {', '.join(row.data_snapshot_ids)}" if row.data_snapshot_ids else ""
        done = f"; rolled back: {row.last_rollback}" if row.last_rollback else ""
        lines.append(
            f"  {row.stage_name:8} {row.instance_id}  root {row.root_snapshot_id}{data}  taken {row.taken_at}{done}"
        )
        lines.append(f"           {row.command}")
    return lines


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


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
    try:
        ports = connect(resolve_outputs(stack_name or default_stack_name(), region))
        if plan:
            for line in plan_lines(ports, run):
                typer.echo(line)
            return
        chosen = check_rollback(ports, run, str(instance))
    except InputError as error:
        _fail(str(error))
        return
    root = chosen.root_snapshot
    what = (
        f"restore the root volume of {chosen.instance_id} from {root.snapshot_id if root else '-'} (taken "
        f"{chosen.taken_at:%Y-%m-%d %H:%M} UTC before stage {chosen.stage_name} of run {run} installed); the instance "
        "restarts; the replaced volume is kept"
    )
    if dry_run:
        typer.echo(f"dry run: would {what} (EC2 CreateReplaceRootVolumeTask); nothing changed")
        return
    record = start_rollback(ports, chosen, os.environ.get("USER") or "patchpilot-cli")
    typer.echo(f"rollback started: {what}")
    typer.echo(f"  task {record.task_id} ({record.task_state}); recorded in run {run}")
    typer.echo(
        f"  follow it: aws ec2 describe-replace-root-volume-tasks --replace-root-volume-task-ids {record.task_id}"
    )
