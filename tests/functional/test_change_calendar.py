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
    calendars = ChangeCalendarStandIn(SimClock(start=OPENS))
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


def test_simulated_wall_clock_wait_timestamp_is_the_simulated_moment_to_wait_for() -> None:
    # Given the simulated clock two days before the window opens
    clock = SimClock(start=OPENS - timedelta(days=2))
    wall = SimulatedWallClock(clock)
    # When the window planner asks for the Wait state's timestamp
    stamp = wall.wait_timestamp(OPENS)
    # Then the Wait state waits for the opening in simulated time (moto's engine runs on the simulated clock)
    assert stamp == OPENS
    assert wall.waits == [(OPENS - timedelta(days=2), OPENS)]
    assert clock.now() == OPENS - timedelta(days=2)


def test_simulated_wall_clock_decision_and_command_share_a_moment_however_slow_the_machine() -> None:
    # Given the stage planner reads the time and the machine is slow to send the command
    clock = SimClock(start=OPENS)
    wall = SimulatedWallClock(clock)
    decided = wall.now()
    time.sleep(0.05)
    # Then no simulated time passed (in-process latency is not simulated time)
    assert clock.now() == decided == OPENS
