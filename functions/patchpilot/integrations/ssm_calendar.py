"""SSM Change Calendar adapter of the ChangeCalendar port (GetCalendarState)."""

from datetime import datetime
from typing import TYPE_CHECKING

from patchpilot.integrations.ports import ChangeCalendar
from patchpilot.models.records import CalendarState

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class SsmChangeCalendar(ChangeCalendar):
    """GetCalendarState at an explicit time (ISO 8601), so the answer matches the moment the rollout decides for."""

    def __init__(self, client: "SSMClient") -> None:
        self._client = client

    def state(self, calendar: str, at: datetime) -> CalendarState:
        answer = self._client.get_calendar_state(CalendarNames=[calendar], AtTime=at.isoformat())
        transition = answer.get("NextTransitionTime")
        return CalendarState(
            open=answer["State"] == "OPEN",
            next_transition=datetime.fromisoformat(transition) if transition else None,
        )
