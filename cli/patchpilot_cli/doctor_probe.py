"""`patchpilot doctor --probe`: one harmless command per patch group, and whether its status event reaches PatchPilot.

What it does (and says first): puts one small object under `runs/patchpilot-doctor/` in the artifacts bucket, then per
patch group and platform sends the stack's health-check document (HealthCheckDocument: its Linux step runs
`linuxCommands`, its Windows step `windowsCommands`) to the group's Online nodes (at most 50), reading that object with
the instance's own credentials, the way AWS-RunPatchBaseline reads an install list. It sends the document PatchPilot's
health checks send, so its status events take the same way (a stack without the document gets AWS-RunShellScript /
AWS-RunPowerShellScript, as before). It waits for every invocation to end (default 60 s) and tests the event each
invocation emits against the stack's command-invocation rule (EventBridge TestEventPattern) to tell whether results
reach PatchPilot by event or only by reconciliation. Where the rule matches, it then observes the events arriving:
CommandResultFunction records the status event of a command PatchPilot did not start as a foreign-command row
(``COMMAND#<id>`` / ``COMMAND`` in the runs table); the probe waits (at most a minute, by default) for that row of every
probe command. It never changes a baseline, a tag or an instance's patches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from patchpilot.integrations.runs_table_keys import COMMAND_SORT_KEY, command_key
from patchpilot_cli.doctor import PROBE_KEY, Stack
from patchpilot_cli.doctor_checks import Check, FleetView

TERMINAL = {
    "Success",
    "Failed",
    "Cancelled",
    "TimedOut",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "Undeliverable",
    "Terminated",
    "InvalidPlatform",
    "AccessDenied",
}
INVOCATION_EVENT = "EC2 Command Invocation Status-change Notification"
MAX_TARGETS = 50
FIRST_POLL_SECONDS = 0.25
MAX_POLL_SECONDS = 5.0
EVENT_WAIT_SECONDS = 60.0  # the promise: a status event reaches PatchPilot within a minute


def _probe_command(platform_type: str, bucket: str, health_document: str | None) -> tuple[str, dict[str, list[str]]]:
    """The document and parameters that read the probe object on a node of the platform."""
    url = f"s3://{bucket}/{PROBE_KEY}"
    if platform_type == "Windows":
        document, key = "AWS-RunPowerShellScript", "windowsCommands"
        lines = [
            f"Read-S3Object -BucketName '{bucket}' -Key '{PROBE_KEY}' "
            '-File "$env:TEMP\\patchpilot-probe.txt" | Out-Null',
            "Write-Output 'patchpilot probe: read the artifacts bucket'",
        ]
    else:
        document, key = "AWS-RunShellScript", "linuxCommands"
        lines = [f"aws s3 cp '{url}' - > /dev/null", "echo 'patchpilot probe: read the artifacts bucket'"]
    if health_document:
        return health_document, {key: lines}
    return document, {"commands": lines}


def health_document(stack: Stack) -> str | None:
    """The stack's health-check document (None: a stack deployed before it existed)."""
    resource = stack.resources.get("HealthCheckDocument")
    return resource.physical_id if resource else None


def probe_targets(fleet: FleetView, group: str) -> dict[str, list[str]]:
    """Platform type -> the group's Online node ids (at most 50 each)."""
    targets: dict[str, list[str]] = {}
    for instance in fleet.in_group(group):
        node = fleet.nodes.get(instance.instance_id)
        if node is not None and node.ping_status == "Online":
            targets.setdefault(node.platform_type or "Linux", []).append(node.node_id)
    return {platform: sorted(ids)[:MAX_TARGETS] for platform, ids in targets.items()}


def plan(stack: Stack) -> list[str]:
    """What the probe will do, in lines to show before it does it."""
    bucket = stack.outputs.values.get("ArtifactsBucketName", "?")
    fleet = stack.fleet or FleetView([], {})
    lines = [f"probe: put s3://{bucket}/{PROBE_KEY} (a few bytes), then send, per patch group:"]
    for group in stack.groups:
        targets = probe_targets(fleet, group)
        document = health_document(stack)
        sends = [
            f"{_probe_command(p, bucket, document)[0]} to {len(ids)} node(s)" for p, ids in sorted(targets.items())
        ]
        lines.append(f"  {group}: {'; '.join(sends) or 'nothing (no Online node)'}")
    lines.append("probe: the commands only read that object; no baseline, tag or patch changes")
    return lines


def _statuses(ssm: Any, command_id: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for page in ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id):
        statuses.update({i["InstanceId"]: i["Status"] for i in page["CommandInvocations"]})
    return statuses


def wait_for_commands(
    ssm: Any, command_ids: list[str], timeout: float, clock: Callable[[], float], sleep: Callable[[float], None]
) -> dict[str, tuple[dict[str, str], float]]:
    """Poll every command until all its invocations ended or the deadline: command id -> (statuses, seconds)."""
    started = clock()
    done: dict[str, tuple[dict[str, str], float]] = {}
    pause = FIRST_POLL_SECONDS
    while True:
        for command_id in command_ids:
            if command_id not in done:
                statuses = _statuses(ssm, command_id)
                if statuses and all(s in TERMINAL for s in statuses.values()):
                    done[command_id] = (statuses, clock() - started)
        if len(done) == len(command_ids) or clock() - started >= timeout:
            break
        sleep(pause)
        pause = min(pause * 2, MAX_POLL_SECONDS)
    for command_id in command_ids:
        done.setdefault(command_id, (_statuses(ssm, command_id), clock() - started))
    return done


def group_check(group: str, sent: list[tuple[str, dict[str, str]]], waited: float) -> Check:
    statuses = {node: status for _, result in sent for node, status in result.items()}
    documents = ", ".join(document for document, _ in sent)
    if not sent:
        return Check("probe", f"group {group}", "warn", "no Online node to probe")
    bad = {node: status for node, status in statuses.items() if status != "Success"}
    found = f"{documents}: {len(statuses) - len(bad)}/{len(statuses)} Success after {waited:.0f} s"
    if bad:
        shown = ", ".join(f"{node} {status}" for node, status in sorted(bad.items())[:5])
        return Check(
            "probe",
            f"group {group}",
            "fail",
            f"{found}; {shown}",
            "read the output: aws ssm get-command-invocation --command-id <id> --instance-id <node>; a Failed read "
            "means the instance profile cannot get runs/ objects (then AWS-RunPatchBaseline cannot read install lists)",
        )
    return Check("probe", f"group {group}", "ok", found)


def _status_event(stack: Stack, document: str, command_id: str, node: str) -> dict[str, Any]:
    _, region, account = stack.arn_parts
    now = datetime.now(UTC)
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": INVOCATION_EVENT,
        "source": "aws.ssm",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{node}"],
        "detail": {
            "command-id": command_id,
            "document-name": document,
            "instance-id": node,
            "requested-date-time": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "status": "Success",
        },
    }


def _recorded(dynamodb: Any, table: str, command_id: str) -> bool:
    key = {"pk": {"S": command_key(command_id)}, "sk": {"S": COMMAND_SORT_KEY}}
    return "Item" in dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)


def wait_for_records(
    dynamodb: Any,
    table: str,
    command_ids: list[str],
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, float | None]:
    """Poll the runs table until PatchPilot recorded each command's status event: id -> seconds (None: not seen)."""
    started = clock()
    seen: dict[str, float] = {}
    pause = FIRST_POLL_SECONDS
    while True:
        for command_id in command_ids:
            if command_id not in seen and _recorded(dynamodb, table, command_id):
                seen[command_id] = clock() - started
        if len(seen) == len(command_ids) or clock() - started >= timeout:
            break
        sleep(pause)
        pause = min(pause * 2, MAX_POLL_SECONDS)
    return {command_id: seen.get(command_id) for command_id in command_ids}


def _rules(stack: Stack) -> dict[str, str]:
    events = stack.outputs.client("events")
    rules = {}
    for rule in stack.of_type("AWS::Events::Rule"):
        pattern = events.describe_rule(Name=rule.physical_id).get("EventPattern")
        if pattern and INVOCATION_EVENT in pattern:
            rules[rule.logical_id] = pattern
    return rules


def unmatched_documents(stack: Stack, rules: dict[str, str], samples: list[tuple[str, str, str]]) -> set[str]:
    """The probe documents whose status events no rule of the stack matches (EventBridge TestEventPattern)."""
    events = stack.outputs.client("events")
    missed = set()
    for document, command_id, node in samples:
        event = json.dumps(_status_event(stack, document, command_id, node))
        if not any(events.test_event_pattern(EventPattern=p, Event=event)["Result"] for p in rules.values()):
            missed.add(document)
    return missed


def event_check(
    rules: dict[str, str],
    samples: list[tuple[str, str, str]],
    missed: set[str],
    arrivals: dict[str, float | None],
    wait: float,
) -> Check:
    """Whether the probe commands' status events reach PatchPilot: the rule matches them, and they were recorded."""
    if not samples:
        return Check("probe", "status events", "warn", "no probe command was sent")
    if not rules:
        return Check("probe", "status events", "fail", "no rule of the stack takes command status events", "redeploy")
    names = ", ".join(sorted(rules))
    if missed:
        return Check(
            "probe",
            "status events",
            "warn",
            f"rule {names} does not match {', '.join(sorted(missed))} status events: health-check results reach "
            "PatchPilot only by reconciliation (slower, more API calls)",
            "add the health-check document (!Ref HealthCheckDocument) to the rule's document-name pattern "
            "(template.yaml) and redeploy",
        )
    lost = sorted(command_id for command_id, seconds in arrivals.items() if seconds is None)
    if lost:
        return Check(
            "probe",
            "status events",
            "fail",
            f"rule {names} matches the probe's status events, but PatchPilot recorded none for "
            f"{len(lost)}/{len(arrivals)} probe command(s) within {wait:.0f} s ({', '.join(lost[:3])})",
            f"check that rule {names} is ENABLED and targets the command-result queue, that the queue and "
            "CommandResultFunction are not failing (its DLQ: patchpilot doctor), then probe again; until then results "
            "reach PatchPilot only by reconciliation",
        )
    documents = ", ".join(sorted({d for d, _, _ in samples}))
    slowest = max((seconds for seconds in arrivals.values() if seconds is not None), default=0.0)
    return Check(
        "probe",
        "status events",
        "ok",
        f"rule {names} matches the {documents} status events; PatchPilot recorded all {len(arrivals)} within "
        f"{slowest:.0f} s",
    )


def run_probe(
    stack: Stack,
    timeout: float,
    say: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Check]:
    """Say what the probe does, do it, and report one line per group plus one for the status events."""
    for line in plan(stack):
        (say or (lambda _: None))(line)
    bucket = stack.outputs.values.get("ArtifactsBucketName")
    if not bucket:
        return [Check("probe", "artifacts bucket", "fail", "the stack has no ArtifactsBucketName output", "redeploy")]
    stack.outputs.client("s3").put_object(Bucket=bucket, Key=PROBE_KEY, Body=b"patchpilot doctor probe\n")
    ssm = stack.outputs.client("ssm")
    fleet = stack.fleet or FleetView([], {})
    sent: dict[str, list[tuple[str, str]]] = {}  # group -> (document, command id)
    samples: list[tuple[str, str, str]] = []
    for group in stack.groups:
        sent[group] = []
        for platform, ids in sorted(probe_targets(fleet, group).items()):
            document, parameters = _probe_command(platform, bucket, health_document(stack))
            command = ssm.send_command(
                InstanceIds=ids,
                DocumentName=document,
                Parameters=parameters,
                Comment=f"patchpilot doctor probe ({group})",
                TimeoutSeconds=60,
                MaxErrors=str(len(ids)),
            )["Command"]
            sent[group].append((document, command["CommandId"]))
            samples.append((document, command["CommandId"], ids[0]))
    results = wait_for_commands(ssm, [sample[1] for sample in samples], timeout, clock, sleep)
    found = []
    for group, group_commands in sent.items():
        outcomes = [(document, results[command_id][0]) for document, command_id in group_commands]
        waited = max((results[command_id][1] for _, command_id in group_commands), default=0.0)
        found.append(group_check(group, outcomes, waited))
    found.append(_observe_events(stack, samples, min(timeout, EVENT_WAIT_SECONDS), clock, sleep))
    return found


def _observe_events(
    stack: Stack,
    samples: list[tuple[str, str, str]],
    wait: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Check:
    rules = _rules(stack) if samples else {}
    missed = unmatched_documents(stack, rules, samples) if rules else set()
    arrivals: dict[str, float | None] = {}
    table = stack.outputs.values.get("RunsTableName")
    if rules and not missed:
        if not table:
            return Check("probe", "status events", "fail", "the stack has no RunsTableName output", "redeploy")
        dynamodb = stack.outputs.client("dynamodb")
        arrivals = wait_for_records(dynamodb, table, [sample[1] for sample in samples], wait, clock, sleep)
    return event_check(rules, samples, missed, arrivals, wait)
