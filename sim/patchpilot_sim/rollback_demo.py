"""The `rollback` scenario: a patch breaks one production instance; the operator rolls it back to its snapshot.

The patch installs cleanly and then leaves its instance unhealthy (within prod-1's error budget of one, so the stage
passes). After the cycle, the operator's commands run against the local stack exactly as `patchpilot rollback` runs
them: the dry run first (nothing may change), then the restore from the pre-patch snapshot. The judge checks the
ground truth: the instance is healthy again and has exactly the patch level it had before the cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patchpilot_sim.fleet import SimulatedInstance
from patchpilot_sim.patches import MISSING, catalog_for

if TYPE_CHECKING:
    from patchpilot_sim.runtime import LocalRuntime

VICTIM_GROUP = "prod-1"
YUM_PLATFORMS = ("AMAZON_LINUX_2023", "AMAZON_LINUX_2", "REDHAT_ENTERPRISE_LINUX")
STACK_NAME = "patchpilot-local"
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
    """For the rollback scenario: a prod-1 instance and a Critical/Important patch of its OS that breaks it."""
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


def _wait_for_task(runtime: LocalRuntime, task_id: str) -> str:
    deadline = time.monotonic() + REAL_TIMEOUT_SECONDS
    state = runtime.volumes.tasks[task_id].state
    while state not in ("succeeded", "failed", "failed-detached") and time.monotonic() < deadline:
        time.sleep(0.02)
        state = runtime.volumes.tasks[task_id].state
    return state


def perform(runtime: LocalRuntime, case: RollbackCase, run_id: str, say: Callable[[str], None]) -> None:
    """`patchpilot rollback --plan`, `--dry-run`, then the rollback itself, against the local stack."""
    from patchpilot_cli.rollback import check_rollback, connect, plan_lines, start_rollback
    from patchpilot_cli.stack import resolve_outputs
    from patchpilot_sim.stack_standin import register_stack_outputs

    register_stack_outputs(runtime, STACK_NAME)
    ports = connect(resolve_outputs(STACK_NAME, runtime.region))
    case.unhealthy_before = not case.victim.healthy
    for line in plan_lines(ports, run_id):
        say(f"rollback plan: {line}")
    chosen = check_rollback(ports, run_id, case.victim.instance_id)
    tasks_before = len(runtime.volumes.tasks)
    say(
        f"patchpilot rollback --run {run_id} --instance {case.victim.instance_id} --dry-run: would restore from "
        f"{chosen.root_snapshot.snapshot_id if chosen.root_snapshot else '-'}"
    )
    case.dry_run_changed = len(runtime.volumes.tasks) != tasks_before
    record = start_rollback(ports, chosen, "oncall-sim")
    say(f"patchpilot rollback --run {run_id} --instance {case.victim.instance_id}: task {record.task_id}")
    case.task_state = _wait_for_task(runtime, record.task_id)
    say(f"rollback task {record.task_id}: {case.task_state}; {case.victim.tags['Name']} healthy: {case.victim.healthy}")


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
