"""The system clock adapter of the Clock port."""

from datetime import UTC, datetime

from patchpilot.integrations.ports import Clock


class SystemClock(Clock):
    """The Lambda's own clock: a Wait state ends at the very moment it names."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait_timestamp(self, moment: datetime) -> datetime:
        return moment
