"""The plan preview: what a cycle would patch, stage by stage, and when, before it starts (`patchpilot plan`).

The stages and their order, bakes and approval gates come from the rollout planner (`plan_rollout`) on the deployed
stage catalog; each stage's install start from the same window decision the state machine asks at run time
(`decide_install_start`), asked again at each moment it says to wait for (as the Wait state does); the instance
counts from the same DescribeInstanceInformation tag query the stage step counts its targets with.

Which patches a stage would install: what the last scan (DescribeInstancePatches) reports ``Missing`` or ``Failed``
on the group's nodes. A scan evaluates the group's own baseline, so these are exactly the patches its rules approve
(prod: security Critical/Important released at least 7 days before the scan); patches that become approved between
the scan and the stage's window (``approve_after_days``) show up only in a later scan. A production stage installs
the patch set its test stage froze (InstallOverrideList), within what its own baseline approves.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from patchpilot.integrations.compliance_ports import FleetComplianceSource
from patchpilot.integrations.patch_sets import is_eligible
from patchpilot.integrations.ports import ChangeCalendar, Clock, CommandDirectory
from patchpilot.logic.install_window import decide_install_start, parse_cron
from patchpilot.logic.platforms import operating_system_of
from patchpilot.logic.rollout_plan import plan_rollout
from patchpilot.logic.stage_plan import SCAN_MINUTES, rate_limit
from patchpilot.models.compliance import MissingPatch, PatchStateCounts
from patchpilot.models.exceptions import InvalidRolloutRequest, UnsupportedSchedule
from patchpilot.models.plan_preview import (
    OsPreview,
    PlannedPatch,
    PlanPreview,
    StagePreview,
    StageTimeline,
    StartReason,
)
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import (
    RolloutRequest,
    RunContext,
    StageCatalog,
    StageDefinition,
    StagePlan,
    StageStepRequest,
)

TO_INSTALL = ("Missing", "Failed")
_NOT_REACHED = "not reached: an earlier stage would stop the rollout"
MAX_DECISIONS = 50  # window openings and calendar transitions a stage may wait through before the plan gives up
DEFAULT_APPROVAL_WAIT = timedelta(hours=4)
STALE_SCAN = timedelta(hours=26)
_START_REASONS: dict[str, StartReason] = {
    "no_window": "no_window",
    "window_open": "window_open",
    "window_closed": "window_closed",
    "past_cutoff": "past_cutoff",
    "calendar_closed": "calendar_closed",
}
_SEVERITY_RANK = {"critical": 0, "important": 1, "high": 1, "moderate": 2, "medium": 2, "low": 3}


@dataclass(frozen=True)
class PlanOptions:
    """What the preview assumes: the approval wait, the patch group tag, when a scan is stale."""

    approval_wait: timedelta = DEFAULT_APPROVAL_WAIT
    patch_group_tag_key: str = "PatchGroup"
    stale_scan: timedelta = STALE_SCAN


@dataclass(frozen=True)
class PlanPorts:
    """Where the preview reads the fleet and the change calendar (the Lambda functions' own adapters)."""

    directory: CommandDirectory
    source: FleetComplianceSource
    calendar: ChangeCalendar


class _At(Clock):
    """A moment of the plan: the decision is asked as the state machine would ask it then."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self) -> datetime:
        return self._moment

    def wait_timestamp(self, moment: datetime) -> datetime:
        return moment


def scheduled_start(schedule: str, cycle: str, timezone: str = "UTC") -> datetime:
    """When the monthly rollout schedule fires in a cycle's month.

    Parameters
    ----------
    schedule : str
        The EventBridge Scheduler cron expression, e.g. ``cron(0 20 ? * TUE#2 *)``.
    cycle : str
        ``YYYY-MM``.
    timezone : str
        The schedule's ``ScheduleExpressionTimezone``.

    Returns
    -------
    datetime
        The moment in UTC.

    Raises
    ------
    InvalidRolloutRequest
        `cycle` is not ``YYYY-MM``.
    UnsupportedSchedule
        The schedule is not a fixed-time monthly cron, or never fires in that month.
    """
    parts = cycle.split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2 or not all(p.isdigit() for p in parts):
        raise InvalidRolloutRequest(f"invalid cycle {cycle!r} (expected YYYY-MM, e.g. 2026-12)")
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12 or year < 2000:
        raise InvalidRolloutRequest(f"invalid cycle {cycle!r} (expected YYYY-MM, e.g. 2026-12)")
    cron = parse_cron(schedule)
    zone = ZoneInfo(timezone)
    for day in range(1, 32):
        try:
            candidate = date(year, month, day)
        except ValueError:
            break
        if cron.matches(candidate):
            fired = datetime(year, month, day, cron.hour, cron.minute, tzinfo=zone)
            return fired.astimezone(UTC)
    raise UnsupportedSchedule(f"{schedule!r} does not fire in {cycle}")


def next_cycle(schedule: str, now: datetime, timezone: str = "UTC") -> str:
    """The cycle the schedule starts next: this month's unless it already started, else next month's."""
    this_month = f"{now.year:04d}-{now.month:02d}"
    if scheduled_start(schedule, this_month, timezone) > now:
        return this_month
    return f"{now.year + now.month // 12:04d}-{now.month % 12 + 1:02d}"


def aggregate_patches(rows: Iterable[tuple[str, MissingPatch]]) -> list[PlannedPatch]:
    """Patches lacking on a set of instances, one row per patch with how many instances lack it.

    Parameters
    ----------
    rows : Iterable[tuple[str, MissingPatch]]
        (instance id, a patch the instance's last scan reports Missing or Failed); other states are ignored.

    Returns
    -------
    list[PlannedPatch]
        Most severe first, then the most widespread, then by id; CVEs are the union over the rows.
    """
    instances: dict[str, set[str]] = defaultdict(set)
    failed: dict[str, set[str]] = defaultdict(set)
    first: dict[str, MissingPatch] = {}
    cves: dict[str, set[str]] = defaultdict(set)
    for instance_id, patch in rows:
        if patch.state not in TO_INSTALL:
            continue
        first.setdefault(patch.patch_id, patch)
        instances[patch.patch_id].add(instance_id)
        cves[patch.patch_id].update(patch.cve_ids)
        if patch.state == "Failed":
            failed[patch.patch_id].add(instance_id)
    planned = [
        PlannedPatch(
            patch_id=patch_id,
            title=patch.title,
            classification=patch.classification,
            severity=patch.severity,
            cve_ids=sorted(cves[patch_id]),
            instances=len(instances[patch_id]),
            failed_on=len(failed[patch_id]),
        )
        for patch_id, patch in first.items()
    ]
    return sorted(planned, key=lambda p: (_SEVERITY_RANK.get(p.severity.lower(), 4), -p.instances, p.patch_id))


def _lacks_any(state: PatchStateCounts) -> bool:
    return bool(state.missing + state.failed)


@dataclass(frozen=True)
class GroupFleet:
    """A patch group as the preview sees it."""

    instances: int
    operating_systems: list[OsPreview]
    distinct_patches: int
    oldest_scan: datetime | None
    warnings: list[str]


def read_group(stage: StageDefinition, ports: PlanPorts, options: PlanOptions, now: datetime) -> GroupFleet:
    """The stage's managed instances per OS and the patches their last scans report lacking.

    The instances are the ones the stage step would target (DescribeInstanceInformation with the patch group tag);
    DescribeInstancePatches is read only for instances whose report counts Missing or Failed patches. A production
    stage receives only its eligible classifications and severities (the install list's filter): others are left out
    and counted in a warning.
    """
    group = stage.patch_group
    managed = ports.directory.managed_instances(options.patch_group_tag_key, group)
    states = ports.source.patch_states(sorted(i.instance_id for i in managed)) if managed else {}
    by_os: dict[str, list[ManagedInstance]] = defaultdict(list)
    for instance in managed:
        by_os[operating_system_of(instance.platform_type, instance.platform_name, instance.platform_version)].append(
            instance
        )
    systems = []
    held_back: set[str] = set()
    for os_name in sorted(by_os):
        members = by_os[os_name]
        lacking = [
            (i.instance_id, patch)
            for i in members
            if i.instance_id in states and _lacks_any(states[i.instance_id])
            for patch in ports.source.lacking_patches(i.instance_id)
        ]
        held_back.update(p.patch_id for _, p in lacking if not is_eligible(p.classification, p.severity, stage))
        lacking = [(i, p) for i, p in lacking if is_eligible(p.classification, p.severity, stage)]
        systems.append(
            OsPreview(
                operating_system=os_name,
                instances=len(members),
                scanned=sum(1 for i in members if i.instance_id in states),
                offline=sum(1 for i in members if i.ping_status != "Online"),
                patches=aggregate_patches(lacking),
            )
        )
    scans = [state.operation_end for state in states.values()]
    oldest = min(scans) if scans else None
    distinct = len({p.patch_id for system in systems for p in system.patches})
    warnings = _fleet_warnings(group, systems, oldest, options, now)
    if held_back:
        warnings.append(
            f"{len(held_back)} other patch(es) the scan reports missing are outside the classifications/severities "
            "this production stage receives: not installed"
        )
    return GroupFleet(len(managed), systems, distinct, oldest, warnings)


def _fleet_warnings(
    group: str, systems: list[OsPreview], oldest: datetime | None, options: PlanOptions, now: datetime
) -> list[str]:
    warnings = []
    total = sum(s.instances for s in systems)
    if total == 0:
        warnings.append(
            f"no managed instance has tag {options.patch_group_tag_key}={group}: the rollout stops at this stage "
            "(NoInstancesInPatchGroup)"
        )
    unscanned = sum(s.instances - s.scanned for s in systems)
    if unscanned:
        warnings.append(f"{unscanned} instance(s) never scanned: their missing patches are unknown")
    offline = sum(s.offline for s in systems)
    if offline:
        warnings.append(f"{offline} instance(s) not Online: their install may end DeliveryTimedOut")
    unknown = sum(s.instances for s in systems if s.operating_system == "UNKNOWN")
    if unknown:
        warnings.append(f"{unknown} instance(s) on an operating system PatchPilot has no baseline for")
    if oldest is not None and now - oldest > options.stale_scan:
        hours = round((now - oldest).total_seconds() / 3600)
        warnings.append(f"the oldest scan is {hours} h old: the missing patches may be out of date")
    return warnings


@dataclass(frozen=True)
class InstallStartAt:
    """When a stage's install would start, why it first waited, and the window it starts in."""

    starts_at: datetime
    first_reason: StartReason
    opens_at: datetime | None
    cutoff_at: datetime | None


def install_start(request: StageStepRequest, ready: datetime, calendar: ChangeCalendar) -> InstallStartAt:
    """When the stage's install would start if the stage were ready at `ready`.

    The window decision of the state machine's Plan Stage Step, asked at `ready` and again at each moment it says to
    wait for (the Wait state's timestamp), until it says start now.

    Raises
    ------
    UnsupportedSchedule
        The window never takes the install within `MAX_DECISIONS` decisions.
    """
    at, first = ready, None
    for _ in range(MAX_DECISIONS):
        decision = decide_install_start(request, _At(at), calendar)
        first = first or decision.reason
        if decision.start_now:
            if first not in _START_REASONS:
                raise UnsupportedSchedule(f"stage {request.stage.name}: a patch step starts by {first}, not a window")
            return InstallStartAt(at, _START_REASONS[first], decision.opens_at, decision.cutoff_at)
        assert decision.wait_until is not None  # a decision that does not start now names until when it waits
        at = datetime.fromisoformat(decision.wait_until)
    raise UnsupportedSchedule(f"stage {request.stage.name}: no install start within {MAX_DECISIONS} window decisions")


def stage_timeline(
    run: RunContext, stage: StagePlan, ready: datetime, instances: int, calendar: ChangeCalendar, options: PlanOptions
) -> StageTimeline:
    """A stage's expected run: approval gate, window, install waves, post-patch scan, health, bake, verify.

    Parameters
    ----------
    run, stage
        As the rollout planner plans them (bake overrides applied).
    ready : datetime
        When the previous stage passed (the cycle's start for the first stage).
    instances : int
        The stage's targets: waves of ``MaxConcurrency`` instances, ``install_minutes`` each (the same model that sizes
        the install's delivery timeout), then the scan (``SCAN_MINUTES`` per wave) and the health commands (their
        timeout per wave: an upper bound).
    calendar : ChangeCalendar
        The stage's change calendar, asked at the future moments the stage would start at.
    options : PlanOptions
        The assumed approval wait.

    Returns
    -------
    StageTimeline
        The stage's moments.
    """
    requested = approved = None
    if stage.requires_approval:
        requested, approved = ready, ready + options.approval_wait
    start = install_start(StageStepRequest(run=run, stage=stage, phase_set="patch"), approved or ready, calendar)
    waves = math.ceil(instances / rate_limit(stage.max_concurrency, instances)) if instances else 0
    health = stage.health_check.timeout_seconds if stage.health_check else 0
    patched = start.starts_at + timedelta(seconds=waves * (stage.install_minutes * 60 + SCAN_MINUTES * 60 + health))
    bake_ends = patched + timedelta(seconds=stage.bake_seconds)
    return StageTimeline(
        ready_at=ready,
        approval_requested_at=requested,
        approved_at=approved,
        install_starts_at=start.starts_at,
        start_reason=start.first_reason,
        window_opens_at=start.opens_at,
        window_cutoff_at=start.cutoff_at,
        waves=waves,
        patched_at=patched,
        bake_ends_at=bake_ends,
        passed_at=bake_ends + timedelta(seconds=waves * health),
    )


def _assumptions(options: PlanOptions, catalog_stages: list[StagePlan], cycle_start: datetime) -> list[str]:
    notes = [
        f"the cycle starts at {cycle_start:%Y-%m-%d %H:%M} UTC",
        "patches: what each instance's last scan reports Missing or Failed under its group's baseline (the baseline "
        "decides approval, e.g. prod: security Critical/Important after 7 days); patches approved after that scan "
        "appear in the stage's own scan",
        "production stages install only the patch set their test stage froze (InstallOverrideList), within what "
        "their own baseline approves",
        "install time: waves of MaxConcurrency instances, install_minutes each, plus a 10-minute scan and the health "
        "commands' timeout per wave",
    ]
    if any(stage.requires_approval for stage in catalog_stages):
        hours = options.approval_wait.total_seconds() / 3600
        notes.append(f"an approval gate is answered {hours:g} h after it is asked (assumed; --approval-wait)")
    return notes


def _against_frozen_set(fleet: GroupFleet, frozen: set[str], test_stage: str) -> GroupFleet:
    """A production stage's patches marked by whether the last test stage lacks them too (its frozen set's source)."""
    systems = [
        system.model_copy(
            update={"patches": [p.model_copy(update={"in_test_stage": p.patch_id in frozen}) for p in system.patches]}
        )
        for system in fleet.operating_systems
    ]
    untested = {p.patch_id for system in systems for p in system.patches if not p.in_test_stage}
    warnings = list(fleet.warnings)
    if untested:
        warnings.append(
            f"{len(untested)} patch(es) are not missing on the last test stage ({test_stage}): production installs "
            "only the set that stage freezes, so they are likely left out"
        )
    return GroupFleet(fleet.instances, systems, fleet.distinct_patches, fleet.oldest_scan, warnings)


def preview_plan(
    catalog: StageCatalog,
    request: RolloutRequest,
    cycle_start: datetime,
    ports: PlanPorts,
    options: PlanOptions = PlanOptions(),
    now: datetime | None = None,
) -> PlanPreview:
    """What a cycle would do, before it starts.

    Parameters
    ----------
    catalog : StageCatalog
        The deployed stage catalog.
    request : RolloutRequest
        The run as it would be started: its id (the cycle), its stages and bake overrides (default: every stage,
        the catalog's bakes).
    cycle_start : datetime
        When the cycle would start (the monthly schedule, or now for a manual start).
    ports : PlanPorts
        The fleet (managed instances, patch reports, missing patches) and the change calendar.
    options : PlanOptions
        Assumptions: the approval wait, the patch group tag, when a scan is stale.
    now : datetime, optional
        When the preview is made (scan ages); default: `cycle_start`.

    Returns
    -------
    PlanPreview
        Per stage its fleet per OS, the patches to install, its timeline; the cycle's end and expected duration.

    Raises
    ------
    InvalidRolloutRequest
        An emergency run, unknown stages, or production without a test stage before it (as the start would refuse
        them).
    UnsupportedSchedule
        A stage's window cannot be computed.
    """
    if request.mode == "emergency":
        raise InvalidRolloutRequest("the plan previews a scheduled or manual cycle; an emergency run starts at once")
    plan = plan_rollout(request, catalog, cycle_start)
    moment = now or cycle_start
    stages: list[StagePreview] = []
    ready: datetime | None = cycle_start
    tested: set[str] = set()
    frozen: set[str] | None = None
    last_test = ""
    for stage in plan.stages:
        fleet = read_group(stage, ports, options, moment)
        if stage.role == "test":
            tested.update(s.operating_system for s in fleet.operating_systems if s.instances)
            frozen = {p.patch_id for s in fleet.operating_systems for p in s.patches}
            last_test = stage.name
        elif frozen is not None:
            fleet = _against_frozen_set(fleet, frozen, last_test)
        untested = [s.operating_system for s in fleet.operating_systems if s.operating_system not in tested]
        if stage.role == "production" and untested:
            fleet.warnings.append(
                f"no instance of {', '.join(untested)} is patched in a test stage of this run: "
                "its patches were not verified before production"
            )
        timeline = None
        if ready is not None and fleet.instances:
            timeline = stage_timeline(plan.run, stage, ready, fleet.instances, ports.calendar, options)
        ready = timeline.passed_at if timeline is not None else None
        stages.append(
            StagePreview(
                name=stage.name,
                role=stage.role,
                patch_group=stage.patch_group,
                requires_approval=stage.requires_approval,
                max_concurrency=stage.max_concurrency,
                bake_seconds=stage.bake_seconds,
                install_minutes=stage.install_minutes,
                instances=fleet.instances,
                operating_systems=fleet.operating_systems,
                distinct_patches=fleet.distinct_patches,
                oldest_scan=fleet.oldest_scan,
                timeline=timeline,
                warnings=fleet.warnings if timeline or not fleet.instances else [*fleet.warnings, _NOT_REACHED],
            )
        )
    return PlanPreview(
        cycle=request.run_id,
        generated_at=moment,
        cycle_starts_at=cycle_start,
        cycle_ends_at=ready,
        expected_hours=round((ready - cycle_start).total_seconds() / 3600, 1) if ready is not None else None,
        stages=stages,
        assumptions=_assumptions(options, plan.stages, cycle_start),
    )
