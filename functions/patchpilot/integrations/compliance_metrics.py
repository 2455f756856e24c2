"""CloudWatch metrics of fleet compliance, as Powertools EMF lines (one metric per dimension set).

Namespace: POWERTOOLS_METRICS_NAMESPACE (PatchPilot); every metric also carries the `service` dimension. The
dashboard and the production compliance alarm in template.yaml are built on these names.
"""

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from patchpilot.models.compliance import ComplianceRules, ComplianceStatus, ComplianceSummary

if TYPE_CHECKING:  # the refresh's cold import needs no report models
    from patchpilot.models.report import StageReport

SERVICE = "patchpilot"
STATUS_METRICS = {
    ComplianceStatus.COMPLIANT: "CompliantNodes",
    ComplianceStatus.NON_COMPLIANT: "NonCompliantNodes",
    ComplianceStatus.UNMANAGED: "UnmanagedNodes",
    ComplianceStatus.SCAN_IN_PROGRESS: "ScanInProgressNodes",
    ComplianceStatus.INSTALL_IN_PROGRESS: "InstallInProgressNodes",
}


def _emit(name: str, unit: MetricUnit, value: float, dimensions: dict[str, str] | None = None) -> None:
    with single_metric(name=name, unit=unit, value=value, default_dimensions={"service": SERVICE}) as metric:
        for key, dimension in (dimensions or {}).items():
            metric.add_dimension(name=key, value=dimension)


def emit_compliance(summary: ComplianceSummary, rules: ComplianceRules, production_rate: float | None) -> None:
    """Fleet, per patch group and per environment compliance rates; counts per status; urgent missing patches."""
    if summary.rate is not None:
        _emit("ComplianceRate", MetricUnit.Percent, summary.rate)
    if production_rate is not None:
        _emit("ProductionComplianceRate", MetricUnit.Percent, production_rate)
    for group, compliance in summary.by_patch_group.items():
        if compliance.rate is not None:
            _emit("ComplianceRate", MetricUnit.Percent, compliance.rate, {"PatchGroup": group})
    for environment, compliance in summary.by_environment.items():
        if compliance.rate is not None:
            _emit("ComplianceRate", MetricUnit.Percent, compliance.rate, {"Environment": environment})
    for status, name in STATUS_METRICS.items():
        _emit(name, MetricUnit.Count, summary.counts[status])
    _emit("CriticalMissingPatches", MetricUnit.Count, summary.critical_missing)
    _emit("ImportantMissingPatches", MetricUnit.Count, summary.important_missing)
    _emit("StaleScans", MetricUnit.Count, len(summary.stale_scans))


def emit_stage(report: "StageReport") -> None:
    """Stage duration and the patches the stage installed and excluded."""
    if report.duration_hours is not None:
        _emit("StageDurationHours", MetricUnit.Count, report.duration_hours, {"Stage": report.stage_name})
    _emit("ExcludedPatches", MetricUnit.Count, len(report.excluded), {"Stage": report.stage_name})
    _emit("PatchesInstalled", MetricUnit.Count, sum(report.patches_installed.values()), {"Stage": report.stage_name})
