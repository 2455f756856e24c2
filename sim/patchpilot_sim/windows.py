"""Time for the rollout's window decisions in the local runtime, and an SSM Change Calendar stand-in (moto lacks it).

The handlers' Clock port reads the simulated clock. A window wait is a Wait state with a TimestampPath: the handler
returns the simulated moment to wait for, and moto's engine (on the simulated clock, see moto_clock.py) waits until
then in simulated time. In-process latency between a decision and its command costs no simulated time, so a decision
taken in the window sends its install in the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from patchpilot.integrations.ports import Clock
from patchpilot_sim.clock import SimClock
from patchpilot_sim.fleet import SimulatedApiError
from patchpilot_sim.template import SamTemplate


class SimulatedWallClock(Clock):
    """The Clock port on the simulated clock."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.waits: list[tuple[datetime, datetime]] = []  # (decided at, waits until), simulated time

    def now(self) -> datetime:
        return self.clock.now()

    def wait_timestamp(self, moment: datetime) -> datetime:
        self.waits.append((self.clock.now(), moment))
        return moment


@dataclass
class Calendar:
    """A DEFAULT_OPEN change calendar with closed periods (its events), in simulated time."""

    name: str
    closed: list[tuple[datetime, datetime]] = field(default_factory=list)

    def is_open(self, at: datetime) -> bool:
        return not any(start <= at < end for start, end in self.closed)

    def next_transition(self, at: datetime) -> datetime | None:
        later = [moment for period in self.closed for moment in period if moment > at]
        return min(later) if later else None


class ChangeCalendarStandIn:
    """GetCalendarState for the calendars the scenario defines (SSM user guide: change-calendar-getstate.md).

    With several calendars the state is OPEN only when every one is OPEN; `AtTime` defaults to now.
    """

    operations = frozenset({"GetCalendarState"})

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.calendars: dict[str, Calendar] = {}
        self.queries: list[tuple[str, datetime, str]] = []  # (calendar, at, state) as answered

    def add(self, calendar: Calendar) -> None:
        self.calendars[calendar.name] = calendar

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation != "GetCalendarState":
            raise NotImplementedError(operation)
        names = params.get("CalendarNames") or []
        if not names:
            raise SimulatedApiError("ValidationException", "CalendarNames is required.")
        unknown = [name for name in names if name.rsplit("/", 1)[-1] not in self.calendars]
        if unknown:
            raise SimulatedApiError("InvalidDocument", f"Calendar(s) not found: {', '.join(unknown)}")
        at = _parse_time(params["AtTime"]) if params.get("AtTime") else self.clock.now()
        calendars = [self.calendars[name.rsplit("/", 1)[-1]] for name in names]
        state = "OPEN" if all(c.is_open(at) for c in calendars) else "CLOSED"
        transitions = [t for c in calendars if (t := c.next_transition(at)) is not None]
        for name in names:
            self.queries.append((name, at, state))
        answer = {"State": state, "AtTime": at.isoformat()}
        if transitions:
            answer["NextTransitionTime"] = min(transitions).isoformat()
        return answer


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise SimulatedApiError("ValidationException", f"AtTime {text!r} is not ISO 8601.") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_PATCH_TUESDAY_CRON = re.compile(r"^cron\((\d+) (\d+) \? \* TUE#([1-5]) \*\)$")


@dataclass(frozen=True)
class DeployedWindow:
    """A patch group's AWS::SSM::MaintenanceWindow as the template deploys it (an N-th Tuesday cron + offset)."""

    group: str
    week: int
    hour: int
    minute: int
    offset_days: int
    duration_hours: int
    cutoff_hours: int

    def opening(self, year: int, month: int) -> datetime:
        """The window's opening in a month: the N-th Tuesday at the cron's time, plus ScheduleOffset days."""
        first = datetime(year, month, 1, self.hour, self.minute, tzinfo=UTC)
        first_tuesday = first + timedelta(days=(1 - first.weekday()) % 7)
        return first_tuesday + timedelta(weeks=self.week - 1, days=self.offset_days)

    def takes_installs_at(self, moment: datetime) -> bool:
        """Whether an install may start at `moment`: after the opening, before the cutoff."""
        for year, month in ((moment.year, moment.month), _previous_month(moment)):
            opens = self.opening(year, month)
            if opens <= moment < opens + timedelta(hours=self.duration_hours - self.cutoff_hours):
                return True
        return False

    def first_opening_after(self, moment: datetime) -> datetime:
        year, month = moment.year, moment.month
        while (opens := self.opening(year, month)) <= moment:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return opens


def _previous_month(moment: datetime) -> tuple[int, int]:
    return (moment.year - 1, 12) if moment.month == 1 else (moment.year, moment.month - 1)


def deployed_windows(template: SamTemplate) -> dict[str, DeployedWindow]:
    """Every patch group's maintenance window from the template (the ground truth installs are judged against)."""
    windows = {}
    for resource in template.of_type("AWS::SSM::MaintenanceWindow").values():
        props = resource["Properties"]
        group = next(tag["Value"] for tag in props["Tags"] if tag["Key"] == "patch-group")
        match = _PATCH_TUESDAY_CRON.match(props["Schedule"])
        if match is None:
            raise ValueError(f"window of {group}: unexpected schedule {props['Schedule']!r}")
        windows[group] = DeployedWindow(
            group=group,
            week=int(match.group(3)),
            hour=int(match.group(2)),
            minute=int(match.group(1)),
            offset_days=int(props.get("ScheduleOffset", 0)),
            duration_hours=int(props["Duration"]),
            cutoff_hours=int(props["Cutoff"]),
        )
    return windows
