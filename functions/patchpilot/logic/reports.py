"""Building and storing the reports: a stage report after every stage, the compliance report per cycle and on demand.

Rendering is `reporting/render.py` (the one renderer); storage is the ReportStore port.

Keys: ``reports/<run_id>/stages/<stage>.{html,csv,json}`` and ``reports/<run_id>/report.html``,
``compliance.csv``, ``report.json`` (on demand: ``reports/on-demand/<timestamp>/``).
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from patchpilot.integrations.compliance_ports import ComplianceStore, FleetComplianceSource, ReportStore
from patchpilot.integrations.ports import ExclusionLedger, InstallTracker, PatchInventory, SnapshotLedger
from patchpilot.logic.compliance import risk_assessment, summarize
from patchpilot.logic.compliance_collection import store_changed_nodes, take_snapshot
from patchpilot.logic.rollback import rollback_plan
from patchpilot.models.compliance import (
    ComplianceRules,
    ComplianceStatus,
    ComplianceSummary,
    CycleCompliance,
    StageTiming,
)
from patchpilot.models.patches import PatchState
from patchpilot.models.report import (
    ComplianceReport,
    ExcludedPatchEvidence,
    FailedStageReportRequest,
    ReportLocation,
    StageNodeResult,
    StageReport,
    StageReportRequest,
    TrendPoint,
)
from patchpilot.models.rollout import CommandResultRef, RunContext, StagePlan
from patchpilot.models.snapshots import RollbackPlanRow
from patchpilot.reporting import render

INSTALLED_NOW = (PatchState.INSTALLED, PatchState.INSTALLED_PENDING_REBOOT)


def report_prefix(run_id: str | None, now: datetime, on_demand: bool = False) -> str:
    """Where a run's compliance report lives (an on-demand report: under its timestamp)."""
    return f"reports/on-demand/{now:%Y%m%dT%H%M%SZ}" if on_demand or not run_id else f"reports/{run_id}"


def excluded_in_run(ledger: ExclusionLedger, run_id: str, stage_name: str | None = None) -> list[ExcludedPatchEvidence]:
    """The patches the run excluded (optionally: at one stage), with their evidence."""
    return [
        ExcludedPatchEvidence(
            stage_name=record.stage_name,
            patch_id=record.patch_id,
            operating_system=", ".join(record.evidence.operating_systems),
            evidence={
                "failing": f"{record.evidence.failing_with}/{record.evidence.failing_total} unhealthy",
                "healthy": f"{record.evidence.healthy_with}/{record.evidence.healthy_total} healthy",
                "failed_installs": record.evidence.failed_installs,
                "baselines": list(record.baseline_ids),
            },
        )
        for record in ledger.exclusions_of(run_id)
        if stage_name is None or record.stage_name == stage_name
    ]


def stage_rollback_plan(run_id: str, stage_name: str, snapshots: SnapshotLedger | None) -> list[RollbackPlanRow]:
    """The stage's part of the run's rollback plan (empty without a snapshot ledger or snapshots)."""
    if snapshots is None:
        return []
    sets = [s for s in snapshots.sets_of(run_id) if s.stage_name == stage_name]
    return rollback_plan(run_id, sets, snapshots.rollbacks_of(run_id)) if sets else []


def build_stage_report(
    request: StageReportRequest,
    tracker: InstallTracker,
    inventory: PatchInventory,
    ledger: ExclusionLedger,
    source: FleetComplianceSource,
    snapshots: SnapshotLedger | None = None,
) -> StageReport:
    """The stage completion report: targeted, installed, failed, rebooted, duration, patches installed, exclusions.

    Time to patch runs from the first install command (ListCommands RequestedDateTime) to the latest patch report
    of the stage's nodes (DescribeInstancePatchStates OperationEndTime: the post-patch scan). A node counts as
    rebooted when it installed at least one patch in this run under ``RebootIfNeeded``
    (AWS-RunPatchBaseline reboots after installing any patch with that option).
    """
    ports = _StagePorts(tracker, inventory, ledger, source, snapshots)
    return _stage_report(
        request.run, request.stage, request.results, request.verdict.targeted, request.finished_at, ports
    )


def build_failed_stage_report(
    request: FailedStageReportRequest,
    tracker: InstallTracker,
    inventory: PatchInventory,
    ledger: ExclusionLedger,
    source: FleetComplianceSource,
    snapshots: SnapshotLedger | None = None,
) -> StageReport:
    """The completion report of a stage that failed its health check or stopped on an error.

    It counts what the stage got to: the install commands of the patch step (kept as ``patch_results`` when the
    verify step after the bake failed, else the failing step's own commands), with the error and its cause. A stage
    stopped before its health verdict counts as targeted the nodes its install command reported for.
    """
    state = request.state
    refs = list({ref.command_id: ref for ref in [*state.patch_results, *state.results]}.values())
    targeted = state.verdict.targeted if state.verdict is not None else None
    ports = _StagePorts(tracker, inventory, ledger, source, snapshots)
    report = _stage_report(state.run, state.stage, refs, targeted, request.finished_at, ports)
    cause = f": {state.failure.cause}" if state.failure.cause else ""
    return report.model_copy(update={"status": "failed", "failure": f"{state.failure.error}{cause}"})


@dataclass(frozen=True)
class _StagePorts:
    tracker: InstallTracker
    inventory: PatchInventory
    ledger: ExclusionLedger
    source: FleetComplianceSource
    snapshots: SnapshotLedger | None


def _stage_report(
    run: RunContext,
    stage: StagePlan,
    refs: list[CommandResultRef],
    targeted: int | None,
    finished_at: datetime,
    ports: _StagePorts,
) -> StageReport:
    installs = [ref.command_id for ref in refs if ref.phase == "install"]
    nodes: list[StageNodeResult] = []
    patch_counts: Counter[str] = Counter()
    for command_id in installs:
        for result in ports.tracker.list_results(command_id):
            installed = tuple(
                sorted(
                    patch.patch_id
                    for patch in ports.inventory.installed_during(result.instance_id, run.started_at)
                    if patch.state in INSTALLED_NOW
                )
            )
            patch_counts.update(installed)
            nodes.append(
                StageNodeResult(
                    node_id=result.instance_id,
                    status=result.status,
                    succeeded=result.succeeded,
                    rebooted=bool(installed) and stage.reboot_option == "RebootIfNeeded",
                    patches_installed=installed,
                )
            )
    times = [t for t in (ports.source.command_requested_at(c) for c in installs) if t is not None]
    reports = ports.source.patch_states(sorted({node.node_id for node in nodes}))
    ends = [state.operation_end for state in reports.values()]
    return StageReport(
        run_id=run.run_id,
        stage_name=stage.name,
        patch_group=stage.patch_group,
        role=stage.role,
        status="passed",
        targeted=targeted if targeted is not None else len({node.node_id for node in nodes}),
        installed=sum(node.succeeded for node in nodes),
        failed=sum(not node.succeeded for node in nodes),
        rebooted=sum(node.rebooted for node in nodes),
        started_at=min(times) if times else None,
        patched_at=max(ends) if ends and times and max(ends) >= min(times) else None,
        finished_at=finished_at,
        patches_installed=dict(sorted(patch_counts.items())),
        excluded=excluded_in_run(ports.ledger, run.run_id, stage.name),
        nodes=sorted(nodes, key=lambda node: node.node_id),
        rollback_plan=stage_rollback_plan(run.run_id, stage.name, ports.snapshots),
    )


def store_stage_report(report: StageReport, reports: ReportStore) -> ReportLocation:
    """Render the stage report (HTML, CSV, JSON) into the report store."""
    base = f"reports/{report.run_id}/stages/{report.stage_name}"
    return ReportLocation(
        html=reports.put(f"{base}.html", render.stage_html(report), "text/html; charset=utf-8"),
        csv=reports.put(f"{base}.csv", render.stage_csv(report), "text/csv; charset=utf-8"),
        json_uri=reports.put(f"{base}.json", report.model_dump_json(indent=2), "application/json"),
    )


def stage_reports_of(run_id: str, reports: ReportStore) -> list[StageReport]:
    """The stage reports stored for a run, in the order the stages finished."""
    stored = [reports.get(key) for key in reports.keys(f"reports/{run_id}/stages/") if key.endswith(".json")]
    parsed = [StageReport.model_validate_json(body) for body in stored if body is not None]
    return sorted(parsed, key=lambda report: report.finished_at)


def _trend(summaries: list[ComplianceSummary]) -> list[TrendPoint]:
    return [
        TrendPoint(
            taken_at=summary.taken_at,
            rate=summary.rate,
            by_patch_group={name: group.rate for name, group in summary.by_patch_group.items()},
        )
        for summary in summaries
    ]


def cycle_compliance(
    summary: ComplianceSummary, before: ComplianceSummary | None, report_uri: str | None
) -> CycleCompliance:
    """What the cycle-finished alert carries: the rate before and after, the non-compliant and unmanaged counts."""
    return CycleCompliance(
        rate_before=before.rate if before is not None else None,
        rate_after=summary.rate,
        non_compliant=summary.counts[ComplianceStatus.NON_COMPLIANT],
        unmanaged=summary.counts[ComplianceStatus.UNMANAGED],
        nodes=summary.nodes,
        counts=summary.counts,
        report_uri=report_uri,
    )


def _title(run_id: str | None, stopped_by: str | None) -> str:
    title = f"PatchPilot compliance report{f': run {run_id}' if run_id else ''}"
    return f"{title} (rollout stopped: {stopped_by})" if stopped_by else title


def build_compliance_report(
    source: FleetComplianceSource,
    store: ComplianceStore,
    reports: ReportStore,
    ledger: ExclusionLedger | None,
    rules: ComplianceRules,
    now: datetime,
    run_id: str | None = None,
    run_started_at: datetime | None = None,
    on_demand: bool = False,
    stopped_by: str | None = None,
) -> tuple[ComplianceReport, ReportLocation]:
    """Take a compliance snapshot, keep it (node rows and the trend), render and store the compliance report.

    Parameters
    ----------
    source, store, reports, ledger
        SSM/EC2 reads, the stored statuses and trend, the report store, the run's exclusions (None on demand).
    rules : ComplianceRules
        The policy's compliance settings.
    now : datetime
        The snapshot moment.
    run_id, run_started_at
        The cycle the report closes or shows (its stage reports and exclusions); "before" is the last summary kept
        before the run started.
    on_demand : bool
        A report taken now (stored under ``reports/on-demand/<time>/``), not the one closing the cycle.
    stopped_by : str, optional
        The error that stopped the rollout (the report of a failed or aborted run says so in its title).

    Returns
    -------
    tuple of ComplianceReport and ReportLocation
        The report and where its HTML, CSV and JSON were stored.
    """
    stored_nodes = store.nodes()
    nodes = take_snapshot(source, store, rules, now, stored_nodes)
    stages = stage_reports_of(run_id, reports) if run_id else []
    timings = [
        StageTiming(stage_name=s.stage_name, started_at=s.started_at, finished_at=s.patched_at)
        for s in stages
        if s.started_at is not None and s.patched_at is not None
    ]
    summary = summarize(nodes, now, timings)
    history = store.summaries()
    before = None
    if run_started_at is not None:
        before = next((s for s in reversed(history) if s.taken_at <= run_started_at), None)
    store_changed_nodes(store, nodes, stored_nodes)
    store.add_summary(summary, None if on_demand else run_id)
    prefix = report_prefix(run_id, now, on_demand)
    location = ReportLocation(
        html=f"{prefix}/report.html", csv=f"{prefix}/compliance.csv", json_uri=f"{prefix}/report.json"
    )
    report = ComplianceReport(
        title=_title(run_id, stopped_by),
        run_id=run_id,
        generated_at=now,
        summary=summary,
        cycle=cycle_compliance(summary, before, None) if run_id else None,
        nodes=nodes,
        trend=_trend([*history, summary]),
        risks=risk_assessment(nodes, rules, now),
        risk_after_days=rules.risk_after_days,
        stages=stages,
        excluded=excluded_in_run(ledger, run_id) if ledger is not None and run_id else [],
    )
    stored = ReportLocation(
        html=reports.put(location.html, render.compliance_html(report), "text/html; charset=utf-8"),
        csv=reports.put(location.csv, render.compliance_csv(report), "text/csv; charset=utf-8"),
        json_uri=reports.put(location.json_uri, report.model_dump_json(indent=2), "application/json"),
    )
    return report, stored
