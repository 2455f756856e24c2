"""The plan preview on a known fleet: instances per OS, missing patches, stage start times, total duration."""

from datetime import UTC, datetime, timedelta

import pytest

from patchpilot.logic.plan_preview import (
    MAX_DECISIONS,
    PlanOptions,
    PlanPorts,
    aggregate_patches,
    install_start,
    next_cycle,
    preview_plan,
    scheduled_start,
)
from patchpilot.models.compliance import MissingPatch, PatchStateCounts
from patchpilot.models.exceptions import InvalidRolloutRequest, UnsupportedSchedule
from patchpilot.models.plan_preview import PlanPreview
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import (
    HealthCheck,
    InstallWindow,
    RolloutRequest,
    RunContext,
    StageCatalog,
    StageDefinition,
    StagePlan,
    StageStepRequest,
)
from patchpilot.reporting.plan_text import render_text
from tests.fakes import FakeCalendar, FakeCommandDirectory, FakeFleetSource

# December 2026: Patch Tuesday is the 8th; the cycle starts then at 20:00 UTC.
CYCLE_START = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
SCANNED = CYCLE_START - timedelta(hours=6)
DEV = StageDefinition(
    name="dev",
    patch_group="dev",
    role="test",
    max_concurrency="100%",
    bake_seconds=86_400,
    window=InstallWindow(schedule="cron(0 21 ? * TUE#2 *)", duration_hours=2, cutoff_hours=1),
)
PROD = StageDefinition(
    name="prod-1",
    patch_group="prod-1",
    role="production",
    max_concurrency="50%",
    bake_seconds=86_400,
    requires_approval=True,
    eligible_classifications=["Security", "SecurityUpdates"],
    eligible_severities=["Critical", "Important"],
    window=InstallWindow(schedule="cron(0 3 ? * TUE#3 *)", duration_hours=4, cutoff_hours=1),  # PT + 7 days
)
CATALOG = StageCatalog(stages=[DEV, PROD])
PLATFORMS = {
    "AMAZON_LINUX_2023": ("Linux", "Amazon Linux", "2023"),
    "UBUNTU": ("Linux", "Ubuntu", "22.04"),
    "WINDOWS": ("Windows", "Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
    "SUSE": ("Linux", "SLES", "15.5"),
}
OPENSSL = MissingPatch(
    patch_id="openssl-libs.x86_64",
    classification="Security",
    severity="Important",
    state="Missing",
    cve_ids=("CVE-2026-31790",),
)
SUDO = MissingPatch(
    patch_id="sudo.x86_64", classification="Security", severity="Critical", state="Missing", cve_ids=("CVE-2026-34502",)
)
TZDATA = MissingPatch(patch_id="tzdata.noarch", classification="Bugfix", severity="Low", state="Missing")
KB = MissingPatch(
    patch_id="KB5071546",
    classification="SecurityUpdates",
    severity="Critical",
    state="Failed",
    cve_ids=("CVE-2026-49112", "CVE-2026-49127"),
)


class Fleet:
    """A known fleet behind the preview's ports."""

    def __init__(self) -> None:
        self.directory = FakeCommandDirectory()
        self.source = FakeFleetSource()
        self.calendar = FakeCalendar()
        self.count = 0

    def add(
        self, group: str, os_name: str, lacking: list[MissingPatch], scanned: bool = True, online: bool = True
    ) -> str:
        self.count += 1
        node_id = f"i-{self.count:017x}"
        kind, name, version = PLATFORMS[os_name]
        managed = ManagedInstance(
            instance_id=node_id,
            ping_status="Online" if online else "ConnectionLost",
            platform_type=kind,
            platform_name=name,
            platform_version=version,
        )
        self.directory.fleet.setdefault(("PatchGroup", group), []).append(managed)
        if scanned:
            missing = sum(p.state == "Missing" for p in lacking)
            failed = sum(p.state == "Failed" for p in lacking)
            self.source.states[node_id] = PatchStateCounts(
                patch_group=group, operation_end=SCANNED, missing=missing, failed=failed, installed=10
            )
            self.source.lacking[node_id] = lacking
        return node_id

    def ports(self) -> PlanPorts:
        return PlanPorts(self.directory, self.source, self.calendar)


def known_fleet() -> Fleet:
    """dev: 2 Amazon Linux 2023 + 1 Windows; prod-1: 2 Amazon Linux 2023 + 1 Ubuntu."""
    fleet = Fleet()
    fleet.add("dev", "AMAZON_LINUX_2023", [OPENSSL, SUDO, TZDATA])
    fleet.add("dev", "AMAZON_LINUX_2023", [OPENSSL])
    fleet.add("dev", "WINDOWS", [KB])
    fleet.add("prod-1", "AMAZON_LINUX_2023", [OPENSSL, TZDATA])
    fleet.add("prod-1", "AMAZON_LINUX_2023", [SUDO])
    fleet.add("prod-1", "UBUNTU", [])
    return fleet


def _preview(fleet: Fleet, catalog: StageCatalog = CATALOG, **options: object) -> PlanPreview:
    request = RolloutRequest(run_id="2026-12")
    return preview_plan(catalog, request, CYCLE_START, fleet.ports(), PlanOptions(**options), now=CYCLE_START)  # type: ignore[arg-type]


def test_plan_preview_counts_instances_per_operating_system() -> None:
    preview = _preview(known_fleet())
    dev, prod = preview.stages
    assert [(s.operating_system, s.instances, s.scanned) for s in dev.operating_systems] == [
        ("AMAZON_LINUX_2023", 2, 2),
        ("WINDOWS", 1, 1),
    ]
    assert [(s.operating_system, s.instances) for s in prod.operating_systems] == [
        ("AMAZON_LINUX_2023", 2),
        ("UBUNTU", 1),
    ]
    assert (dev.instances, prod.instances) == (3, 3)


def test_plan_preview_aggregates_missing_patches_per_os_with_instance_counts() -> None:
    dev = _preview(known_fleet()).stages[0]
    linux, windows = dev.operating_systems
    assert [(p.patch_id, p.severity, p.instances) for p in linux.patches] == [
        ("sudo.x86_64", "Critical", 1),
        ("openssl-libs.x86_64", "Important", 2),
        ("tzdata.noarch", "Low", 1),
    ]
    assert linux.patches[1].cve_ids == ["CVE-2026-31790"]
    assert [(p.patch_id, p.classification, p.cve_ids, p.failed_on) for p in windows.patches] == [
        ("KB5071546", "SecurityUpdates", ["CVE-2026-49112", "CVE-2026-49127"], 1)
    ]
    assert dev.distinct_patches == 4


def test_aggregate_patches_merges_cves_ignores_states_an_install_does_not_fix_and_ranks_by_severity() -> None:
    rows = [
        ("i-1", OPENSSL),
        ("i-2", OPENSSL.model_copy(update={"cve_ids": ("CVE-2026-31791",)})),
        ("i-2", OPENSSL),  # the same row twice counts the instance once
        ("i-3", SUDO.model_copy(update={"state": "InstalledPendingReboot"})),
        ("i-3", SUDO.model_copy(update={"state": "InstalledRejected"})),
        ("i-3", TZDATA),
    ]
    planned = aggregate_patches(rows)
    assert [(p.patch_id, p.instances) for p in planned] == [("openssl-libs.x86_64", 2), ("tzdata.noarch", 1)]
    assert planned[0].cve_ids == ["CVE-2026-31790", "CVE-2026-31791"]


def test_plan_preview_production_stage_gets_only_its_eligible_patches_and_says_what_it_leaves_out() -> None:
    prod = _preview(known_fleet()).stages[1]
    linux = prod.operating_systems[0]
    assert [p.patch_id for p in linux.patches] == ["sudo.x86_64", "openssl-libs.x86_64"]
    assert any(w.startswith("1 other patch(es) the scan reports missing are outside") for w in prod.warnings)


def test_plan_preview_stage_start_times_follow_windows_bakes_and_the_approval_gate() -> None:
    preview = _preview(known_fleet())
    dev, prod = (stage.timeline for stage in preview.stages)
    assert dev is not None
    assert prod is not None
    # dev: ready at the cycle's start (20:00), its window opens at 21:00 on Patch Tuesday
    assert (dev.install_starts_at, dev.start_reason) == (datetime(2026, 12, 8, 21, 0, tzinfo=UTC), "window_closed")
    assert dev.waves == 1  # 100 %: every instance at once
    assert dev.patched_at == datetime(2026, 12, 8, 22, 10, tzinfo=UTC)  # 60 min install + 10 min scan
    assert dev.passed_at == datetime(2026, 12, 9, 22, 10, tzinfo=UTC)  # + 24 h bake
    # prod-1: the approval is asked when dev passes and (assumed) answered 4 h later; its window is PT + 7 days
    assert (prod.approval_requested_at, prod.approved_at) == (dev.passed_at, dev.passed_at + timedelta(hours=4))
    assert prod.install_starts_at == datetime(2026, 12, 15, 3, 0, tzinfo=UTC)
    assert prod.window_cutoff_at == datetime(2026, 12, 15, 6, 0, tzinfo=UTC)
    assert prod.waves == 2  # 3 instances at 50 %: 2 at a time
    assert prod.passed_at == datetime(2026, 12, 16, 5, 20, tzinfo=UTC)
    assert preview.cycle_ends_at == prod.passed_at
    assert preview.expected_hours == 177.3  # 7 days 9 h 20 min


def test_plan_preview_an_approval_answered_after_the_cutoff_waits_for_next_months_window() -> None:
    # dev passes Wed 9th 22:10; answered 5 days 8 h later = Tue 15th 06:10, after prod-1's 06:00 cutoff
    prod = _preview(known_fleet(), approval_wait=timedelta(days=5, hours=8)).stages[1].timeline
    assert prod is not None
    assert prod.start_reason == "past_cutoff"
    assert prod.install_starts_at == datetime(2027, 1, 19, 3, 0, tzinfo=UTC)  # January: TUE#3 is the 19th


def test_plan_preview_an_approval_answered_inside_the_window_starts_at_once() -> None:
    prod = _preview(known_fleet(), approval_wait=timedelta(days=5, hours=6)).stages[1].timeline
    assert prod is not None
    assert (prod.install_starts_at, prod.start_reason) == (datetime(2026, 12, 15, 4, 10, tzinfo=UTC), "window_open")


def test_plan_preview_a_closed_change_calendar_delays_the_install() -> None:
    fleet = known_fleet()
    fleet.calendar.closed = [(datetime(2026, 12, 8, 0, 0, tzinfo=UTC), datetime(2026, 12, 8, 21, 30, tzinfo=UTC))]
    catalog = StageCatalog(stages=[DEV.model_copy(update={"change_calendar": "change-freeze"}), PROD])
    dev = _preview(fleet, catalog).stages[0].timeline
    assert dev is not None
    assert dev.install_starts_at == datetime(2026, 12, 8, 21, 30, tzinfo=UTC)
    assert dev.start_reason == "window_closed"  # first it waited for the window, then for the calendar
    assert ("change-freeze", datetime(2026, 12, 8, 21, 0, tzinfo=UTC)) in fleet.calendar.asked


def test_plan_preview_counts_health_commands_per_wave_in_the_duration() -> None:
    check = HealthCheck(linux_commands=["curl -fsS localhost/health"], timeout_seconds=300)
    catalog = StageCatalog(stages=[DEV.model_copy(update={"health_check": check})])
    dev = _preview(known_fleet(), catalog).stages[0].timeline
    assert dev is not None
    assert dev.patched_at == datetime(2026, 12, 8, 22, 15, tzinfo=UTC)  # + 5 min health
    assert dev.passed_at == datetime(2026, 12, 9, 22, 20, tzinfo=UTC)  # + the verify step's health command


def test_plan_preview_a_stage_without_instances_stops_the_plan_there() -> None:
    fleet = Fleet()
    fleet.add("prod-1", "UBUNTU", [])
    preview = _preview(fleet)
    dev, prod = preview.stages
    assert (dev.instances, dev.timeline) == (0, None)
    assert "no managed instance has tag PatchGroup=dev" in dev.warnings[0]
    assert prod.timeline is None
    assert "not reached: an earlier stage would stop the rollout" in prod.warnings
    assert (preview.cycle_ends_at, preview.expected_hours) == (None, None)


def test_plan_preview_warns_of_unscanned_offline_stale_and_untested_instances() -> None:
    fleet = known_fleet()
    fleet.add("dev", "AMAZON_LINUX_2023", [], scanned=False, online=False)
    fleet.add("prod-1", "WINDOWS", [KB])  # no Windows instance in prod-1 before; dev has one
    fleet.add("prod-1", "UBUNTU", [])
    preview = preview_plan(
        CATALOG,
        RolloutRequest(run_id="2026-12"),
        CYCLE_START,
        fleet.ports(),
        now=SCANNED + timedelta(hours=30),
    )
    dev, prod = preview.stages
    assert "1 instance(s) never scanned: their missing patches are unknown" in dev.warnings
    assert "1 instance(s) not Online: their install may end DeliveryTimedOut" in dev.warnings
    assert "the oldest scan is 30 h old: the missing patches may be out of date" in dev.warnings
    assert any(w.startswith("no instance of UBUNTU is patched in a test stage") for w in prod.warnings)


def test_plan_preview_rejects_unknown_stages_like_the_start_does() -> None:
    with pytest.raises(InvalidRolloutRequest, match=r"unknown stage\(s\) \['prod-9'\]"):
        preview_plan(CATALOG, RolloutRequest(run_id="2026-12", stages=["prod-9"]), CYCLE_START, known_fleet().ports())


def test_plan_preview_of_chosen_stages_plans_only_those() -> None:
    preview = preview_plan(CATALOG, RolloutRequest(run_id="2026-12", stages=["dev"]), CYCLE_START, Fleet().ports())
    assert [stage.name for stage in preview.stages] == ["dev"]


def test_scheduled_start_is_the_schedules_firing_in_the_cycles_month() -> None:
    assert scheduled_start("cron(0 20 ? * TUE#2 *)", "2026-12") == CYCLE_START
    assert scheduled_start("cron(0 20 ? * TUE#2 *)", "2027-01") == datetime(2027, 1, 12, 20, 0, tzinfo=UTC)
    berlin = scheduled_start("cron(0 20 ? * TUE#2 *)", "2026-12", "Europe/Berlin")
    assert berlin == datetime(2026, 12, 8, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize("cycle", ["2026-13", "26-12", "2026-1", "december", "2026-00"])
def test_scheduled_start_rejects_a_cycle_that_is_not_a_month(cycle: str) -> None:
    with pytest.raises(InvalidRolloutRequest, match=r"expected YYYY-MM"):
        scheduled_start("cron(0 20 ? * TUE#2 *)", cycle)


def test_next_cycle_is_this_month_until_its_schedule_fires() -> None:
    assert next_cycle("cron(0 20 ? * TUE#2 *)", datetime(2026, 12, 1, tzinfo=UTC)) == "2026-12"
    assert next_cycle("cron(0 20 ? * TUE#2 *)", datetime(2026, 12, 8, 20, 1, tzinfo=UTC)) == "2027-01"
    assert next_cycle("cron(0 20 ? * TUE#2 *)", datetime(2026, 11, 29, tzinfo=UTC)) == "2026-12"


def test_plan_text_names_each_stage_its_window_and_the_assumptions() -> None:
    lines = render_text(_preview(known_fleet()))
    text = "\n".join(lines)
    assert lines[0] == (
        "plan of cycle 2026-12: starts Tue 2026-12-08 20:00 UTC; every stage passed by Wed 2026-12-16 05:20 UTC "
        "(expected 177.3 h)"
    )
    assert (
        "stage prod-1 (production, approval gate): patch group prod-1, 3 instance(s): AMAZON_LINUX_2023 2, UBUNTU 1"
        in text
    )
    assert "  install:  starts Tue 2026-12-15 03:00 UTC, waits for its window" in text
    assert "approval gate is answered 4 h after it is asked (assumed; --approval-wait)" in text


def test_plan_preview_marks_production_patches_the_last_test_stage_does_not_lack() -> None:
    fleet = known_fleet()
    postgres = MissingPatch(
        patch_id="postgresql.x86_64", classification="Security", severity="Important", state="Missing"
    )
    fleet.add("prod-1", "AMAZON_LINUX_2023", [postgres, OPENSSL])
    prod = _preview(fleet).stages[1]
    marks = {p.patch_id: p.in_test_stage for p in prod.operating_systems[0].patches}
    assert marks == {"sudo.x86_64": True, "openssl-libs.x86_64": True, "postgresql.x86_64": False}
    assert any(w.startswith("1 patch(es) are not missing on the last test stage (dev)") for w in prod.warnings)
    assert "(not in the test stage)" in "\n".join(render_text(_preview(fleet)))


def test_scheduled_start_of_a_schedule_that_skips_the_month_is_unsupported() -> None:
    with pytest.raises(UnsupportedSchedule, match=r"does not fire in 2027-02"):
        scheduled_start("cron(0 20 31 * ? *)", "2027-02")


def test_plan_preview_warns_of_instances_on_an_os_without_a_baseline() -> None:
    fleet = known_fleet()
    fleet.add("dev", "SUSE", [])
    dev = _preview(fleet).stages[0]
    assert ("UNKNOWN", 1) in [(s.operating_system, s.instances) for s in dev.operating_systems]
    assert "1 instance(s) on an operating system PatchPilot has no baseline for" in dev.warnings


def test_plan_preview_of_an_emergency_run_is_refused() -> None:
    request = RolloutRequest(run_id="emergency-1", mode="emergency", patch_ids=["KB5071546"])
    with pytest.raises(InvalidRolloutRequest, match=r"an emergency run starts at once"):
        preview_plan(CATALOG, request, CYCLE_START, known_fleet().ports())


def _dev_step(mode: str = "scheduled") -> StageStepRequest:
    run = RunContext.model_validate(
        {
            "run_id": "2026-12",
            "mode": mode,
            "started_at": CYCLE_START,
            "on_bad_patch": "halt",
            "approval_timeout_seconds": 60,
            "limits": {},
            "patch_ids": ["KB5071546"] if mode == "emergency" else [],
        }
    )
    stage = StagePlan(**DEV.model_dump(), index=0, is_last=True).model_copy(update={"change_calendar": "freeze"})
    return StageStepRequest(run=run, stage=stage, phase_set="patch")


def test_install_start_gives_up_on_a_calendar_that_keeps_closing() -> None:
    opens = datetime(2026, 12, 8, 21, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    calendar = FakeCalendar([(opens + n * minute, opens + (n + 1) * minute) for n in range(MAX_DECISIONS + 5)])
    with pytest.raises(UnsupportedSchedule, match=rf"no install start within {MAX_DECISIONS} window decisions"):
        install_start(_dev_step(), CYCLE_START, calendar)


def test_install_start_of_a_step_that_a_window_does_not_govern_is_unsupported() -> None:
    with pytest.raises(UnsupportedSchedule, match=r"starts by emergency, not a window"):
        install_start(_dev_step("emergency"), CYCLE_START, FakeCalendar())


def test_plan_text_shows_ten_patches_per_os_unless_asked_for_all() -> None:
    fleet = Fleet()
    many = [
        MissingPatch(patch_id=f"pkg{n:02d}.x86_64", classification="Security", severity="Important", state="Missing")
        for n in range(12)
    ]
    fleet.add("dev", "AMAZON_LINUX_2023", many)
    fleet.add("prod-1", "AMAZON_LINUX_2023", [])
    preview = _preview(fleet)
    short, full = render_text(preview), render_text(preview, all_patches=True)
    assert "      ... and 2 more (--all-patches or --json)" in short
    assert sum("pkg" in line for line in short) == 10
    assert sum("pkg" in line for line in full) == 12
