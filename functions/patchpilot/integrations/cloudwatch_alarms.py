"""CloudWatch adapter of the AlarmMonitor port."""

from typing import TYPE_CHECKING

from patchpilot.integrations.ports import AlarmMonitor

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient


class CloudWatchAlarmMonitor(AlarmMonitor):
    """DescribeAlarms by name prefix, state ALARM."""

    def __init__(self, client: "CloudWatchClient") -> None:
        self._client = client

    def alarms_in_alarm(self, name_prefix: str) -> list[str]:
        paginator = self._client.get_paginator("describe_alarms")
        return [
            alarm["AlarmName"]
            for page in paginator.paginate(AlarmNamePrefix=name_prefix, StateValue="ALARM")
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]
        ]
