"""SSM Change Calendar: the GetCalendarState stand-in (moto lacks it) and the adapter's request, on botocore."""

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from patchpilot.integrations.ssm_calendar import SsmChangeCalendar
from patchpilot_sim.clock import SimClock
from patchpilot_sim.fleet import SimulatedApiError
from patchpilot_sim.windows import Calendar, ChangeCalendarStandIn, SimulatedWallClock

OPENS = datetime(2026, 12, 11, 3, 0, tzinfo=UTC)
FREEZE = (OPENS - timedelta(hours=1), OPENS + timedelta(hours=1, minutes=30))


def _stand_in() -> ChangeCalendarStandIn:
    calendars = ChangeCalendarStandIn(SimClock(time_scale=1.0, start=OPENS))
    calendars.add(Calendar("freeze", closed=[FREEZE]))
    calendars.add(Calendar("always-open"))
    return calendars


def test_get_calendar_state_is_closed_inside_an_event_and_names_the_next_transition() -> None:
    answer = _stand_in().handle("GetCalendarState", {"CalendarNames": ["freeze"], "AtTime": OPENS.isoformat()})
    assert answer == {"State": "CLOSED", "AtTime": OPENS.isoformat(), "NextTransitionTime": FREEZE[1].isoformat()}
    after = _stand_in().handle("GetCalendarState", {"CalendarNames": ["freeze"], "AtTime": FREEZE[1].isoformat()})
    assert after["State"] == "OPEN"
    assert "NextTransitionTime" not in after


def test_get_calendar_state_of_several_calendars_is_open_only_if_all_are() -> None:
    names = ["always-open", "arn:aws:ssm:us-east-1:123456789012:document/freeze"]
    answer = _stand_in().handle("GetCalendarState", {"CalendarNames": names, "AtTime": "2026-12-11T03:30:00Z"})
    assert answer["State"] == "CLOSED"


def test_get_calendar_state_rejects_an_unknown_calendar() -> None:
    with pytest.raises(SimulatedApiError, match="not found"):
        _stand_in().handle("GetCalendarState", {"CalendarNames": ["nope"]})


def test_change_calendar_adapter_asks_at_the_decision_time_and_parses_the_answer() -> None:
    client = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_calendar_state",
            {"State": "CLOSED", "AtTime": OPENS.isoformat(), "NextTransitionTime": FREEZE[1].isoformat()},
            {"CalendarNames": ["freeze"], "AtTime": OPENS.isoformat()},
        )
        state = SsmChangeCalendar(client).state("freeze", OPENS)
    assert (state.open, state.next_transition) == (False, FREEZE[1])


def test_simulated_wall_clock_jumps_to_the_window_and_holds_until_released() -> None:
    clock = SimClock(time_scale=3600.0, start=OPENS - timedelta(days=2))
    wall = SimulatedWallClock(clock)
    before = datetime.now(UTC)
    stamp = wall.wait_timestamp(OPENS)
    assert before <= stamp <= datetime.now(UTC)  # the real Wait state ends at once
    assert clock.now() == OPENS  # held at the opening: in-process latency is not simulated time
    clock.release()
    assert clock.now() >= OPENS


def test_simulated_wall_clock_holds_a_start_now_decision_until_the_command_is_sent() -> None:
    # Given a clock an hour of simulated time per real second
    clock = SimClock(time_scale=3600.0, start=OPENS)
    wall = SimulatedWallClock(clock)
    # When the stage planner reads the time and the machine is slow to send the command
    decided = wall.now()
    time.sleep(0.05)
    # Then the command still goes out at the decision's moment (3 simulated minutes would have passed otherwise)
    assert clock.now() == decided
    clock.release()
    time.sleep(0.01)
    assert clock.now() > decided
