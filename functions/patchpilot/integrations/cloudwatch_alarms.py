"""CloudWatch adapter of the AlarmMonitor port."""

from typing import TYPE_CHECKING

from patchpilot.integrations.ports import AlarmMonitor

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient


class CloudWatchAlarmMonitor(AlarmMonitor):
    """DescribeAlarms by name prefix, state ALARM, metric and composite alarms.

    DescribeAlarms returns only metric alarms unless `AlarmTypes` names `CompositeAlarm` (CloudWatch API reference,
    DescribeAlarms).
    """

    def __init__(self, client: "CloudWatchClient") -> None:
        self._client = client

    def alarms_in_alarm(self, name_prefix: str) -> list[str]:
        paginator = self._client.get_paginator("describe_alarms")
        return [
            alarm["AlarmName"]
            for page in paginator.paginate(
                AlarmNamePrefix=name_prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]
        ]
