"""One local patch cycle: fleet + scenario -> the real start function and state machine -> summary.json."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from patchpilot.models.bisection import BISECT_TAG_KEY
from patchpilot.models.events import CommandInvocationEvent
from patchpilot.models.rollout import CANARY_TAG_KEY, BisectPolicy, HealthCheck, StageCatalog
from patchpilot_sim import rollback_demo
from patchpilot_sim.chat import DEFAULT_CHANNELS, OnCallRedrive
from patchpilot_sim.chat_sink import ChatSink
from patchpilot_sim.compliance_demo import ComplianceDemo, compliance_object, copy_reports
from patchpilot_sim.faults import FaultInjector
from patchpilot_sim.fleet import Command, SimulatedInstance
from patchpilot_sim.metering import CallMeter
from patchpilot_sim.patches import FAILED, ON_DISK
from patchpilot_sim.plan_demo import say_plan
from patchpilot_sim.progress import ProgressView, stage_progress
from patchpilot_sim.runtime import LOCAL_LIMITS, LocalRuntime
from patchpilot_sim.scenarios import SCENARIOS, Scenario, apply_scenario, build_fleet, release_next_month
from patchpilot_sim.template import SamTemplate
from patchpilot_sim.windows import Calendar, deployed_windows

MALFORMED_EVENT = Path(__file__).resolve().parents[2] / "events" / "ssm" / "command-invocation-malformed.json"

CHANGE_CALENDAR = "patchpilot-change-freeze"
HEALTH_CHECK = HealthCheck(
    linux_commands=["curl -fsS http://localhost/health"],
    windows_commands=["Invoke-WebRequest -UseBasicParsing http://localhost/health | Out-Null"],
)
# How long an approval request waits (simulated): the on-call engineer answers after ON_CALL_ANSWER_SIMULATED_SECONDS.
APPROVAL_TIMEOUT_SECONDS = 24 * 3600  # the product's default
PROGRESS_REFRESH_SECONDS = 0.5  # real seconds between redraws of the live view
ON_CALL_ANSWER_SIMULATED_SECONDS = 1_800
ON_CALL_USER = "oncall-sim"  # on the policy's approvals.approvers list
ON_CALL_USER_ID = "U0SIMONCALL"
# webhook-outage: the first requests to Slack/Teams fail (by count, not by time): enough that the first alert
# exhausts the notifier's attempts (3 posts per channel x 3 invocations) and lands in the chat dead-letter queue.
OUTAGE_FAILURES = ["500", "429", "timeout", "500", "500", "429", "500", "500", "500"] * 3
SHOWN_STATES = {
    "Request Approval": "waiting for approval",
    "Plan Stage Step": "planning",
    "Plan Verify Step": "planning",
    "Verify Stage Health": "verifying health",
    "Find Failing Patches": "correlating patches of unhealthy instances",
    "Bake": "baking",
    "Wait For Install Window": "waiting for its maintenance window",
    "Run Stage Commands": "sending commands",
    "Record Stage Passed": "passed",
    "Reconcile Command Results": "no result for a heartbeat: reconciling with SSM",
    "Start Bisection": "suspects cannot be told apart: bisecting",
    "Start Bisection Round": "bisection",
    "Exclude Bisected Culprits": "bisection found",
    "Keep Bisection Stop": "bisection stopped",
}


@dataclass(frozen=True)
class SimulationOptions:
    instances: int = 40
    scenario: str = "healthy"
    seed: int = 7
    cycle: str = "2026-12"
    out_dir: Path | None = Path("out/demo")
    real_timeout_seconds: float | None = None  # default: 600 s + 1 s per instance (a guard against a hung run)


def stage_catalog(runtime: LocalRuntime) -> StageCatalog:
    """The stage catalog the template gives the planner (rendered from the policy)."""
    raw = runtime.resolver.get_att("StageCatalogParameter", "Value")
    return StageCatalog.model_validate_json(raw)


def start_request(catalog: StageCatalog, scenario: Scenario, cycle: str) -> dict[str, Any]:
    """The StartRolloutFunction payload of the scenario: the catalog's bakes, in simulated seconds."""
    request: dict[str, Any] = {
        "mode": scenario.mode,
        "cycle": cycle,
        "bake_seconds": {stage.name: stage.bake_seconds for stage in catalog.stages},
        "approval_timeout_seconds": APPROVAL_TIMEOUT_SECONDS,
        "limits": LOCAL_LIMITS,
    }
    if scenario.stages is not None:
        request["stages"] = list(scenario.stages)
        request["bake_seconds"] = {name: request["bake_seconds"][name] for name in scenario.stages}
    if scenario.patch_ids:
        request["patch_ids"] = list(scenario.patch_ids)
    return request


class OnCall:
    """Plays the on-call engineer: reads every alert, answers approval requests by clicking Approve in Slack.

    The click is what Slack sends: a signed interaction posted to the Slack interaction endpoint (the real handler,
    behind its Function URL). The approval id comes from the button of the Slack message that arrived in the sink.
    """

    def __init__(self, runtime: LocalRuntime, scenario: Scenario, say: Callable[[str], None]) -> None:
        self.runtime = runtime
        self.scenario = scenario
        self.say = say
        self.seen = 0
        self.seen_messages = 0
        self.answered: set[str] = set()
        self.decisions: list[dict[str, Any]] = []

    def read_alerts(self) -> None:
        alerts = self.runtime.notifications()
        self.seen = len(alerts)
        self.read_chat()

    def read_chat(self) -> None:
        """Answer the approval requests that reached Slack (an answer is a timer: the engineer takes a while)."""
        sink = self.runtime.chat.sink
        messages = sink.messages if sink is not None else []
        for message in messages[self.seen_messages :]:
            approval_id = approval_button(message)
            if approval_id and self.scenario.approves and approval_id not in self.answered:
                self.answered.add(approval_id)
                self._approve_later(approval_id)
        self.seen_messages = len(messages)

    def _approve_later(self, approval_id: str) -> None:
        def approve() -> None:
            answer = self.runtime.chat.post_slack_interaction(approval_id, "approve", ON_CALL_USER_ID, ON_CALL_USER)
            self.decisions.append({"approval_id": approval_id, "status_code": answer.get("statusCode")})
            self.say(f"  on-call clicked Approve on {approval_id} in Slack: HTTP {answer.get('statusCode')}")

        self.runtime.scheduler.after(ON_CALL_ANSWER_SIMULATED_SECONDS, approve)


def approval_button(message: dict[str, Any]) -> str | None:
    """The approval id an Approve button of a Slack message carries (None for other messages)."""
    if message.get("platform") != "slack" or message.get("kind") != "approval_requested":
        return None
    for block in message["payload"].get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == "patchpilot_approve":
                return str(element["value"])
    return None


def chat_line(message: dict[str, Any]) -> str:
    """The one-line summary of a chat message as it arrives (what `make demo` prints)."""
    payload = message["payload"]
    if message["platform"] == "slack":
        text = str(payload.get("text", ""))
    else:
        body = payload["attachments"][0]["content"]["body"]
        text = " ".join(str(element.get("text", "")) for element in body[:2])
    text = " ".join(text.split())
    text = text if len(text) <= 110 else f"{text[:107]}..."
    return f"  chat {message['platform']}/#{message['channel']:9} [{message['kind']}] {text}"


def _shown(entered: dict[str, Any]) -> str:
    text = SHOWN_STATES[entered["name"]]
    if entered["name"] == "Wait For Install Window":
        start = json.loads(entered["input"])["step"]["start"]
        text += f" ({start['reason'].replace('_', ' ')}; the install may start {start['opens_at']}"
        text += f" until {start['cutoff_at']})" if start.get("cutoff_at") else ")"
    if entered["name"] in ("Start Bisection Round", "Exclude Bisected Culprits", "Keep Bisection Stop"):
        text += f" {json.loads(entered['input'])['bisection']['reason']}"
    return text


def _stage_name(details: dict[str, Any]) -> str | None:
    try:
        stage = json.loads(details.get("input") or "{}").get("stage")
    except json.JSONDecodeError:
        return None
    return stage.get("name") if isinstance(stage, dict) else None


def _follow(
    runtime: LocalRuntime, execution_arn: str, timeout: float, on_call: OnCall, progress: ProgressView | None = None
) -> dict[str, Any]:
    """Run the simulation until the execution ends, telling the operator what happens (in simulated time).

    Checked at every quiescent point of the simulation (simulated time stands still meanwhile): new history events,
    approval requests in Slack, and the live view at most every PROGRESS_REFRESH_SECONDS of real time.
    """
    seen = 0
    stages = {stage.name: stage.patch_group for stage in stage_catalog(runtime).stages}
    shown = 0.0

    def ended() -> bool:
        nonlocal seen, shown
        if progress is not None and time.monotonic() - shown >= PROGRESS_REFRESH_SECONDS:
            progress.update(stage_progress(runtime.fleet, stages), runtime.clock.now())
            shown = time.monotonic()
        new_events = runtime.history_since(execution_arn, seen)
        for event in new_events:
            entered = event.get("stateEnteredEventDetails")
            if entered and entered["name"] in SHOWN_STATES:
                stage = _stage_name(entered) or ""
                on_call.say(f"[sim {runtime.clock.now():%a %d %H:%M}] {stage:8} {_shown(entered)}")
        seen += len(new_events)
        on_call.read_chat()
        return runtime.execution_status(execution_arn) != "RUNNING"

    runtime.run_until(ended, real_timeout=timeout)
    description = dict(runtime.admin.client("stepfunctions").describe_execution(executionArn=execution_arn))
    on_call.read_alerts()
    if progress is not None:
        progress.update(stage_progress(runtime.fleet, stages), runtime.clock.now())
    return description


def _exited(history: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in history
        if (e.get("stateExitedEventDetails") or {}).get("name") == state
    ]


def stage_rows(catalog: StageCatalog, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per catalog stage: passed / failed / not run, with the last verdict's counts."""
    passed: dict[str, dict[str, Any]] = {}
    for state in history:
        details = state.get("lambdaFunctionSucceededEventDetails") or {}
        outcome = json.loads(details.get("output") or "null")
        if isinstance(outcome, dict) and outcome.get("status") == "passed" and "stage_name" in outcome:
            passed[outcome["stage_name"]] = outcome
    verdicts: dict[str, dict[str, Any]] = {}
    for state in _exited(history, "Verify Stage Health"):
        verdicts[state["stage"]["name"]] = state["verdict"]
    rows = []
    for stage in catalog.stages:
        verdict = verdicts.get(stage.name)
        if stage.name in passed:
            status = "succeeded"
        elif verdict is not None and not verdict["healthy"]:
            status = "failed"
        else:
            status = "not_run"
        targeted = verdict["targeted"] if verdict else 0
        unhealthy = verdict["unhealthy"] if verdict else 0
        rows.append(
            {
                "name": stage.name,
                "patch_group": stage.patch_group,
                "role": stage.role,
                "status": status,
                "targeted": targeted,
                "succeeded": targeted - unhealthy,
                "failed": unhealthy,
                "frozen_patch_count": passed.get(stage.name, {}).get("frozen_patch_count"),
            }
        )
    return rows


def excluded_patches(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The exclusions the run decided, with their evidence."""
    excluded = []
    for state in _exited(history, "Find Failing Patches"):
        exclusion = state.get("exclusion") or {}
        if exclusion.get("outcome") == "exclude":
            for patch in exclusion.get("patches", []):
                excluded.append({"stage": state["stage"]["name"], **patch})
    return excluded


def judge(
    scenario: Scenario,
    description: dict[str, Any],
    runtime: LocalRuntime,
    history: list[dict[str, Any]],
    excluded: list[dict[str, Any]],
    duplicate_starts: int,
    earlier: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Everything about the run that contradicts the scenario's expectation (empty: it ended as expected)."""
    problems = []
    if (description["status"], description.get("error")) != (scenario.expected_status, scenario.expected_error):
        problems.append(
            f"ended {description['status']} {description.get('error') or ''}, expected "
            f"{scenario.expected_status} {scenario.expected_error or ''}".strip()
        )
    entered = {e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e}
    if not earlier:  # a later month of a multi-month scenario need not repeat the first month's path
        problems += [f"never entered {state!r}" for state in scenario.must_enter if state not in entered]
    problems += _scenario_problems(scenario, runtime, history, excluded, duplicate_starts, earlier)
    problems += aws_semantics_problems(scenario, runtime)
    return problems


def _emergency_problems(scenario: Scenario, runtime: LocalRuntime) -> list[str]:
    """An emergency run installs nothing outside its list."""
    allowed = set(scenario.patch_ids)
    for instance in runtime.fleet.instances.values():
        extra = runtime.fleet.installed_during_cycle(instance.instance_id) - allowed
        if extra:
            return [f"{instance.instance_id} installed {sorted(extra)} outside the emergency list"]
    return []


def _scenario_problems(
    scenario: Scenario,
    runtime: LocalRuntime,
    history: list[dict[str, Any]],
    excluded: list[dict[str, Any]],
    duplicate_starts: int,
    earlier: list[dict[str, Any]] | None,
) -> list[str]:
    """What a scenario checks beyond the end state, against the fleet's ground truth."""
    if scenario.name == "bad-patch" or (scenario.name == "next-month" and earlier is None):
        return _bad_patch_problems(runtime, excluded)
    if scenario.name == "next-month":
        return _next_month_problems(runtime, earlier or [], excluded)
    if scenario.name == "silent-os":
        return _silent_os_problems(runtime, history)
    if scenario.name == "webhook-outage":
        return _outage_problems(runtime)
    if scenario.name == "duplicate-start" and duplicate_starts != 1:
        return ["the second start of the cycle was not a no-op"]
    if scenario.name == "emergency":
        return _emergency_problems(scenario, runtime)
    if scenario.name in CANARY_AND_ONE_PASS_JUDGES:
        return CANARY_AND_ONE_PASS_JUDGES[scenario.name](runtime, history, excluded)
    return []


def aws_semantics_problems(scenario: Scenario, runtime: LocalRuntime) -> list[str]:
    """What contradicts AWS's rules the scenario exercises: windows, change freezes, waves, health commands."""
    problems = window_problems(runtime) if scenario.mode != "emergency" else []
    if scenario.change_freeze_hours:
        problems += _freeze_problems(runtime, scenario)
    if scenario.name == "large-stage":
        problems += _large_stage_problems(scenario, runtime)
    if scenario.health_checks:
        problems += _health_command_problems(runtime)
    return problems


def invocation_statuses(runtime: LocalRuntime) -> dict[str, int]:
    """Ground truth: how every invocation of every command the fleet ran ended."""
    counts: dict[str, int] = {}
    for command in list(runtime.fleet.commands.values()):
        for invocation in list(command.invocations.values()):
            counts[invocation.status] = counts.get(invocation.status, 0) + 1
    return dict(sorted(counts.items()))


def command_groups(command: Command) -> set[str]:
    """The patch groups a command reached: its tag targets' values and its instances' groups (canaries: by tag)."""
    groups = {value for target in command.targets for value in target.get("Values", [])}
    return groups | {invocation.instance.patch_group for invocation in list(command.invocations.values())}


def install_starts(runtime: LocalRuntime) -> list[dict[str, Any]]:
    """Ground truth for the operator: when each install reached the fleet (simulated time) and its group's window."""
    windows = deployed_windows(runtime.template)
    rows = []
    for command in sorted(list(runtime.fleet.commands.values()), key=lambda c: c.requested):
        if command.operation != "Install":
            continue
        for group in sorted(command_groups(command) & set(windows)):
            window = windows[group]
            opens = window.first_opening_after(command.requested - timedelta(hours=window.duration_hours))
            rows.append(
                {
                    "patch_group": group,
                    "requested": command.requested.isoformat(timespec="minutes"),
                    "window_opens": opens.isoformat(timespec="minutes"),
                    "window_cutoff": (opens + timedelta(hours=window.duration_hours - window.cutoff_hours)).isoformat(
                        timespec="minutes"
                    ),
                    "inside_window": window.takes_installs_at(command.requested),
                    "canary": any(t.get("Key") == f"tag:{CANARY_TAG_KEY}" for t in command.targets),
                }
            )
    return rows


def _health_command_problems(runtime: LocalRuntime) -> list[str]:
    health = [c for c in list(runtime.fleet.commands.values()) if c.operation == "Health"]
    documents = {c.document_name for c in health}
    expected = runtime.resolver.ref("HealthCheckDocument")
    if documents != {expected}:
        return [f"health commands sent with {sorted(documents)}, expected only the stack's document {expected}"]
    statuses = [inv.status for c in health for inv in list(c.invocations.values())]
    if "InvalidPlatform" in statuses:  # the cross-platform document runs on every node of a Linux/Windows fleet
        return [f"{statuses.count('InvalidPlatform')} health invocation(s) ended InvalidPlatform"]
    checked = {i for c in health for i, inv in c.invocations.items() if inv.status == "Success"}
    # Nodes outside every stage's patch group (the compliance demo's ungrouped and legacy nodes) are not rolled out to.
    groups = {stage.patch_group for stage in stage_catalog(runtime).stages}
    unchecked = {i for i, node in runtime.fleet.instances.items() if node.patch_group in groups} - checked
    return [f"{len(unchecked)} instance(s) never passed a health command"] if unchecked else []


def _large_stage_problems(scenario: Scenario, runtime: LocalRuntime) -> list[str]:
    problems = []
    timed_out = invocation_statuses(runtime).get("DeliveryTimedOut", 0)
    if timed_out:
        problems.append(f"{timed_out} invocation(s) ended DeliveryTimedOut")
    group = scenario.stage_group
    installs = [
        c
        for c in runtime.fleet.commands.values()
        if c.operation == "Install" and any(group in t.get("Values", []) for t in c.targets)
    ]
    members = {i.instance_id for i in runtime.fleet.instances.values() if i.patch_group == group}
    if not installs:
        problems.append(f"no install was sent to {group}")
    for install in installs:
        ran = {i for i, invocation in install.invocations.items() if invocation.status == "Success"}
        if ran != members:
            problems.append(f"the install on {group} succeeded on {len(ran)} of {len(members)} instances")
    return problems


def _bad_patch_problems(runtime: LocalRuntime, excluded: list[dict[str, Any]]) -> list[str]:
    broken = {  # (OS, patch id): a Linux package id repeats across distributions
        (instance.platform, patch_id)
        for instance in runtime.fleet.instances.values()
        for patch_id, record in instance.patches.items()
        if record.fails_install or record.breaks_health
    }
    bad = {patch_id for _, patch_id in broken}
    problems = []
    if not bad & {patch["patch_id"] for patch in excluded}:
        problems.append(f"the bad patch {sorted(bad)} was not excluded (excluded: {excluded})")
    for instance in runtime.fleet.instances.values():
        received = {(instance.platform, p) for p in runtime.fleet.installed_patches(instance.instance_id)}
        if instance.patch_group.startswith("prod") and broken & received:
            problems.append(f"prod instance {instance.instance_id} received the bad patch")
    rejected = {
        patch
        for instance in runtime.fleet.instances.values()
        if instance.patch_group != "dev"
        for patch in runtime.fleet.rejected_patches(instance)
    }
    if not bad <= rejected:
        problems.append("the bad patch is not in the staging/prod baselines' RejectedPatches")
    return problems


def _broken(runtime: LocalRuntime) -> set[tuple[str, str]]:
    """Ground truth: the (OS, patch id) pairs the scenario broke (a Linux package id repeats across distributions)."""
    return {
        (instance.platform, patch_id)
        for instance in runtime.fleet.instances.values()
        for patch_id, record in instance.patches.items()
        if record.fails_install or record.breaks_health
    }


def _receivers(runtime: LocalRuntime) -> dict[str, SimulatedInstance]:
    """Ground truth: every instance a patch broken on it ever reached (installed, or its install tried and failed)."""
    return {
        instance.instance_id: instance
        for instance in runtime.fleet.instances.values()
        for record in instance.patches.values()
        if (record.fails_install or record.breaks_health) and record.state in (*ON_DISK, FAILED)
    }


def _exactly_excluded(excluded: list[dict[str, Any]], broken: set[tuple[str, str]], stage: str) -> list[str]:
    problems = []
    decided = {(patch["operating_systems"][0], patch["patch_id"]) for patch in excluded if patch["operating_systems"]}
    if decided != broken:
        problems.append(f"excluded {sorted(decided)}, the broken patches are {sorted(broken)}")
    stages = sorted({patch["stage"] for patch in excluded})
    if stages != [stage]:
        problems.append(f"exclusions decided in {stages}, expected in {stage} only")
    return problems


def _rejected_everywhere_after(runtime: LocalRuntime, broken: set[tuple[str, str]], groups: list[str]) -> list[str]:
    missing = sorted(
        f"{patch_id} in {instance.patch_group}'s {instance.platform} baseline"
        for instance in runtime.fleet.instances.values()
        if instance.patch_group in groups
        for platform, patch_id in broken
        if platform == instance.platform and patch_id not in runtime.fleet.rejected_patches(instance)
    )
    return [f"not rejected: {', '.join(sorted(set(missing)))}"] if missing else []


def _two_bad_patches_problems(
    runtime: LocalRuntime, history: list[dict[str, Any]], excluded: list[dict[str, Any]]
) -> list[str]:
    """Both bad patches found by ONE decision of staging, rejected for staging and prod, never received after it."""
    broken = _broken(runtime)
    problems = [] if len({system for system, _ in broken}) == 2 else [f"expected two broken OSes, got {broken}"]
    problems += _exactly_excluded(excluded, broken, "staging")
    decisions = _exited(history, "Find Failing Patches")
    if len(decisions) != 1:
        problems.append(f"{len(decisions)} exclusion decisions, expected one that decides both OSes")
    later = ["prod-1", "prod-2", "prod-3"]
    problems += [
        f"{instance.instance_id} ({instance.patch_group}) received a bad patch"
        for instance in _receivers(runtime).values()
        if instance.patch_group in later
    ]
    return problems + _rejected_everywhere_after(runtime, broken, ["staging", *later])


def _canary_installs(runtime: LocalRuntime, stage_name: str) -> list[Command]:
    """The installs sent to a stage's canaries (tag value ``<run>/<stage>``)."""
    return [
        c
        for c in list(runtime.fleet.commands.values())
        if c.operation == "Install"
        and any(
            t.get("Key") == f"tag:{CANARY_TAG_KEY}" and any(v.endswith(f"/{stage_name}") for v in t.get("Values", []))
            for t in c.targets
        )
    ]


def _first_install_on(runtime: LocalRuntime, group: str) -> Command | None:
    installs = [
        c
        for c in list(runtime.fleet.commands.values())
        if c.operation == "Install" and any(inv.instance.patch_group == group for inv in c.invocations.values())
    ]
    return min(installs, key=lambda c: c.requested, default=None)


def _canary_catches_problems(
    runtime: LocalRuntime, history: list[dict[str, Any]], excluded: list[dict[str, Any]]
) -> list[str]:
    """prod-1's canary caught the production-only break: only its canaries of that OS ever received the patch."""
    broken = _broken(runtime)
    problems = _exactly_excluded(excluded, broken, "prod-1")
    stage = stage_catalog(runtime).by_name()["prod-1"]
    canary_installs = _canary_installs(runtime, "prod-1")
    canaries = {i for c in canary_installs for i in c.invocations}
    if not canary_installs:
        problems.append("prod-1 sent no install to its canaries")
    receivers = _receivers(runtime)
    if not receivers:
        problems.append("no instance ever received the broken patch: the canary caught nothing")
    problems += [
        f"{i} ({r.patch_group}) received the broken patch, not a canary"
        for i, r in receivers.items()
        if i not in canaries
    ]
    per_os = stage.canary.per_os if stage.canary is not None else None
    if per_os is not None and len(receivers) > per_os:
        problems.append(f"{len(receivers)} instances received it, more than prod-1's {per_os} canary per OS")
    first_install = _first_install_on(runtime, "prod-1")
    if first_install is not None and first_install not in canary_installs:
        problems.append("prod-1's first install was not its canary install")
    tagged = sorted(i for i, node in runtime.fleet.instances.items() if CANARY_TAG_KEY in node.tags)
    if tagged:
        problems.append(f"canary tags left behind on {tagged}")
    return problems + _rejected_everywhere_after(runtime, broken, ["prod-1", "prod-2", "prod-3"])


def _health_breaking_patch_problems(
    runtime: LocalRuntime, history: list[dict[str, Any]], excluded: list[dict[str, Any]]
) -> list[str]:
    """Staging bisected its one instance of the broken OS: exactly the culprit excluded, prod never got it."""
    broken = _broken(runtime)
    problems = [] if len(broken) == 1 else [f"expected one broken patch, got {sorted(broken)}"]
    problems += _exactly_excluded(excluded, broken, "staging")
    later = ["prod-1", "prod-2", "prod-3"]
    problems += [
        f"{instance.instance_id} ({instance.patch_group}) received the health-breaking patch"
        for instance in _receivers(runtime).values()
        if instance.patch_group in later
    ]
    systems = {system for system, _ in broken}
    bisected = [i for i in runtime.fleet.instances.values() if i.patch_group == "staging" and i.platform in systems]
    problems += [f"{i.instance_id} (staging) is not healthy after the bisection" for i in bisected if not i.healthy]
    if not _exited(history, "Judge Bisection Round"):
        problems.append("no bisection round was judged")
    tagged = sorted(i for i, node in runtime.fleet.instances.items() if BISECT_TAG_KEY in node.tags)
    if tagged:
        problems.append(f"bisection tags left behind on {tagged}")
    return problems + _rejected_everywhere_after(runtime, broken, ["staging", *later])


CANARY_AND_ONE_PASS_JUDGES: dict[
    str, Callable[[LocalRuntime, list[dict[str, Any]], list[dict[str, Any]]], list[str]]
] = {
    "two-bad-patches": _two_bad_patches_problems,
    "canary-catches": _canary_catches_problems,
    "health-breaking-patch": _health_breaking_patch_problems,
}


def _next_month_problems(
    runtime: LocalRuntime, earlier: list[dict[str, Any]], excluded: list[dict[str, Any]]
) -> list[str]:
    """The month after an exclusion: the fixed version installed everywhere it applies, nothing excluded again."""
    problems = []
    if not earlier or not earlier[-1]["excluded_patches"]:
        problems.append("the first month excluded nothing")
    if excluded:
        problems.append(f"the fixed month excluded {[p['patch_id'] for p in excluded]}")
    fixed = {
        (system, p["patch_id"])
        for month in earlier
        for p in month["excluded_patches"]
        for system in p["operating_systems"]
    }
    for instance in runtime.fleet.instances.values():
        for patch_id in {pid for system, pid in fixed if system == instance.platform} & set(instance.patches):
            record = instance.patches[patch_id]
            if record.state not in {"Installed", "InstalledPendingReboot", "NotApplicable"}:
                problems.append(f"{instance.instance_id} ({instance.patch_group}) did not install {record.patch.title}")
    rejected = {
        name
        for instance in runtime.fleet.instances.values()
        for name in runtime.baselines.handle("GetPatchBaseline", {"BaselineId": runtime.fleet.baseline_id(instance)})[
            "RejectedPatches"
        ]
    }
    blocked = {pid for _, pid in fixed} & rejected
    if blocked:
        problems.append(f"a baseline rejects every version of {sorted(blocked)} (bare name.arch)")
    return problems


def _silent_os_problems(runtime: LocalRuntime, history: list[dict[str, Any]]) -> list[str]:
    """The OS without updateinfo.xml is reported (approves_nothing) on its instances only; they installed nothing."""
    silent = {i.instance_id for i in runtime.fleet.instances.values() if not i.updateinfo}
    verdicts = _exited(history, "Verify Stage Health")
    flagged = {
        ref["instance_id"]
        for state in verdicts
        for ref in state["verdict"]["unhealthy_sample"]
        if "approves_nothing" in ref["reasons"]
    }
    problems = []
    if not any("approves_nothing" in state["verdict"]["reasons"] for state in verdicts):
        problems.append("no verdict reported approves_nothing")
    if not flagged or not flagged <= silent:
        problems.append(f"approves_nothing flagged {sorted(flagged)}, the silent instances are {sorted(silent)}")
    for instance_id in silent:
        if runtime.fleet.installed_during_cycle(instance_id):
            problems.append(f"{instance_id} installed patches although its baseline approves nothing")
    return problems


def dead_letters(runtime: LocalRuntime) -> list[tuple[dict[str, Any], bool]]:
    """Every message that reached the events dead-letter queue, with whether it is a malformed command status event.

    Seen as each arrived (`LocalRuntime.dead_lettered`): the cycle outlasts the queue's 14-day retention.
    """
    runtime.collect()
    letters: list[tuple[dict[str, Any], bool]] = []
    for message in runtime.dead_lettered.values():
        body = json.loads(message["Body"])
        event = body.get("requestPayload", body) if isinstance(body, dict) else body
        try:
            CommandInvocationEvent.model_validate(event)
            malformed = False
        except ValidationError:
            malformed = True
        letters.append((event, malformed))
    return letters


def counted_once_problems(runtime: LocalRuntime) -> list[str]:
    """Every tracked command's counters equal its per-instance rows: each instance counted exactly once."""
    table = runtime.resources.table_names["RunsTable"]
    rows: dict[str, dict[str, Any]] = {}
    results: dict[str, list[bool]] = {}
    for page in runtime.admin.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if not pk.startswith("COMMAND#"):
                continue
            if sk == "COMMAND":
                rows[pk] = item
            elif sk.startswith("INSTANCE#"):
                results.setdefault(pk, []).append(bool(item["succeeded"]["BOOL"]))
    problems = []
    for pk, item in rows.items():
        if "foreign_command" in item:
            continue
        reported, failed = int(item.get("reported", {}).get("N", 0)), int(item.get("failed", {}).get("N", 0))
        instances = results.get(pk, [])
        if (reported, failed) != (len(instances), instances.count(False)):
            problems.append(
                f"{pk}: counted {reported} reported / {failed} failed, but has {len(instances)} instance rows "
                f"({instances.count(False)} failed)"
            )
    return problems


def fleet_count_problems(runtime: LocalRuntime, rows: list[dict[str, Any]]) -> list[str]:
    """Every stage that ran counted exactly the instances of its patch group, however events were mangled."""
    fleet: dict[str, int] = {}
    for instance in runtime.fleet.instances.values():
        fleet[instance.patch_group] = fleet.get(instance.patch_group, 0) + 1
    return [
        f"stage {row['name']} counted {row['targeted']} instances, "
        f"its patch group has {fleet.get(row['patch_group'], 0)}"
        for row in rows
        if row["status"] != "not_run" and row["targeted"] != fleet.get(row["patch_group"], 0)
    ]


def ingestion_problems(
    scenario: Scenario, runtime: LocalRuntime, letters: list[tuple[dict[str, Any], bool]]
) -> list[str]:
    """Exactly-once counting, and dead letters only for malformed events (every scenario)."""
    problems = counted_once_problems(runtime)
    wellformed = sum(not malformed for _, malformed in letters)
    if wellformed:
        problems.append(f"{wellformed} well-formed event(s) ended in the dead-letter queue")
    if len(letters) != scenario.malformed_events:
        problems.append(f"{len(letters)} dead letter(s), expected {scenario.malformed_events} (the malformed events)")
    return problems


def _chat_summary(runtime: LocalRuntime, on_call: OnCallRedrive) -> dict[str, Any]:
    """Messages delivered per platform and kind; what waited in the chat dead-letter queue and what redrive did.

    On-call redrove during the cycle when the queue's alarm called (`OnCallRedrive`); what is left is redriven now.
    """
    on_call.redrive()
    runtime.settle()
    delivered: dict[str, dict[str, int]] = {}
    sink = runtime.chat.sink
    for message in sink.messages if sink is not None else []:
        kinds = delivered.setdefault(message["platform"], {})
        kinds[message["kind"]] = kinds.get(message["kind"], 0) + 1
    return {
        "alerts_published": len(runtime.notifications()),
        "delivered": {platform: dict(sorted(kinds.items())) for platform, kinds in sorted(delivered.items())},
        "messages": sum(sum(kinds.values()) for kinds in delivered.values()),
        "dead_lettered": len(on_call.dead_lettered),
        "redelivered": on_call.redelivered,
        "left_in_dead_letter_queue": runtime.chat.dead_letter_count(),
    }


def _outage_problems(runtime: LocalRuntime) -> list[str]:
    """webhook-outage: every published alert reached every channel that wants it, and nothing is left behind."""
    sink = runtime.chat.sink
    if sink is None:
        return ["no chat sink"]
    problems = []
    posted = {(m["platform"], m["channel"], m["kind"]) for m in sink.messages}
    for alert in runtime.notifications():
        wanted = [(p, c) for p, c, severities in DEFAULT_CHANNELS if alert["severity"] in severities]
        missing = [f"{p}/{c}" for p, c in wanted if (p, c, alert["kind"]) not in posted]
        if missing:
            problems.append(f"alert {alert['kind']} never reached {', '.join(missing)}")
    if runtime.chat.dead_letter_count():
        problems.append("messages are left in the chat dead-letter queue after the redrive")
    return problems


def _mean_ms(runtime: LocalRuntime, function: str) -> float:
    durations = [record.duration_ms for record in runtime.lambdas.records if record.function == function]
    return round(sum(durations) / len(durations), 2) if durations else 0.0


def _payload_sizes(history: list[dict[str, Any]]) -> int:
    sizes = [0]
    for event in history:
        for key, field in (("stateEnteredEventDetails", "input"), ("stateExitedEventDetails", "output")):
            text = (event.get(key) or {}).get(field)
            if text is not None:
                sizes.append(len(text.encode()))
    return max(sizes)


def scenario_catalog(scenario: Scenario) -> StageCatalog | None:
    """The stage catalog as the scenario's policy renders it (None: the repository's policy, as deployed)."""
    changes: dict[str, object] = {}
    if scenario.change_freeze_hours:
        changes["change_calendar"] = CHANGE_CALENDAR
    if scenario.health_checks:
        changes["health_check"] = HEALTH_CHECK
    if not changes and not scenario.snapshot_stages and not scenario.bisect_stages:
        return None
    deployed = StageCatalog.model_validate_json(SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"])
    return deployed.model_copy(
        update={
            "stages": [
                stage.model_copy(
                    update=changes
                    | rollback_demo.snapshots_of(stage, scenario.snapshot_stages)
                    | ({"bisect": BisectPolicy()} if stage.name in scenario.bisect_stages else {})
                )
                for stage in deployed.stages
            ]
        }
    )


def close_change_calendar(runtime: LocalRuntime, scenario: Scenario) -> list[str]:
    """The scenario's change freeze: the calendar is CLOSED from an hour before its group's next window opening."""
    window = deployed_windows(runtime.template)[scenario.stage_group]
    opens = window.first_opening_after(runtime.clock.now())
    freeze = (opens - timedelta(hours=1), opens + timedelta(hours=scenario.change_freeze_hours))
    runtime.calendars.add(Calendar(CHANGE_CALENDAR, closed=[freeze]))
    return [f"change calendar {CHANGE_CALENDAR} CLOSED {freeze[0]:%a %d %H:%M} to {freeze[1]:%a %d %H:%M} (sim)"]


def is_bisection_round(command: Command) -> bool:
    """An install of a bisection round: it targets the bisection tag (one instance, already failed its stage)."""
    return any(t.get("Key") == f"tag:{BISECT_TAG_KEY}" for t in command.targets)


def window_problems(runtime: LocalRuntime) -> list[str]:
    """Every install must have started inside its patch group's maintenance window, before the cutoff.

    Bisection rounds are the exception the policy makes (README, "Finding the culprit by bisection"): they run at
    once, on the bisected instance alone, which already failed its health check; each must reach exactly one instance.
    """
    windows = deployed_windows(runtime.template)
    problems = []
    for command in list(runtime.fleet.commands.values()):
        if command.operation != "Install":
            continue
        if is_bisection_round(command):
            reached = len(command.invocations)
            problems += [] if reached == 1 else [f"a bisection round's install reached {reached} instances"]
            continue
        for group in sorted(command_groups(command) & set(windows)):
            if not windows[group].takes_installs_at(command.requested):
                problems.append(
                    f"the install on {group} started at {command.requested:%a %d %H:%M}, outside its window"
                )
    return problems


def _freeze_problems(runtime: LocalRuntime, scenario: Scenario) -> list[str]:
    calendar = runtime.calendars.calendars[CHANGE_CALENDAR]
    frozen_until = calendar.closed[0][1]
    installs = [
        c
        for c in runtime.fleet.commands.values()
        if c.operation == "Install" and any(scenario.stage_group in t.get("Values", []) for t in c.targets)
    ]
    problems = [] if installs else [f"no install was sent to {scenario.stage_group}"]
    problems += [
        f"the install on {scenario.stage_group} started during the change freeze ({c.requested:%a %d %H:%M})"
        for c in installs
        if c.requested < frozen_until
    ]
    if not any(state == "CLOSED" for _, _, state in runtime.calendars.queries):
        problems.append("the change calendar was never found CLOSED: the freeze delayed nothing")
    return problems


def run_simulation(
    options: SimulationOptions, say: Callable[[str], None] = lambda _: None, progress: ProgressView | None = None
) -> dict[str, Any]:
    """Run one patch cycle on the local runtime and return summary.json's content.

    `say` gets the narrative lines; `progress`, if given, the stages' counts a few times a second (a live view).
    """
    scenario = SCENARIOS[options.scenario]
    started = time.monotonic()
    out = options.out_dir
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    log = (out / "lambda.log").open("w") if out is not None else None
    chat_path = out / "chat.jsonl" if out is not None else None
    try:
        catalog = scenario_catalog(scenario)
        with (
            ChatSink(chat_path, on_message=lambda message: say(chat_line(message))) as sink,
            LocalRuntime(seed=options.seed, lambda_log=log, stage_catalog=catalog) as runtime,
        ):
            runtime.chat.configure(sink)
            # Metering (metering.py): AWS calls per function and the cost of one command-result event.
            meter = CallMeter.attach(runtime)
            summary = _run(runtime, scenario, options, say, progress)
            summary["metering"] = meter.report()
            summary["real_seconds"] = round(time.monotonic() - started, 2)
    finally:
        if log is not None:
            log.close()
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _inject_failures(
    runtime: LocalRuntime, scenario: Scenario, options: SimulationOptions, say: Callable[[str], None]
) -> FaultInjector:
    """What the scenario breaks on purpose: chat webhooks, AWS faults, malformed events on the bus."""
    if scenario.name == "webhook-outage":
        runtime.chat.sink.fail_next(OUTAGE_FAILURES)  # type: ignore[union-attr]
        say(f"scenario webhook-outage: the next {len(OUTAGE_FAILURES)} chat requests fail (500, 429, timeouts)")
    injector = FaultInjector(scenario.faults, options.seed)
    if scenario.faults.active:
        injector.install(runtime)
        runtime.fleet.emit_event = injector.wrap_emitter(runtime.fleet.emit_event, runtime.scheduler)
        say(f"scenario {scenario.name}: faults injected: {scenario.faults}")
    for _ in range(scenario.malformed_events):
        runtime.router.put_event(json.loads(MALFORMED_EVENT.read_text()))
    return injector


def _report_installs(runtime: LocalRuntime, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """When each install reached the fleet, against its group's window (told to the operator, kept in the summary)."""
    installs = install_starts(runtime)
    for row in installs:
        say(
            f"install on {row['patch_group']:8}{' (canary)' if row['canary'] else '         '} reached the fleet at "
            f"{row['requested']} (sim); window "
            f"{row['window_opens']} to cutoff {row['window_cutoff']}: {'inside' if row['inside_window'] else 'OUTSIDE'}"
        )
    return installs


def _run(
    runtime: LocalRuntime,
    scenario: Scenario,
    options: SimulationOptions,
    say: Callable[[str], None],
    progress: ProgressView | None = None,
) -> dict[str, Any]:
    fleet = runtime.add_instances(
        build_fleet(options.instances, options.seed, min_group_sizes=scenario.min_group_sizes)
    )
    groups: dict[str, int] = {}
    for instance in fleet:
        groups[instance.patch_group] = groups.get(instance.patch_group, 0) + 1
    say(f"fleet: {len(fleet)} simulated instances " + ", ".join(f"{g}={n}" for g, n in groups.items()))
    for group, baselines in runtime.baselines.baselines_by_group().items():
        say(f"  {group:8} baselines: " + ", ".join(sorted(set(baselines.values()))))
    for change in apply_scenario(scenario, fleet, options.seed):
        say(f"scenario {scenario.name}: {change}")
    rollback_case = rollback_demo.prepare(fleet, scenario.name, say)
    injector = _inject_failures(runtime, scenario, options, say)
    on_call = OnCallRedrive(runtime.chat, say)
    demo = ComplianceDemo.prepare(runtime) if options.out_dir is not None else None
    for note in demo.notes if demo is not None else []:
        say(f"compliance demo: {note}")
    catalog = stage_catalog(runtime)
    if scenario.change_freeze_hours:
        for change in close_change_calendar(runtime, scenario):
            say(f"scenario {scenario.name}: {change}")
    # issue 14: the plan preview (`patchpilot plan`) before the cycle starts, in the demo (an output folder)
    say_plan(runtime, catalog, start_request(catalog, scenario, options.cycle), say, options.out_dir is not None)
    earlier: list[dict[str, Any]] = []
    if scenario.name == "next-month":
        month = _cycle(runtime, scenario, options.cycle, options, say, progress)
        earlier.append(_month_summary(options.cycle, month))
        earlier[-1]["problems"] = judge(scenario, month.description, runtime, month.history, month.excluded, 0)
        for change in release_next_month(fleet):
            say(f"next month: {change}")
    cycle = next_cycle(options.cycle) if earlier else options.cycle
    run = _cycle(runtime, scenario, cycle, options, say, progress)
    execution_arn, description, history, excluded = run.execution_arn, run.description, run.history, run.excluded
    duplicate_starts = run.duplicate_starts
    chat = _chat_summary(runtime, on_call)
    status = description["status"]
    problems = [f"{options.cycle}: {problem}" for month in earlier for problem in month["problems"]]
    problems += judge(scenario, description, runtime, history, excluded, duplicate_starts, earlier)
    problems += rollback_demo.conclude(runtime, rollback_case, description, say)  # rollback: the operator's restore
    letters = dead_letters(runtime)
    problems += ingestion_problems(scenario, runtime, letters)
    rows = stage_rows(catalog, history)
    if scenario.faults.active:
        problems += fleet_count_problems(runtime, rows)
    installs = _report_installs(runtime, say)
    executions = runtime.admin.client("stepfunctions").list_executions(stateMachineArn=runtime.state_machine_arn())[
        "executions"
    ]
    summary = {
        "status": status,
        "execution_arn": execution_arn,
        "stages": rows,
        "excluded_patches": excluded,
        "state_transitions": sum(e["type"].endswith("StateEntered") for e in history),
        "max_state_payload_bytes": _payload_sizes(history),
        "notifications": chat,
        "aws_calls": dict(sorted(runtime.aws_calls.items())),
        "scenario": scenario.name,
        "expected": {"status": scenario.expected_status, "error": scenario.expected_error},
        "error": description.get("error"),
        "cause": description.get("cause"),
        "outcome_as_expected": not problems,
        "problems": problems,
        "alerts": [alert.get("kind") for alert in runtime.notifications()],
        "executions_started": len(executions),
        "duplicate_starts_ignored": duplicate_starts,
        "fleet_instances": len(fleet),
        "lost_events": len(runtime.fleet.dropped_events),
        "dead_letters": len(letters),
        "dead_letters_malformed": sum(malformed for _, malformed in letters),
        "faults_injected": dict(sorted(injector.injected.items())),
        "faults_surfaced": dict(sorted(injector.surfaced.items())),  # injected errors that outlived the SDK retries
        "faults_recovered": dict(sorted(injector.recovered.items())),  # calls that the SDK retries saved
        "task_errors_retried": task_errors(history),  # what the state machine's Retry carried over, by error
        "sqs_batches": len(runtime.poller.batches),
        "sqs_messages": sum(batch.size for batch in runtime.poller.batches),
        "invocations": invocation_statuses(runtime),
        "installs": installs,
        "lambda_invocations": len(runtime.lambdas.records),
        "command_result_ms_per_event": _mean_ms(runtime, "CommandResultFunction"),
        "simulated_hours": round(runtime.clock.elapsed_seconds() / 3600, 1),
        "earlier_cycles": earlier,
        "verdict_reasons": _verdict_reasons(history),
    }
    summary["compliance"] = _compliance(runtime, demo, start_request(catalog, scenario, cycle), options.out_dir, say)
    return summary


def _compliance(
    runtime: LocalRuntime,
    demo: ComplianceDemo | None,
    request: dict[str, Any],
    out: Path | None,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """The cycle's compliance summary (from the cycle-finished alert); with an output folder, the demo's reports."""
    finished = [alert for alert in runtime.notifications() if alert.get("kind") == "cycle_finished"]
    cycle = (finished[-1].get("details") or {}).get("compliance") if finished else None
    if demo is None or out is None:
        return {"cycle": cycle}
    run_id = str(finished[-1]["run_id"]) if finished else str(request.get("cycle"))
    report = demo.snapshot(run_id, request["bake_seconds"])
    for note in demo.notes[-1:]:
        say(f"compliance demo: {note}")
    written = copy_reports(runtime, run_id, str(report["report_uri"]), out)
    compliance = compliance_object(written["report.json"], cycle)
    counts = ", ".join(f"{status} {count}" for status, count in compliance["counts"].items())
    say(f"compliance {compliance['rate']} % of {compliance['nodes']} nodes: {counts}")
    stages = sorted(str(path) for name, path in written.items() if name.startswith("stages/"))
    say(f"reports: {written['report.html']}, {written['compliance.csv']}, stage reports {', '.join(stages)}")
    return compliance


@dataclass(frozen=True)
class CycleRun:
    """One cycle's execution as the simulation saw it."""

    execution_arn: str
    description: dict[str, Any]
    history: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    duplicate_starts: int


def next_cycle(cycle: str) -> str:
    """The month after a `YYYY-MM` cycle."""
    year, month = (int(part) for part in cycle.split("-"))
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def _cycle(
    runtime: LocalRuntime,
    scenario: Scenario,
    cycle: str,
    options: SimulationOptions,
    say: Callable[[str], None],
    progress: ProgressView | None = None,
) -> CycleRun:
    """Start one cycle through the real start function and follow it to its end."""
    request = start_request(stage_catalog(runtime), scenario, cycle)
    first = runtime.lambdas.invoke("StartRolloutFunction", request)
    if first.failed:
        raise RuntimeError(f"StartRolloutFunction failed: {first.error_type}: {first.error_message}")
    execution_arn = first.payload["execution_arn"]
    say(f"execution started: {execution_arn}")
    duplicate_starts = 0
    if scenario.name == "duplicate-start":
        again = runtime.lambdas.invoke("StartRolloutFunction", request)
        duplicate_starts = int(not again.failed and not again.payload["started"])
        say(f"second start of cycle {cycle}: {'no-op' if duplicate_starts else 'STARTED AGAIN'}")
    on_call = OnCall(runtime, scenario, say)
    timeout = options.real_timeout_seconds or 600.0 + 1.0 * options.instances
    description = _follow(runtime, execution_arn, timeout, on_call, progress)
    runtime.settle()
    on_call.read_alerts()
    history = runtime.history(execution_arn)
    return CycleRun(execution_arn, description, history, excluded_patches(history), duplicate_starts)


def _month_summary(cycle: str, run: CycleRun) -> dict[str, Any]:
    return {
        "cycle": cycle,
        "status": run.description["status"],
        "error": run.description.get("error"),
        "excluded_patches": run.excluded,
    }


def _verdict_reasons(history: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The last verdict's reason counts per stage (what made a stage unhealthy)."""
    return {state["stage"]["name"]: state["verdict"]["reasons"] for state in _exited(history, "Verify Stage Health")}


def task_errors(history: list[dict[str, Any]]) -> dict[str, int]:
    """How many times each error failed a Task of the execution (Lambda and SDK tasks; retried or caught)."""
    errors: Counter[str] = Counter()
    for event in history:
        details = event.get("lambdaFunctionFailedEventDetails") or event.get("taskFailedEventDetails") or {}
        if details.get("error"):
            errors[str(details["error"])] += 1
    return dict(sorted(errors.items()))
