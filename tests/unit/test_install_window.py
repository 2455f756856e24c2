"""When a stage's install may start: its maintenance window (cron + offset, cutoff) and the change calendar."""

from datetime import UTC, date, datetime, timedelta

import pytest

from patchpilot.logic.install_window import decide_install_start, occurrences, parse_cron
from patchpilot.models.exceptions import UnsupportedSchedule
from patchpilot.models.rollout import InstallWindow, StageStepRequest
from tests.fakes import FakeCalendar, FixedClock
from tests.unit.test_rollout import _plan

# Patch Tuesday of December 2026 is the 8th; staging's window: TUE#2 03:00 + 3 days, 4 h, cutoff 1 h.
STAGING = InstallWindow(schedule="cron(0 3 ? * TUE#2 *)", schedule_offset_days=3, duration_hours=4, cutoff_hours=1)
OPENS = datetime(2026, 12, 11, 3, 0, tzinfo=UTC)


def _step(
    window: InstallWindow | None = STAGING,
    calendar: str | None = None,
    phase_set: str = "patch",
    **run: object,
) -> StageStepRequest:
    plan = _plan(**run)
    stage = plan.stages[0].model_copy(update={"window": window, "change_calendar": calendar})
    return StageStepRequest.model_validate({"run": plan.run, "stage": stage, "phase_set": phase_set})


def test_parse_cron_reads_the_rendered_patch_tuesday_schedule() -> None:
    schedule = parse_cron("cron(0 3 ? * TUE#2 *)")
    assert (schedule.minute, schedule.hour, schedule.day_of_week, schedule.nth) == (0, 3, 3, 2)
    assert schedule.matches(date(2026, 12, 8))
    assert not schedule.matches(date(2026, 12, 1))  # the first Tuesday
    assert parse_cron("cron(30 22 ? * SUN *)").matches(date(2026, 12, 13))
    assert parse_cron("cron(0 1 15 * ? *)").matches(date(2027, 1, 15))


@pytest.mark.parametrize("expression", ["rate(7 days)", "cron(0 3 ? 1-6 TUE *)", "cron(0 3 ? * MON-FRI *)"])
def test_parse_cron_rejects_schedules_it_cannot_compute(expression: str) -> None:
    with pytest.raises(UnsupportedSchedule, match=r"only cron|fixed minute|unsupported"):
        parse_cron(expression)


def test_occurrences_apply_the_schedule_offset_and_cutoff() -> None:
    first = next(occurrences(STAGING, datetime(2026, 11, 29, tzinfo=UTC)))
    assert first.opens_at == OPENS
    assert first.cutoff_at == OPENS + timedelta(hours=3)
    assert first.closes_at == OPENS + timedelta(hours=4)


def test_install_waits_for_the_next_window_opening() -> None:
    start = decide_install_start(_step(), FixedClock(datetime(2026, 12, 9, 20, 0, tzinfo=UTC)), FakeCalendar())
    assert (start.start_now, start.reason, start.wait_until) == (False, "window_closed", "2026-12-11T03:00:00Z")


def test_install_starts_inside_the_window_before_the_cutoff() -> None:
    start = decide_install_start(_step(), FixedClock(OPENS + timedelta(hours=2)), FakeCalendar())
    assert (start.start_now, start.reason, start.cutoff_at) == (True, "window_open", OPENS + timedelta(hours=3))


def test_install_never_starts_past_the_cutoff_it_waits_for_next_month() -> None:
    start = decide_install_start(_step(), FixedClock(OPENS + timedelta(hours=3, minutes=5)), FakeCalendar())
    assert (start.start_now, start.reason) == (False, "past_cutoff")
    assert start.opens_at == datetime(2027, 1, 15, 3, 0, tzinfo=UTC)  # Patch Tuesday 2027-01-12 + 3 days


def test_closed_change_calendar_delays_the_install_until_it_opens_before_the_cutoff() -> None:
    calendar = FakeCalendar([(OPENS - timedelta(hours=1), OPENS + timedelta(hours=1, minutes=30))])
    start = decide_install_start(_step(calendar="freeze"), FixedClock(OPENS), calendar)
    assert (start.start_now, start.reason, start.wait_until) == (False, "calendar_closed", "2026-12-11T04:30:00Z")
    assert calendar.asked == [("freeze", OPENS)]
    after = decide_install_start(_step(calendar="freeze"), FixedClock(OPENS + timedelta(hours=1, minutes=30)), calendar)
    assert after.start_now


def test_calendar_closed_past_the_cutoff_waits_for_the_next_window() -> None:
    calendar = FakeCalendar([(OPENS, OPENS + timedelta(days=2))])
    start = decide_install_start(_step(calendar="freeze"), FixedClock(OPENS), calendar)
    assert (start.start_now, start.reason) == (False, "calendar_closed")
    assert start.opens_at == datetime(2027, 1, 15, 3, 0, tzinfo=UTC)


def test_verify_steps_emergencies_and_stages_without_a_window_start_at_once() -> None:
    now = FixedClock(datetime(2026, 12, 9, 20, 0, tzinfo=UTC))
    assert decide_install_start(_step(phase_set="verify"), now, FakeCalendar()).reason == "verify_step"
    emergency = _step(mode="emergency", stages=["dev"], patch_ids=["KB5034441"])
    assert decide_install_start(emergency, now, FakeCalendar()).reason == "emergency"
    assert decide_install_start(_step(window=None), now, FakeCalendar()).reason == "no_window"


def test_stage_without_a_window_still_honours_a_closed_calendar() -> None:
    now = datetime(2026, 12, 9, 20, 0, tzinfo=UTC)
    calendar = FakeCalendar([(now - timedelta(hours=1), now + timedelta(hours=5))])
    start = decide_install_start(_step(window=None, calendar="freeze"), FixedClock(now), calendar)
    assert (start.start_now, start.wait_until) == (False, "2026-12-10T01:00:00Z")
