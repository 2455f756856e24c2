"""The plan preview before the demo's cycle: what `patchpilot plan` shows, computed on the simulated fleet.

The same logic and adapters as the command (`patchpilot.logic.plan_preview` on the SSM adapters, through the default
session the fleet stand-in answers on); the cycle starts now (the demo starts it at once, like `patchpilot start`).
Simulated time is held while the preview reads the fleet, so the cycle starts at the moment the plan assumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3

from patchpilot.integrations.ssm_calendar import SsmChangeCalendar
from patchpilot.integrations.ssm_compliance import SsmFleetComplianceSource
from patchpilot.integrations.ssm_directory import SsmCommandDirectory
from patchpilot.logic.plan_preview import PlanPorts, preview_plan
from patchpilot.models.exceptions import InvalidRolloutRequest, UnsupportedSchedule
from patchpilot.models.plan_preview import PlanPreview
from patchpilot.models.rollout import RolloutRequest, StageCatalog
from patchpilot.reporting.plan_text import render_text

if TYPE_CHECKING:
    from patchpilot_sim.runtime import LocalRuntime


def demo_plan(runtime: LocalRuntime, catalog: StageCatalog, start: dict[str, Any]) -> PlanPreview:
    """The preview of the cycle `start` (a StartRolloutFunction payload) would run, were it started now.

    The stage catalog's bakes, not the demo's compressed ones: the plan shows what a deployment would do.
    """
    ssm, ec2 = boto3.client("ssm"), boto3.client("ec2")
    ports = PlanPorts(SsmCommandDirectory(ssm), SsmFleetComplianceSource(ssm, ec2), SsmChangeCalendar(ssm))
    request = RolloutRequest(run_id=str(start["cycle"]), mode="scheduled", stages=start.get("stages"))
    now = runtime.clock.now()
    return preview_plan(catalog, request, now, ports, now=now)


def plan_lines(runtime: LocalRuntime, catalog: StageCatalog, start: dict[str, Any]) -> list[str]:
    """The preview as `patchpilot plan` prints it (a scheduled or manual cycle only: emergencies name their patches)."""
    if start.get("mode", "scheduled") == "emergency":
        return []
    try:
        preview = demo_plan(runtime, catalog, start)
    except (InvalidRolloutRequest, UnsupportedSchedule) as error:
        return [f"plan preview: not available ({error})"]
    return [
        "plan preview (`patchpilot plan`; the policy's bakes, which the demo waits out in simulated time):",
        *(f"  {line}" if line else "" for line in render_text(preview)),
    ]


def say_plan(
    runtime: LocalRuntime, catalog: StageCatalog, start: dict[str, Any], say: Callable[[str], None], enabled: bool
) -> None:
    """Tell the preview line by line (when `enabled`: the demo, which writes an output folder)."""
    for line in plan_lines(runtime, catalog, start) if enabled else []:
        say(line)
