"""The plan preview as text for an operator (`patchpilot plan`, and `make demo` before its cycle)."""

from datetime import UTC, datetime

from patchpilot.models.plan_preview import OsPreview, PlanPreview, StagePreview, StageTimeline

PATCHES_SHOWN = 10
_REASONS = {
    "window_open": "its window is open",
    "no_window": "no window: at once",
    "window_closed": "waits for its window",
    "past_cutoff": "past the window's cutoff: waits for the next window",
    "calendar_closed": "the change calendar is CLOSED: waits",
}


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%a %Y-%m-%d %H:%M} UTC" if moment else "-"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h"


def _os_lines(system: OsPreview, all_patches: bool) -> list[str]:
    lines = [
        f"    {system.operating_system}: {system.instances} instance(s), {system.scanned} scanned"
        + (f", {system.offline} not Online" if system.offline else "")
        + f"; {len(system.patches)} patch(es) to install"
    ]
    shown = system.patches if all_patches else system.patches[:PATCHES_SHOWN]
    for patch in shown:
        cves = ",".join(patch.cve_ids) or "-"
        failed = f" (failed before on {patch.failed_on})" if patch.failed_on else ""
        failed += "" if patch.in_test_stage else " (not in the test stage)"
        lines.append(
            f"      {patch.patch_id:40} {patch.classification or '-':16} {patch.severity or '-':11} "
            f"on {patch.instances}/{system.instances}{failed}  {cves}"
        )
    if len(shown) < len(system.patches):
        lines.append(f"      ... and {len(system.patches) - len(shown)} more (--all-patches or --json)")
    return lines


def _timeline_lines(stage: StagePreview, timeline: StageTimeline) -> list[str]:
    lines = []
    if timeline.approved_at is not None:
        lines.append(
            f"  approval: asked {_when(timeline.approval_requested_at)}, answered {_when(timeline.approved_at)} "
            "(assumed)"
        )
    window = f" (window {_when(timeline.window_opens_at)}, cutoff {_when(timeline.window_cutoff_at)})"
    lines.append(
        f"  install:  starts {_when(timeline.install_starts_at)}, {_REASONS[timeline.start_reason]}"
        + (window if timeline.window_opens_at else "")
    )
    lines.append(
        f"            {timeline.waves} wave(s) at MaxConcurrency {stage.max_concurrency}, {stage.install_minutes} min "
        f"each; patched and scanned by {_when(timeline.patched_at)}"
    )
    lines.append(f"  bake:     {_hours(stage.bake_seconds)}, until {_when(timeline.bake_ends_at)}")
    lines.append(f"  passed:   {_when(timeline.passed_at)}")
    return lines


def render_text(preview: PlanPreview, all_patches: bool = False) -> list[str]:
    """The preview for an operator, one stage after the other."""
    ends = (
        f"every stage passed by {_when(preview.cycle_ends_at)} (expected {preview.expected_hours:g} h)"
        if preview.cycle_ends_at is not None
        else "the rollout would stop before its last stage (see the warnings)"
    )
    lines = [f"plan of cycle {preview.cycle}: starts {_when(preview.cycle_starts_at)}; {ends}"]
    for stage in preview.stages:
        per_os = ", ".join(f"{s.operating_system} {s.instances}" for s in stage.operating_systems) or "none"
        gate = ", approval gate" if stage.requires_approval else ""
        lines += [
            "",
            f"stage {stage.name} ({stage.role}{gate}): patch group {stage.patch_group}, "
            f"{stage.instances} instance(s): {per_os}",
        ]
        if stage.timeline is not None:
            lines += _timeline_lines(stage, stage.timeline)
        scanned = f" (oldest scan {_when(stage.oldest_scan)})" if stage.oldest_scan else ""
        lines.append(f"  approved and missing per the last scan{scanned}: {stage.distinct_patches} distinct patch(es)")
        for system in stage.operating_systems:
            lines += _os_lines(system, all_patches)
        lines += [f"  warning: {warning}" for warning in stage.warnings]
    lines += ["", "assumptions:"] + [f"  - {note}" for note in preview.assumptions]
    return lines
