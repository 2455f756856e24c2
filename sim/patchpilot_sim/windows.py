"""Time for the rollout's window decisions in the local runtime, and an SSM Change Calendar stand-in (moto lacks it).

A window wait is pure waiting, like a bake: nothing runs on the fleet meanwhile. The local runtime compresses it the
same honest way: the decision is computed against the simulated clock, the simulated clock jumps to the moment the
state machine waits for, and the Wait state's wall-clock timestamp is the present, so the real Wait state runs and
ends at once. The simulated clock then holds still until the next command reaches the fleet: the in-process latency
of planning and sending (milliseconds in AWS, magnified by the time scale here) is not simulated time, so the install
is requested at the moment the window opened (or the calendar opened again). A decision to start now holds the clock
the same way: at a time scale of 3,600 a tenth of a real second between "the window is open" and SendCommand would be
six simulated minutes, enough to carry a decision taken just before the cutoff past it on a busy machine.
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

# How long a decision's hold may outlive a command that never comes (an execution that failed after deciding). On a
# loaded 2-core machine planning, tagging canaries and sending can take several real seconds: a shorter hold lapsed
# there and let a decision taken in the window carry its install past the cutoff.
DECISION_HOLD_REAL_SECONDS = 30.0


class SimulatedWallClock(Clock):
    """The Clock port on the simulated clock."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.waits: list[tuple[datetime, datetime]] = []  # (decided at, waits until), simulated time

    def now(self) -> datetime:
        self.clock.hold(DECISION_HOLD_REAL_SECONDS)  # the decision's moment is the command's (SendCommand releases)
        return self.clock.now()

    def wait_timestamp(self, moment: datetime) -> datetime:
        self.clock.hold(DECISION_HOLD_REAL_SECONDS)
        now = self.clock.now()
        self.waits.append((now, moment))
        self.clock.jump((moment - now).total_seconds())
        return datetime.now(UTC)


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
