"""Thin boto3 readers for `patchpilot doctor`: one AWS question each, answered as the data the checks take.

Read-only: the only calls are Describe*/Get*/List*, SimulatePrincipalPolicy, and an SQS ReceiveMessage with
VisibilityTimeout 0 that peeks at a dead-letter queue (the messages stay, visible at once; their receive count grows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from patchpilot.integrations.dynamodb_exclusions import DynamoDBExclusionLedger
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot_cli.doctor_checks import (
    Baseline,
    DeadLetters,
    Ec2Instance,
    FleetView,
    FunctionActivity,
    ManagedNode,
    ScheduleState,
    Simulation,
)

BATCH = 50


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    resource_type: str
    physical_id: str


def stack_resources(cloudformation: Any, stack_name: str) -> dict[str, StackResource]:
    """The deployed stack's resources after the SAM transform (functions, their roles and rules included)."""
    found: dict[str, StackResource] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for item in page["StackResourceSummaries"]:
            found[item["LogicalResourceId"]] = StackResource(
                item["LogicalResourceId"], item["ResourceType"], item.get("PhysicalResourceId", "")
            )
    return found


def _metric_sum(cloudwatch: Any, metric: str, function_name: str, now: datetime, window: timedelta) -> int:
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)  # whole minutes: Lambda's metric resolution
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=end - window,
        EndTime=end,
        Period=int(window.total_seconds()),
        Statistics=["Sum"],
    )
    return int(sum(point.get("Sum", 0.0) for point in answer.get("Datapoints", [])))


def function_activity(
    cloudwatch: Any, logical_id: str, function_name: str, now: datetime, window: timedelta
) -> FunctionActivity:
    """Invocations and Errors (CloudWatch AWS/Lambda, Sum over the window) of one function."""
    return FunctionActivity(
        logical_id,
        function_name,
        invocations=_metric_sum(cloudwatch, "Invocations", function_name, now, window),
        errors=_metric_sum(cloudwatch, "Errors", function_name, now, window),
    )


def _reason(message: dict[str, Any]) -> str:
    """Why a message is dead: Lambda destination / EventBridge DLQ attributes, else the body's error payload."""
    attributes = message.get("MessageAttributes") or {}
    code = (attributes.get("ErrorCode") or attributes.get("ERROR_CODE") or {}).get("StringValue")
    text = (attributes.get("ErrorMessage") or attributes.get("ERROR_MESSAGE") or {}).get("StringValue")
    if not code:
        try:
            body = json.loads(message.get("Body") or "{}")
            payload = body.get("responsePayload") or {}
        except (json.JSONDecodeError, AttributeError):
            body, payload = {}, {}
        code, text = payload.get("errorType"), payload.get("errorMessage")
        if not code and isinstance(body, dict) and {"source", "detail-type"} <= set(body):
            # moved by a queue's redrive policy after maxReceiveCount failed receives: SQS keeps the event, no error
            return f"{body['source']} {body['detail-type']} failed on every receive (redrive; see the function's logs)"
    first_line = (text or "").strip().splitlines()[0][:160] if text and text.strip() else ""
    return f"{code or 'unknown error'}" + (f" ({first_line})" if first_line else "")


def dead_letters(sqs: Any, queue_url: str, queue_name: str) -> DeadLetters:
    """How many messages wait in a dead-letter queue, and the oldest one's reason (peeked, not consumed)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    count = int(attributes["Attributes"].get("ApproximateNumberOfMessages", "0"))
    if count == 0:
        return DeadLetters(queue_name, 0)
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        AttributeNames=["SentTimestamp"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not messages:
        return DeadLetters(queue_name, count)
    oldest = min(messages, key=lambda m: int(m.get("Attributes", {}).get("SentTimestamp", "0")))
    sent = datetime.fromtimestamp(int(oldest.get("Attributes", {}).get("SentTimestamp", "0")) / 1000, UTC)
    return DeadLetters(queue_name, count, sent, _reason(oldest))


def schedule_state(scheduler: Any, name: str) -> ScheduleState:
    try:
        schedule = scheduler.get_schedule(Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return ScheduleState(name, None)
        raise
    return ScheduleState(
        name, schedule.get("State"), schedule.get("ScheduleExpression", ""), schedule.get("ScheduleExpressionTimezone")
    )


def _instances(ec2: Any) -> Iterator[Ec2Instance]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
                profile = (item.get("IamInstanceProfile") or {}).get("Arn")
                yield Ec2Instance(item["InstanceId"], tags, profile)


def _nodes(ssm: Any) -> Iterator[ManagedNode]:
    for page in ssm.get_paginator("describe_instance_information").paginate():
        for item in page["InstanceInformationList"]:
            yield ManagedNode(
                item["InstanceId"],
                item.get("PingStatus", "Inactive"),
                item.get("AgentVersion", "?"),
                item.get("IsLatestVersion"),
                item.get("PlatformType", ""),
                item.get("PlatformName", ""),
                item.get("PlatformVersion", ""),
            )


def _last_operations(ssm: Any, node_ids: list[str]) -> dict[str, datetime]:
    ended: dict[str, datetime] = {}
    for start in range(0, len(node_ids), BATCH):
        batch = node_ids[start : start + BATCH]
        for page in ssm.get_paginator("describe_instance_patch_states").paginate(InstanceIds=batch):
            for state in page["InstancePatchStates"]:
                ended[state["InstanceId"]] = state["OperationEndTime"]
    return ended


def fleet_view(ec2: Any, ssm: Any) -> FleetView:
    """Running EC2 instances, SSM-managed nodes, and when each node last reported a patch operation."""
    instances = list(_instances(ec2))
    nodes = {node.node_id: node for node in _nodes(ssm)}
    return FleetView(instances, nodes, _last_operations(ssm, sorted(nodes)))


def baselines(ssm: Any, baseline_ids: list[str]) -> tuple[dict[str, Baseline], dict[str, list[str]]]:
    """The stack's baselines by id, and the patch groups registered to each."""
    found: dict[str, Baseline] = {}
    groups: dict[str, list[str]] = {}
    for baseline_id in baseline_ids:
        item = ssm.get_patch_baseline(BaselineId=baseline_id)
        found[baseline_id] = Baseline(
            baseline_id,
            item.get("Name", ""),
            item.get("OperatingSystem", "WINDOWS"),
            tuple(item.get("RejectedPatches", [])),
        )
        groups[baseline_id] = list(item.get("PatchGroups", []))
    return found, groups


def resolved_baselines(ssm: Any, group: str, systems: set[str]) -> dict[str, str]:
    """Operating system -> the baseline Patch Manager uses for the group (GetPatchBaselineForPatchGroup)."""
    return {
        os_name: ssm.get_patch_baseline_for_patch_group(PatchGroup=group, OperatingSystem=os_name)["BaselineId"]
        for os_name in sorted(systems)
    }


def default_baselines(ssm: Any, systems: set[str]) -> dict[str, str]:
    return {
        os_name: ssm.get_default_patch_baseline(OperatingSystem=os_name)["BaselineId"] for os_name in sorted(systems)
    }


def stage_groups(ssm: Any, parameter_name: str) -> list[str]:
    """The patch groups of the rollout stages, in order (the rendered stage catalog parameter)."""
    catalog = json.loads(ssm.get_parameter(Name=parameter_name)["Parameter"]["Value"])
    return list(dict.fromkeys(str(stage["patch_group"]) for stage in catalog.get("stages", [])))


def recent_run_ids(sfn: Any, state_machine_arn: str, limit: int = 20) -> list[str]:
    """Run ids of the newest executions (`cycle-2026-12` runs `2026-12`; manual/emergency names are the run id)."""
    executions = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)["executions"]
    return list(dict.fromkeys(e["name"].removeprefix("cycle-") for e in executions))


def cycle_run_ids(now: datetime, months: int = 3) -> list[str]:
    """The scheduled and manual run ids of this month and the months before (their exclusions still apply)."""
    year, month = now.year, now.month
    ids = []
    for _ in range(months):
        ids += [f"{year:04d}-{month:02d}", f"manual-{year:04d}-{month:02d}"]
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return ids


def ledger_exclusions(dynamodb: Any, table: str, run_ids: list[str]) -> list[ExclusionRecord]:
    """Active exclusions of the runs, read through the ledger adapter."""
    ledger = DynamoDBExclusionLedger(table, dynamodb)
    return [record for run_id in run_ids for record in ledger.exclusions_of(run_id)]


def simulate(
    iam: Any, principal_arn: str, actions: list[str], resources: list[str], context: dict[str, list[str]] | None = None
) -> list[Simulation]:
    """SimulatePrincipalPolicy: the principal's identity policies for the actions on the resources.

    `context` supplies condition keys the simulator cannot read itself (resource tags), as ContextEntries.
    """
    decisions: dict[str, dict[str, str]] = {action: {} for action in actions}
    missing: dict[str, set[str]] = {action: set() for action in actions}
    entries = [
        {"ContextKeyName": key, "ContextKeyValues": values, "ContextKeyType": "string"}
        for key, values in (context or {}).items()
    ]
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=principal_arn, ActionNames=actions, ResourceArns=resources, ContextEntries=entries
    )
    for page in pages:
        for result in page["EvaluationResults"]:
            action = result["EvalActionName"]
            specific = result.get("ResourceSpecificResults") or []
            if specific:
                for row in specific:
                    decisions[action][row["EvalResourceName"]] = row["EvalResourceDecision"]
            else:
                decisions[action][result.get("EvalResourceName", "*")] = result["EvalDecision"]
            missing[action].update(result.get("MissingContextValues", []))
    return [Simulation(a, decisions[a], tuple(sorted(missing[a]))) for a in actions]


def instance_profile_role(iam: Any, profile_arn: str) -> str | None:
    """The role ARN of an instance profile (None when it has none)."""
    name = profile_arn.rsplit("/", 1)[-1]
    roles = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Roles", [])
    return str(roles[0]["Arn"]) if roles else None
