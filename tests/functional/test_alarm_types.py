"""The CloudWatch adapter asks for composite alarms too (moto lacks them: botocore Stubber checks the request)."""

import boto3
from botocore.stub import Stubber

from patchpilot.integrations.cloudwatch_alarms import CloudWatchAlarmMonitor


def test_alarm_monitor_includes_composite_alarms_in_alarm() -> None:
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_alarms",
            {
                "MetricAlarms": [{"AlarmName": "patchpilot-prod-1-5xx", "StateValue": "ALARM"}],
                "CompositeAlarms": [{"AlarmName": "patchpilot-prod-1-app", "StateValue": "ALARM"}],
            },
            {
                "AlarmNamePrefix": "patchpilot-prod-1",
                "StateValue": "ALARM",
                "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
            },
        )
        in_alarm = CloudWatchAlarmMonitor(client).alarms_in_alarm("patchpilot-prod-1")
        stubber.assert_no_pending_responses()
    assert in_alarm == ["patchpilot-prod-1-5xx", "patchpilot-prod-1-app"]
