"""Stage and compliance reports: what they count, and that the one renderer writes self-contained HTML, CSV, JSON."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

from patchpilot.logic.compliance_collection import refresh
from patchpilot.logic.reports import (
    build_compliance_report,
    build_failed_stage_report,
    build_stage_report,
    store_stage_report,
)
from patchpilot.models.compliance import ComplianceStatus, PatchStateCounts
from patchpilot.models.patches import InstancePatch, PatchState
from patchpilot.models.records import InstanceResult
from patchpilot.models.report import ComplianceReport, FailedStageReportRequest, StageReportRequest
from patchpilot.models.snapshots import SnapshotSet, VolumeSnapshot
from patchpilot.reporting import render
from tests.fakes import (
    FakePatchInventory,
    FakeSnapshotLedger,
    InMemoryComplianceStore,
    InMemoryExclusionLedger,
    InMemoryInstallTracker,
    InMemoryReportStore,
    RecordingAlertPublisher,
    sample_exclusion,
)
from tests.unit.test_compliance import NOW, RULES, known_fleet, node_id

RUN_START = NOW - timedelta(days=2)


def stage_request(reboot_option: str = "RebootIfNeeded") -> StageReportRequest:
    return StageReportRequest.model_validate(
        {
            "run": {
                "run_id": "2026-12",
                "mode": "scheduled",
                "started_at": RUN_START.isoformat(),
                "on_bad_patch": "exclude_and_retry",
                "approval_timeout_seconds": 3600,
                "limits": {},
            },
            "stage": {
                "name": "prod-1",
                "patch_group": "prod-1",
                "role": "production",
                "index": 2,
                "is_last": False,
                "reboot_option": reboot_option,
            },
            "results": [{"phase": "install", "command_id": "cmd-install"}, {"phase": "scan", "command_id": "cmd-scan"}],
            "verdict": {
                "stage_name": "prod-1",
                "phase_set": "verify",
                "healthy": True,
                "targeted": 3,
                "unhealthy": 1,
                "allowed_failures": 1,
                "reasons": {"command_failed": 1},
            },
            "outcome": {"stage_name": "prod-1", "status": "passed", "targeted": 3, "unhealthy": 1},
            "finished_at": NOW.isoformat(),
        }
    )


def installed(instance: str, patch_id: str, state: PatchState = PatchState.INSTALLED) -> InstancePatch:
    return InstancePatch(
        instance_id=instance,
        patch_id=patch_id,
        title=patch_id,
        classification="Security",
        severity="Critical",
        state=state,
        installed_time=NOW - timedelta(hours=30),
    )


def stage_world() -> tuple[InMemoryInstallTracker, FakePatchInventory, InMemoryExclusionLedger]:
    a, b, c = node_id(1), node_id(2), node_id(3)
    tracker = InMemoryInstallTracker()
    for command_id, results in {
        "cmd-install": [
            InstanceResult(instance_id=a, status="Success", succeeded=True),
            InstanceResult(instance_id=b, status="Success", succeeded=True),
            InstanceResult(instance_id=c, status="Failed", succeeded=False),
        ],
        "cmd-scan": [InstanceResult(instance_id=a, status="Success", succeeded=True)],
    }.items():
        tracker.track_command(command_id, "2026-12", "prod-1")
        tracker.record_results(command_id, results)
    inventory = FakePatchInventory(
        {
            a: [installed(a, "openssl.x86_64"), installed(a, "sudo.x86_64", PatchState.INSTALLED_PENDING_REBOOT)],
            c: [installed(c, "openssl.x86_64", PatchState.FAILED)],
        }
    )
    ledger = InMemoryExclusionLedger()
    for stage_name, baseline_id in (("prod-1", "pb-1"), ("staging", "pb-2")):
        ledger.record(sample_exclusion("glibc.x86_64", stage_name, baseline_ids=(baseline_id,), decided_at=NOW))
    return tracker, inventory, ledger


def test_report_stage_counts_installed_failed_rebooted_and_time_to_patch() -> None:
    fleet = known_fleet()
    fleet.command_times["cmd-install"] = NOW - timedelta(hours=6)
    fleet.states[node_id(1)] = PatchStateCounts(patch_group="prod-1", operation_end=NOW - timedelta(hours=2))
    report = build_stage_report(stage_request(), *stage_world(), fleet)
    assert (report.targeted, report.installed, report.failed, report.rebooted) == (3, 2, 1, 1)
    assert report.patches_installed == {"openssl.x86_64": 1, "sudo.x86_64": 1}
    assert report.duration_hours == 4.0
    assert [(e.stage_name, e.patch_id) for e in report.excluded] == [("prod-1", "glibc.x86_64")]
    assert report.excluded[0].evidence["failing"] == "9/10 unhealthy"
    assert build_stage_report(stage_request("NoReboot"), *stage_world(), fleet).rebooted == 0


def test_report_stage_files_are_stored_as_html_csv_and_json() -> None:
    reports = InMemoryReportStore()
    report = build_stage_report(stage_request(), *stage_world(), known_fleet())
    location = store_stage_report(report, reports)
    assert location.html == "s3://artifacts/reports/2026-12/stages/prod-1.html"
    assert reports.keys("reports/2026-12/stages/") == [
        "reports/2026-12/stages/prod-1.csv",
        "reports/2026-12/stages/prod-1.html",
        "reports/2026-12/stages/prod-1.json",
    ]
    rows = list(csv.DictReader(io.StringIO(reports.files["reports/2026-12/stages/prod-1.csv"][0])))
    first = rows[0]
    assert (first["node_id"], first["result"], first["rebooted"]) == (node_id(1), "Success", "True")


def test_report_stage_carries_its_rollback_plan() -> None:
    ledger = FakeSnapshotLedger()
    for stage, instance in (("prod-1", "i-0000000000000000a"), ("dev", "i-0000000000000000b")):
        ledger.record_set(
            SnapshotSet(
                run_id="2026-12",
                stage_name=stage,
                instance_id=instance,
                taken_at=RUN_START,
                snapshots=[
                    VolumeSnapshot(snapshot_id="snap-00000000000000001", volume_id="vol-00000000000000001", root=True)
                ],
            )
        )
    report = build_stage_report(stage_request(), *stage_world(), known_fleet(), ledger)
    assert [(p.instance_id, p.root_snapshot_id, p.command) for p in report.rollback_plan] == [
        (
            "i-0000000000000000a",
            "snap-00000000000000001",
            "patchpilot rollback --run 2026-12 --instance i-0000000000000000a",
        )
    ]
    reports = InMemoryReportStore()
    store_stage_report(report, reports)
    html = reports.files["reports/2026-12/stages/prod-1.html"][0]
    assert "patchpilot rollback --run 2026-12 --instance i-0000000000000000a" in html
    assert build_stage_report(stage_request(), *stage_world(), known_fleet()).rollback_plan == []


def compliance_report() -> tuple[ComplianceReport, InMemoryReportStore]:
    fleet, store, reports = known_fleet(), InMemoryComplianceStore(), InMemoryReportStore()
    refresh(fleet, store, RecordingAlertPublisher(), RULES, RUN_START - timedelta(hours=1))  # the "before"
    fleet.states[node_id(2)] = PatchStateCounts(patch_group="prod-1", operation_end=NOW - timedelta(hours=1))
    stage = build_stage_report(stage_request(), *stage_world(), fleet)
    store_stage_report(stage, reports)
    report, _ = build_compliance_report(
        fleet, store, reports, stage_world()[2], RULES, NOW, run_id="2026-12", run_started_at=RUN_START
    )
    return report, reports


def test_report_compliance_carries_before_after_stages_and_trend() -> None:
    report, reports = compliance_report()
    assert report.cycle is not None
    assert (report.cycle.rate_before, report.cycle.rate_after) == (27.3, 36.4)  # node 2 rebooted and rescanned
    assert report.cycle.non_compliant == 2
    assert [s.stage_name for s in report.stages] == ["prod-1"]
    assert [p.rate for p in report.trend] == [27.3, 36.4]
    assert [e.stage_name for e in report.excluded] == ["prod-1", "staging"]
    assert "reports/2026-12/report.html" in reports.files


def test_report_compliance_html_is_self_contained_and_prints() -> None:
    _, reports = compliance_report()
    page = reports.files["reports/2026-12/report.html"][0]
    assert page.count("<svg") == 5
    assert not re.search(r"<script|<link|<img|src=|@import|url\(", page)
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}  # the SVG namespace only
    assert "@media print" in page
    assert "27.3 %" in page
    assert node_id(4) in page
    assert "CVE-2026-1001" in page


def test_report_renderer_escapes_what_it_shows() -> None:
    report, _ = compliance_report()
    hostile = report.model_copy(update={"title": "<script>alert(1)</script>"})
    page = render.compliance_html(hostile)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_compliance_csv_matches_the_summary() -> None:
    report, reports = compliance_report()
    rows = list(csv.DictReader(io.StringIO(reports.files["reports/2026-12/compliance.csv"][0])))
    assert len(rows) == report.summary.nodes == 11
    for status in ComplianceStatus:
        assert sum(r["status"] == status.value for r in rows) == report.summary.counts[status]
    assert next(r for r in rows if r["node_id"] == node_id(4))["missing_patch_ids"] == "openssl.x86_64 KB5071546"


def test_report_on_demand_is_stored_under_its_time() -> None:
    fleet, store, reports = known_fleet(), InMemoryComplianceStore(), InMemoryReportStore()
    report, location = build_compliance_report(fleet, store, reports, None, RULES, datetime(2026, 12, 20, tzinfo=UTC))
    assert (report.cycle, report.stages) == (None, [])
    assert location.csv == "s3://artifacts/reports/on-demand/20261220T000000Z/compliance.csv"
    assert len(store.nodes()) == 11


def test_report_rewrites_no_node_that_did_not_change() -> None:
    fleet, store, reports = known_fleet(), InMemoryComplianceStore(), InMemoryReportStore()
    build_compliance_report(fleet, store, reports, None, RULES, NOW)
    first_writes = store.node_writes
    report, _ = build_compliance_report(fleet, store, reports, None, RULES, NOW + timedelta(minutes=5))
    assert (first_writes, store.node_writes, report.summary.nodes) == (11, 11, 11)
    assert len(store.kept) == 2  # the trend still gets one summary per report


def failed_stage_request(**state: object) -> FailedStageReportRequest:
    passed = stage_request().model_dump(mode="json")
    return FailedStageReportRequest.model_validate(
        {
            "action": "stage_failed",
            "state": {
                "run": passed["run"],
                "stage": passed["stage"],
                "failure": {"Error": "StageHealthCheckFailed", "Cause": "stage prod-1 (verify step, attempt 1)"},
                "approval": {"ignored": "other keys of the stage state"},
                **state,
            },
            "finished_at": NOW.isoformat(),
        }
    )


def test_report_failed_stage_after_the_bake_counts_the_install_step_and_names_the_error() -> None:
    verdict = {**stage_request().verdict.model_dump(mode="json"), "healthy": False, "unhealthy": 2}
    request = failed_stage_request(
        phase_set="verify",
        patch_results=[{"phase": "install", "command_id": "cmd-install"}],
        results=[{"phase": "health", "command_id": "cmd-health"}],
        verdict=verdict,
    )
    report = build_failed_stage_report(request, *stage_world(), known_fleet())
    assert (report.status, report.targeted, report.installed, report.failed) == ("failed", 3, 2, 1)
    assert report.failure == "StageHealthCheckFailed: stage prod-1 (verify step, attempt 1)"
    assert report.patches_installed == {"openssl.x86_64": 1, "sudo.x86_64": 1}
    assert "The stage stopped:</b> StageHealthCheckFailed" in render.stage_html(report)


def test_report_stage_that_errored_before_any_command_reports_nothing_installed_and_the_error() -> None:
    request = failed_stage_request(failure={"Error": "States.TaskFailed"})
    report = build_failed_stage_report(request, *stage_world(), known_fleet())
    assert (report.status, report.targeted, report.installed, report.nodes) == ("failed", 0, 0, [])
    assert report.failure == "States.TaskFailed"
    assert [e.patch_id for e in report.excluded] == ["glibc.x86_64"]


def test_report_compliance_of_a_stopped_rollout_says_so_in_its_title() -> None:
    fleet, store, reports = known_fleet(), InMemoryComplianceStore(), InMemoryReportStore()
    report, _ = build_compliance_report(
        fleet, store, reports, None, RULES, NOW, run_id="2026-12", stopped_by="StageHealthCheckFailed"
    )
    assert report.title == "PatchPilot compliance report: run 2026-12 (rollout stopped: StageHealthCheckFailed)"
