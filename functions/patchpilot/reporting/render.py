"""The one report renderer: Jinja2 (autoescaped) HTML with inline SVG charts, and the CSV and JSON of each report."""

import csv
import io
from functools import cache

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from patchpilot.models.compliance import ComplianceStatus
from patchpilot.models.report import ComplianceReport, StageReport
from patchpilot.reporting import charts, templates

CSV_COLUMNS = [
    "node_id",
    "status",
    "reasons",
    "patch_group",
    "environment",
    "os",
    "last_scan",
    "stale_scan",
    "missing",
    "failed",
    "pending_reboot",
    "installed_rejected",
    "critical_missing",
    "important_missing",
    "missing_patch_ids",
]


@cache
def _environment() -> Environment:
    return Environment(
        loader=DictLoader(
            {"base.html": templates.BASE, "stage.html": templates.STAGE, "compliance.html": templates.COMPLIANCE}
        ),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def stage_html(report: StageReport) -> str:
    """The stage completion report as a self-contained HTML page."""
    return (
        _environment()
        .get_template("stage.html")
        .render(
            title=f"PatchPilot stage report: {report.run_id} / {report.stage_name}",
            generated_at=report.finished_at.isoformat(),
            r=report,
        )
    )


def stage_csv(report: StageReport) -> str:
    """One row per node of the stage."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", "stage", "node_id", "result", "succeeded", "rebooted", "patches_installed"])
    for node in report.nodes:
        writer.writerow(
            [
                report.run_id,
                report.stage_name,
                node.node_id,
                node.status,
                node.succeeded,
                node.rebooted,
                " ".join(node.patches_installed),
            ]
        )
    return out.getvalue()


def compliance_html(report: ComplianceReport) -> str:
    """The compliance report as a self-contained HTML page (charts inline, print styles, no external asset)."""
    summary = report.summary
    history: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for stage in report.stages:
        for node in stage.nodes:
            if node.patches_installed:
                history.setdefault(node.node_id, []).append((stage.stage_name, node.patches_installed))
    trend_groups = sorted({g for point in report.trend for g in point.by_patch_group})
    drawn = {
        "status": charts.status_bar({s.value: n for s, n in summary.counts.items()}),
        "groups": charts.rate_bars({name: g.rate for name, g in summary.by_patch_group.items()}),
        "environments": charts.rate_bars({f"env {n}": g.rate for n, g in summary.by_environment.items()}),
        "os": charts.rate_bars({name: g.rate for name, g in summary.by_os.items()}),
        "trend": charts.trend_line([(f"{p.taken_at:%Y-%m-%d %H:%M}", p.rate) for p in report.trend]),
    }
    return (
        _environment()
        .get_template("compliance.html")
        .render(
            title=report.title,
            generated_at=report.generated_at.isoformat(),
            r=report,
            charts=drawn,
            statuses=list(ComplianceStatus),
            trend_groups=trend_groups,
            history=history,
        )
    )


def compliance_csv(report: ComplianceReport) -> str:
    """One row per node: status, why, where, last scan, counts, and the ids of the patches it lacks."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for node in report.nodes:
        writer.writerow(
            {
                "node_id": node.node_id,
                "status": node.status.value,
                "reasons": "; ".join(node.reasons),
                "patch_group": node.patch_group or "",
                "environment": node.environment,
                "os": node.os,
                "last_scan": node.last_scan.isoformat() if node.last_scan else "",
                "stale_scan": node.stale_scan,
                "missing": node.missing,
                "failed": node.failed,
                "pending_reboot": node.pending_reboot,
                "installed_rejected": node.installed_rejected,
                "critical_missing": node.critical_missing,
                "important_missing": node.important_missing,
                "missing_patch_ids": " ".join(p.patch_id for p in node.missing_patches),
            }
        )
    return out.getvalue()
