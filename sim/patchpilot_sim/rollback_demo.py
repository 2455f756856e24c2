"""The `rollback` scenario: a patch breaks one instance for good; the operator rolls it back to its snapshot.

The patch installs cleanly and then leaves its dev instance unhealthy (the scenario's policy takes pre-patch snapshots
in dev): dev fails, its retry cannot heal the instance, the cycle stops. Then the operator's rollback runs against
the local stack through the logic and adapters `patchpilot rollback` uses (the simulator never imports the operator
commands): its checks first (a dry run changes nothing), then the restore from the pre-patch snapshot. The judge
checks the ground truth: the instance is healthy again and has exactly the patch level it had before the cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from patchpilot.integrations.dynamodb_snapshots import DynamoDBSnapshotLedger
from patchpilot.integrations.ec2_snapshots import Ec2VolumeSnapshots
from patchpilot.integrations.sfn_runs import StepFunctionsRunExecutions
from patchpilot.logic.commands import rollback_command
from patchpilot.logic.rollback import check_rollback, run_rollback_plan, start_rollback
from patchpilot.models.rollout import StageDefinition
from patchpilot.models.snapshots import SnapshotSettings
from patchpilot_sim.fleet import SimulatedInstance
from patchpilot_sim.patches import MISSING, catalog_for

if TYPE_CHECKING:
    from patchpilot_sim.runtime import LocalRuntime

VICTIM_GROUP = "dev"
YUM_PLATFORMS = ("AMAZON_LINUX_2023", "AMAZON_LINUX_2", "REDHAT_ENTERPRISE_LINUX")
REAL_TIMEOUT_SECONDS = 30.0


@dataclass
class RollbackCase:
    """The broken instance, the patch that breaks it, and its patch level before the cycle (ground truth)."""

    victim: SimulatedInstance
    patch_id: str
    pre_patch_level: dict[str, str]
    unhealthy_before: bool = False
    dry_run_changed: bool = False
    task_state: str | None = None


def prepare(fleet: list[SimulatedInstance], scenario: str, say: Callable[[str], None]) -> RollbackCase | None:
    """For the rollback scenario: a dev instance and a Critical/Important patch of its OS that breaks it."""
    if scenario != "rollback":
        return None
    victim = next(i for i in fleet if i.patch_group == VICTIM_GROUP and i.platform in YUM_PLATFORMS)
    patch = next(
        p
        for p in catalog_for(victim.platform)
        if not p.kernel and p.applicability >= 1.0 and p.severity in ("Critical", "Important")
    )
    record = victim.patches[patch.patch_id]
    record.state, record.installed_time, record.breaks_health = MISSING, None, True
    level = {patch_id: r.state for patch_id, r in victim.patches.items()}
    say(f"scenario rollback: {patch.title} ({victim.platform}) installs and then breaks {victim.tags['Name']}")
    return RollbackCase(victim, patch.patch_id, level)


def conclude(
    runtime: LocalRuntime, case: RollbackCase | None, description: dict[str, Any], say: Callable[[str], None]
) -> list[str]:
    """After the cycle: the operator's rollback, then what contradicts the scenario (nothing for other scenarios)."""
    if case is None:
        return []
    perform(runtime, case, str(description["name"]).removeprefix("cycle-"), say)
    return problems(case)


def snapshots_of(stage: StageDefinition, snapshot_stages: tuple[str, ...]) -> dict[str, object]:
    """A scenario policy's `snapshots:` for a stage it names (production stages take them by default)."""
    return {"snapshots": SnapshotSettings()} if stage.name in snapshot_stages and stage.snapshots is None else {}


def _wait_for_task(runtime: LocalRuntime, task_id: str) -> str:
    runtime.run_until(
        lambda: runtime.volumes.tasks[task_id].state in ("succeeded", "failed", "failed-detached"),
        real_timeout=REAL_TIMEOUT_SECONDS,
    )
    return runtime.volumes.tasks[task_id].state


def perform(runtime: LocalRuntime, case: RollbackCase, run_id: str, say: Callable[[str], None]) -> None:
    """The rollback plan, the checks (a dry run), then the rollback itself, against the local stack's resources."""
    ports = stack_ports(runtime)
    case.unhealthy_before = not case.victim.healthy
    for row in run_rollback_plan(run_id, ports.executions, ports.ledger):
        say(f"rollback plan: {row.stage_name} {row.instance_id} root {row.root_snapshot_id}: {row.command}")
    tasks_before = len(runtime.volumes.tasks)
    chosen = check_rollback(run_id, case.victim.instance_id, ports.executions, ports.ledger)
    case.dry_run_changed = len(runtime.volumes.tasks) != tasks_before
    root = chosen.root_snapshot.snapshot_id if chosen.root_snapshot else "-"
    say(f"{rollback_command(run_id, case.victim.instance_id)} --dry-run: would restore from {root}")
    record = start_rollback(chosen, ports.volumes, ports.ledger, "oncall-sim", runtime.clock.now())
    say(f"{rollback_command(run_id, case.victim.instance_id)}: task {record.task_id}")
    case.task_state = _wait_for_task(runtime, record.task_id)
    say(f"rollback task {record.task_id}: {case.task_state}; {case.victim.tags['Name']} healthy: {case.victim.healthy}")


@dataclass(frozen=True)
class StackPorts:
    ledger: DynamoDBSnapshotLedger
    volumes: Ec2VolumeSnapshots
    executions: StepFunctionsRunExecutions


def stack_ports(runtime: LocalRuntime) -> StackPorts:
    """The adapters `patchpilot rollback` connects to a stack, on the local runtime's resources."""
    session = runtime.admin  # not the default session: the operator is not a Lambda function
    return StackPorts(
        ledger=DynamoDBSnapshotLedger(runtime.resources.table_names["RunsTable"], session.client("dynamodb")),
        volumes=Ec2VolumeSnapshots(boto3.client("ec2", region_name=runtime.region)),
        executions=StepFunctionsRunExecutions(session.client("stepfunctions"), runtime.state_machine_arn()),
    )


def problems(case: RollbackCase) -> list[str]:
    """What contradicts the scenario: the instance must have been broken, and be healthy at its pre-patch level."""
    found = []
    if not case.unhealthy_before:
        found.append(f"{case.victim.instance_id} was not broken by {case.patch_id}: nothing to roll back")
    if case.dry_run_changed:
        found.append("the dry run started a root-volume replacement")
    if case.task_state != "succeeded":
        found.append(f"the root-volume replacement ended {case.task_state}, not succeeded")
    if not case.victim.healthy:
        found.append(f"{case.victim.instance_id} is still unhealthy after the rollback")
    level = {patch_id: r.state for patch_id, r in case.victim.patches.items()}
    changed = sorted(p for p in case.pre_patch_level if level.get(p) != case.pre_patch_level[p])
    if changed:
        found.append(f"{case.victim.instance_id} is not back at its pre-patch level: {changed[:5]} differ")
    return found
