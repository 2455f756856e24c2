"""When a stage's install may start: inside its patch group's maintenance window, before the cutoff, calendar OPEN.

The window is the one rendered into AWS::SSM::MaintenanceWindow (cron `Schedule` in UTC, `ScheduleOffset` days after
the cron date, `Duration` and `Cutoff` hours: no new task starts in the last `Cutoff` hours). An SSM Change Calendar,
when configured, holds installs back while it is CLOSED (SSM user guide: systems-manager-change-calendar.md,
change-calendar-getstate.md).
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from patchpilot.integrations.ports import ChangeCalendar, Clock
from patchpilot.models.exceptions import UnsupportedSchedule
from patchpilot.models.rollout import InstallStart, InstallWindow, StageStepRequest

WaitReason = Literal["window_closed", "past_cutoff", "calendar_closed"]
DAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
SEARCH_DAYS = 800  # a monthly window (Patch Tuesday) recurs well within this
_CRON = re.compile(r"^cron\((\d{1,2}) (\d{1,2}) (\S+) (\S+) (\S+) (\S+)\)$")
_DAY_OF_WEEK = re.compile(r"^([A-Z]{3}|[1-7])(?:#([1-5]))?$")


@dataclass(frozen=True)
class CronSchedule:
    """The subset of EventBridge/SSM cron that maintenance windows use: a fixed time on matching days."""

    minute: int
    hour: int
    day_of_month: int | None
    day_of_week: int | None  # 1 = SUN ... 7 = SAT, as in AWS cron
    nth: int | None  # TUE#2: the second Tuesday of the month

    def matches(self, day: date) -> bool:
        """Whether the schedule fires on `day`."""
        if self.day_of_month is not None and day.day != self.day_of_month:
            return False
        if self.day_of_week is not None and (day.weekday() + 1) % 7 + 1 != self.day_of_week:
            return False
        return self.nth is None or (day.day - 1) // 7 + 1 == self.nth


def parse_cron(expression: str) -> CronSchedule:
    """Parse a maintenance window cron expression (minutes, hours, day of month or of week; every month, year).

    Parameters
    ----------
    expression : str
        ``cron(0 3 ? * TUE#2 *)``, ``cron(30 22 ? * SUN *)``, ``cron(0 1 15 * ? *)``...

    Returns
    -------
    CronSchedule
        The parsed schedule.

    Raises
    ------
    UnsupportedSchedule
        A rate expression, ranges/lists/steps, or a month/year restriction.
    """
    match = _CRON.match(expression)
    if match is None:
        raise UnsupportedSchedule(f"{expression!r}: only cron(minute hour day-of-month month day-of-week year)")
    minute, hour, dom, month, dow, year = match.groups()
    if month != "*" or year != "*" or not (0 <= int(minute) <= 59 and 0 <= int(hour) <= 23):
        raise UnsupportedSchedule(f"{expression!r}: a fixed minute and hour of every month and year only")
    day_of_month = int(dom) if dom.isdigit() and 1 <= int(dom) <= 31 else None
    week = _DAY_OF_WEEK.match(dow)
    known_day = week is not None and (week.group(1) in DAY_NAMES or week.group(1).isdigit())
    if (day_of_month is None and dom not in ("?", "*")) or (dow not in ("?", "*") and not known_day):
        raise UnsupportedSchedule(f"{expression!r}: unsupported day-of-month {dom!r} or day-of-week {dow!r}")
    day_of_week = nth = None
    if week is not None and known_day:
        name = week.group(1)
        day_of_week = DAY_NAMES[name] if name in DAY_NAMES else int(name)
        nth = int(week.group(2)) if week.group(2) else None
    return CronSchedule(int(minute), int(hour), day_of_month, day_of_week, nth)


@dataclass(frozen=True)
class WindowOccurrence:
    """One opening of a maintenance window."""

    opens_at: datetime
    cutoff_at: datetime
    closes_at: datetime


def occurrences(window: InstallWindow, since: datetime) -> Iterator[WindowOccurrence]:
    """The window's openings whose window has not closed at `since`, in order (UTC, `since` timezone-aware)."""
    schedule = parse_cron(window.schedule)
    first_day = (since - timedelta(days=window.schedule_offset_days + 2)).date()
    for offset in range(SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        if not schedule.matches(day):
            continue
        fired = datetime(day.year, day.month, day.day, schedule.hour, schedule.minute, tzinfo=since.tzinfo)
        opens = fired + timedelta(days=window.schedule_offset_days)
        closes = opens + timedelta(hours=window.duration_hours)
        if closes > since:
            yield WindowOccurrence(opens, closes - timedelta(hours=window.cutoff_hours), closes)


def _wait(reason: WaitReason, until: datetime, clock: Clock, occurrence: WindowOccurrence) -> InstallStart:
    return InstallStart(
        start_now=False,
        reason=reason,
        wait_until=clock.wait_timestamp(until).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        opens_at=occurrence.opens_at,
        cutoff_at=occurrence.cutoff_at,
    )


def decide_install_start(request: StageStepRequest, clock: Clock, calendar: ChangeCalendar) -> InstallStart:
    """Whether a stage step may send its commands now, or until when it waits before asking again.

    A patch step starts only inside its patch group's window, before the window's cutoff, while the change calendar
    (if the stage has one) is OPEN. Otherwise it waits for the next window opening (or, in an open window, for the
    calendar to open again before the cutoff). A verify step (health check after the bake) starts at once, and so
    does an emergency run: it is out-of-band by definition (on-call started it for an actively exploited flaw).

    Parameters
    ----------
    request : StageStepRequest
        The run, the stage (its window and calendar) and the step.
    clock : Clock
        The time to decide for, and the wall-clock timestamp a Wait state needs to reach a moment of it.
    calendar : ChangeCalendar
        GetCalendarState.

    Returns
    -------
    InstallStart
        ``start_now``, or ``wait_until`` (a Wait state timestamp) with the opening and cutoff it waits for.

    Raises
    ------
    UnsupportedSchedule
        The window's schedule cannot be computed, or it never opens within ``SEARCH_DAYS``.
    """
    stage = request.stage
    if request.phase_set == "verify":
        return InstallStart(start_now=True, reason="verify_step")
    if request.run.mode == "emergency":
        return InstallStart(start_now=True, reason="emergency")
    now = clock.now()
    windows = _open_or_next_windows(stage.window, now)
    current = next(windows, None)
    if current is None:
        raise UnsupportedSchedule(f"stage {stage.name}: its window never opens within {SEARCH_DAYS} days")
    if current.opens_at > now:
        assert stage.window is not None  # without a window, the current one is open now
        in_closing = any(o.opens_at <= now < o.closes_at for o in occurrences(stage.window, now))
        return _wait("past_cutoff" if in_closing else "window_closed", current.opens_at, clock, current)
    if stage.change_calendar is not None:
        state = calendar.state(stage.change_calendar, now)
        if not state.open:
            return _calendar_hold(state.next_transition, current, windows, clock)
    if stage.window is None:
        return InstallStart(start_now=True, reason="no_window")
    return InstallStart(start_now=True, reason="window_open", opens_at=current.opens_at, cutoff_at=current.cutoff_at)


def _open_or_next_windows(window: InstallWindow | None, now: datetime) -> Iterator[WindowOccurrence]:
    """The windows an install may still start in (the one open now first); without a window, always open."""
    if window is None:
        day = timedelta(days=1)
        return (WindowOccurrence(now + n * day, now + (n + 1) * day, now + (n + 1) * day) for n in range(SEARCH_DAYS))
    return (o for o in occurrences(window, now) if o.cutoff_at > now)


def _calendar_hold(
    transition: datetime | None, current: WindowOccurrence, windows: Iterator[WindowOccurrence], clock: Clock
) -> InstallStart:
    """The calendar is CLOSED: wait for it to open before the cutoff, else for the next window (and ask again)."""
    if transition is not None and transition < current.cutoff_at:
        return _wait("calendar_closed", transition, clock, current)
    following = next(windows, None)
    if following is None:
        raise UnsupportedSchedule("the change calendar stays closed through every window")
    return _wait("calendar_closed", following.opens_at, clock, following)
