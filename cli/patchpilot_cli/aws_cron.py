"""When an EventBridge Scheduler expression fires next: `cron(...)`, `rate(...)` and `at(...)`.

Cron fields as EventBridge Scheduler documents them (minutes, hours, day-of-month, month, day-of-week, year; `?` in
one of the two day fields; day-of-week 1-7 = SUN-SAT or SUN..SAT; `N#k` = the k-th weekday N of the month)
[EventBridge Scheduler user guide, "Schedule types" -> cron-based schedules]. `L` and `W` are not evaluated: the
answer is then None (the caller says it cannot tell), never a guess.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MONTHS = {
    m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_HORIZON_DAYS = 366 * 5


class UnsupportedExpression(ValueError):
    """An expression this evaluator does not compute (the caller reports it as unknown)."""


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    if field in ("*", "?"):
        return set(range(low, high + 1))
    found: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _number(first, names), _number(last, names)
        else:
            start = _number(part, names)
            end = high if step > 1 else start
        found.update(range(start, end + 1, step))
    return {v for v in found if low <= v <= high}


def _number(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise UnsupportedExpression(f"cannot evaluate {text!r}")
    return int(text)


def _weekday(day: datetime) -> int:
    """1 = Sunday ... 7 = Saturday (cron's numbering)."""
    return (day.weekday() + 1) % 7 + 1


def _day_matches(day: datetime, dom: str, dow: str) -> bool:
    if dom != "?":
        return day.day in _values(dom, 1, 31)
    if "#" in dow:
        weekday_text, nth = dow.split("#", 1)
        return _weekday(day) == _number(weekday_text, _DAYS) and (day.day - 1) // 7 + 1 == int(nth)
    return _weekday(day) in _values(dow, 1, 7, _DAYS)


def _next_cron(fields: list[str], after: datetime) -> datetime | None:
    if len(fields) != 6:
        raise UnsupportedExpression("a cron expression has six fields")
    minutes_f, hours_f, dom, month_f, dow, year_f = fields
    if any(mark in dom + dow for mark in ("L", "W")) or (dom != "?") == (dow != "?"):
        raise UnsupportedExpression("L/W or both day fields set")
    minutes, hours = sorted(_values(minutes_f, 0, 59)), sorted(_values(hours_f, 0, 23))
    months, years = _values(month_f, 1, 12, _MONTHS), _values(year_f, 1970, 2199)
    day = after.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(_HORIZON_DAYS):
        if day.year in years and day.month in months and _day_matches(day, dom, dow):
            for hour in hours:
                for minute in minutes:
                    moment = day.replace(hour=hour, minute=minute)
                    if moment > after:
                        return moment
        day += timedelta(days=1)
    return None


def next_fire_time(expression: str, timezone: str | None, after: datetime) -> datetime | None:
    """The first time after `after` (aware) that the expression fires, in UTC; None if it never fires again.

    Raises
    ------
    UnsupportedExpression
        For expressions outside what this evaluator computes.
    """
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UnsupportedExpression(f"unknown time zone {timezone!r}") from error
    match = re.fullmatch(r"(cron|rate|at)\((.*)\)", expression.strip())
    if not match:
        raise UnsupportedExpression(f"not a schedule expression: {expression!r}")
    kind, body = match.groups()
    local_after = after.astimezone(zone).replace(tzinfo=None)
    if kind == "at":
        moment = datetime.fromisoformat(body).replace(tzinfo=zone)
        return moment.astimezone(UTC) if moment > after else None
    if kind == "rate":
        raise UnsupportedExpression("a rate schedule fires relative to its creation time")
    found = _next_cron(body.split(), local_after)
    return found.replace(tzinfo=zone).astimezone(UTC) if found else None
