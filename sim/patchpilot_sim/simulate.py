"""One local patch cycle: fleet + scenario -> the real start function and state machine -> summary.json."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from patchpilot.models.rollout import HealthCheck, StageCatalog
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import SCENARIOS, Scenario, apply_scenario, build_fleet
from patchpilot_sim.template import SamTemplate
from patchpilot_sim.windows import Calendar, deployed_windows

CHANGE_CALENDAR = "patchpilot-change-freeze"
LINUX_HEALTH_CHECK = HealthCheck(document_name="AWS-RunShellScript", commands=["curl -fsS http://localhost/health"])
WINDOWS_HEALTH_CHECK = HealthCheck(
    document_name="AWS-RunPowerShellScript",
    commands=["Invoke-WebRequest -UseBasicParsing http://localhost/health | Out-Null"],
)
# Bakes are pure waiting: one real second per simulated day, and the simulated clock jumps over the rest.
BAKE_SECONDS_PER_REAL_SECOND = 86_400
# Waits that guard against lost events are floored in *real* seconds: in-process handler latency is not
# compressed by the clock, so a heartbeat of a few simulated minutes would otherwise fire on every event.
LOCAL_LIMITS = {"heartbeat_seconds": 5, "install_timeout_seconds": 60, "max_reconcile_attempts": 5}
APPROVAL_TIMEOUT_REAL_SECONDS = 15
ON_CALL_ANSWER_SIMULATED_SECONDS = 1_800
SHOWN_STATES = {
    "Request Approval": "waiting for approval",
    "Plan Stage Step": "planning",
    "Verify Stage Health": "verifying health",
    "Find Failing Patches": "correlating patches of unhealthy instances",
    "Bake": "baking",
    "Wait For Install Window": "waiting for its maintenance window",
    "Run Stage Commands": "sending commands",
    "Record Stage Passed": "passed",
    "Reconcile Command Results": "reconciling lost results",
}


@dataclass(frozen=True)
class SimulationOptions:
    instances: int = 40
    scenario: str = "healthy"
    seed: int = 7
    time_scale: float = 3_600.0
    cycle: str = "2026-12"
    out_dir: Path | None = Path("out/demo")
    real_timeout_seconds: float = 600.0


def stage_catalog(runtime: LocalRuntime) -> StageCatalog:
    """The stage catalog the template gives the planner (rendered from the policy)."""
    raw = runtime.resolver.get_att("StageCatalogParameter", "Value")
    return StageCatalog.model_validate_json(raw)


def start_request(catalog: StageCatalog, scenario: Scenario, cycle: str) -> dict[str, Any]:
    """The StartRolloutFunction payload of the scenario, with bakes and waits compressed."""
    request: dict[str, Any] = {
        "mode": scenario.mode,
        "cycle": cycle,
        "bake_seconds": {
            stage.name: max(1, round(stage.bake_seconds / BAKE_SECONDS_PER_REAL_SECOND)) for stage in catalog.stages
        },
        "approval_timeout_seconds": APPROVAL_TIMEOUT_REAL_SECONDS,
        "limits": LOCAL_LIMITS,
    }
    if scenario.stages is not None:
        request["stages"] = list(scenario.stages)
        request["bake_seconds"] = {name: request["bake_seconds"][name] for name in scenario.stages}
    if scenario.patch_ids:
        request["patch_ids"] = list(scenario.patch_ids)
    return request


class OnCall:
    """Plays the on-call engineer: reads every alert, answers approval requests through the decide function."""

    def __init__(self, runtime: LocalRuntime, scenario: Scenario, say: Callable[[str], None]) -> None:
        self.runtime = runtime
        self.scenario = scenario
        self.say = say
        self.seen = 0
        self.decisions: list[dict[str, Any]] = []

    def read_alerts(self) -> None:
        alerts = self.runtime.notifications()
        for alert in alerts[self.seen :]:
            self.say(f"  alert [{alert.get('kind')}] {alert.get('summary') or alert.get('stage_name') or ''}".rstrip())
            if alert.get("kind") == "approval_requested" and self.scenario.approves:
                self._approve_later(str(alert["approval_id"]))
        self.seen = len(alerts)

    def _approve_later(self, approval_id: str) -> None:
        def approve() -> None:
            result = self.runtime.lambdas.invoke(
                "DecideApprovalFunction",
                {"approval_id": approval_id, "decision": "approve", "approver": "on-call (simulated)"},
            )
            self.decisions.append({"approval_id": approval_id, "failed": result.failed})

        self.runtime.scheduler.after(ON_CALL_ANSWER_SIMULATED_SECONDS, approve)


def _shown(entered: dict[str, Any]) -> str:
    text = SHOWN_STATES[entered["name"]]
    if entered["name"] == "Wait For Install Window":
        start = json.loads(entered["input"])["step"]["start"]
        text += f" ({start['reason'].replace('_', ' ')}; the install may start {start['opens_at']}"
        text += f" until {start['cutoff_at']})" if start.get("cutoff_at") else ")"
    return text


def _stage_name(details: dict[str, Any]) -> str | None:
    try:
        stage = json.loads(details.get("input") or "{}").get("stage")
    except json.JSONDecodeError:
        return None
    return stage.get("name") if isinstance(stage, dict) else None


def _follow(runtime: LocalRuntime, execution_arn: str, timeout: float, on_call: OnCall) -> dict[str, Any]:
    """Wait for the execution, telling the operator what happens (in simulated time)."""
    sfn = runtime.admin.client("stepfunctions")
    seen = 0
    deadline = time.monotonic() + timeout
    while True:
        history = runtime.history(execution_arn)
        for event in history[seen:]:
            entered = event.get("stateEnteredEventDetails")
            if not entered or entered["name"] not in SHOWN_STATES:
                continue
            stage = _stage_name(entered) or ""
            on_call.say(f"[sim {runtime.clock.now():%a %d %H:%M}] {stage:8} {_shown(entered)}")
            if entered["name"] == "Bake":
                real_bake = json.loads(entered["input"])["stage"]["bake_seconds"]
                runtime.clock.jump(real_bake * (BAKE_SECONDS_PER_REAL_SECOND - runtime.clock.time_scale))
        seen = len(history)
        on_call.read_alerts()
        description = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] != "RUNNING":
            return dict(description)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout:.0f} s of real time")
        time.sleep(0.1)


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
) -> list[str]:
    """Everything about the run that contradicts the scenario's expectation (empty: it ended as expected)."""
    problems = []
    if (description["status"], description.get("error")) != (scenario.expected_status, scenario.expected_error):
        problems.append(
            f"ended {description['status']} {description.get('error') or ''}, expected "
            f"{scenario.expected_status} {scenario.expected_error or ''}".strip()
        )
    entered = {e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e}
    problems += [f"never entered {state!r}" for state in scenario.must_enter if state not in entered]
    if scenario.name == "bad-patch":
        problems += _bad_patch_problems(runtime, excluded)
    problems += aws_semantics_problems(scenario, runtime)
    if scenario.name == "duplicate-start" and duplicate_starts != 1:
        problems.append("the second start of the cycle was not a no-op")
    if scenario.name == "emergency":
        allowed = set(scenario.patch_ids)
        for instance in runtime.fleet.instances.values():
            extra = runtime.fleet.installed_during_cycle(instance.instance_id) - allowed
            if extra:
                problems.append(f"{instance.instance_id} installed {sorted(extra)} outside the emergency list")
                break
    return problems


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


def install_starts(runtime: LocalRuntime) -> list[dict[str, Any]]:
    """Ground truth for the operator: when each install reached the fleet (simulated time) and its group's window."""
    windows = deployed_windows(runtime.template)
    rows = []
    for command in sorted(list(runtime.fleet.commands.values()), key=lambda c: c.requested):
        if command.operation != "Install":
            continue
        for group in sorted({v for t in command.targets for v in t.get("Values", [])} & set(windows)):
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
                }
            )
    return rows


def _health_command_problems(runtime: LocalRuntime) -> list[str]:
    health = [c for c in list(runtime.fleet.commands.values()) if c.operation == "Health"]
    documents = {c.document_name for c in health}
    if documents != {"AWS-RunShellScript", "AWS-RunPowerShellScript"}:
        return [f"health commands sent with {sorted(documents)}, expected both shell documents"]
    checked = {i for c in health for i, inv in c.invocations.items() if inv.status == "Success"}
    unchecked = set(runtime.fleet.instances) - checked
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
    bad = {
        patch_id
        for instance in runtime.fleet.instances.values()
        for patch_id, record in instance.patches.items()
        if record.fails_install or record.breaks_health
    }
    problems = []
    if not bad & {patch["patch_id"] for patch in excluded}:
        problems.append(f"the bad patch {sorted(bad)} was not excluded (excluded: {excluded})")
    for instance in runtime.fleet.instances.values():
        if instance.patch_group.startswith("prod") and bad & runtime.fleet.installed_patches(instance.instance_id):
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
        changes |= {"health_check": LINUX_HEALTH_CHECK, "windows_health_check": WINDOWS_HEALTH_CHECK}
    if not changes:
        return None
    deployed = StageCatalog.model_validate_json(SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"])
    return StageCatalog(stages=[stage.model_copy(update=changes) for stage in deployed.stages])


def close_change_calendar(runtime: LocalRuntime, scenario: Scenario) -> list[str]:
    """The scenario's change freeze: the calendar is CLOSED from an hour before its group's next window opening."""
    window = deployed_windows(runtime.template)[scenario.stage_group]
    opens = window.first_opening_after(runtime.clock.now())
    freeze = (opens - timedelta(hours=1), opens + timedelta(hours=scenario.change_freeze_hours))
    runtime.calendars.add(Calendar(CHANGE_CALENDAR, closed=[freeze]))
    return [f"change calendar {CHANGE_CALENDAR} CLOSED {freeze[0]:%a %d %H:%M} to {freeze[1]:%a %d %H:%M} (sim)"]


def window_problems(runtime: LocalRuntime) -> list[str]:
    """Every install must have started inside its patch group's maintenance window, before the cutoff."""
    windows = deployed_windows(runtime.template)
    problems = []
    for command in list(runtime.fleet.commands.values()):
        if command.operation != "Install":
            continue
        groups = {value for target in command.targets for value in target.get("Values", [])}
        for group in sorted(groups & set(windows)):
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


def run_simulation(options: SimulationOptions, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run one patch cycle on the local runtime and return summary.json's content."""
    scenario = SCENARIOS[options.scenario]
    started = time.monotonic()
    out = options.out_dir
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    log = (out / "lambda.log").open("w") if out is not None else None
    try:
        catalog = scenario_catalog(scenario)
        with LocalRuntime(
            time_scale=options.time_scale, seed=options.seed, lambda_log=log, stage_catalog=catalog
        ) as runtime:
            summary = _run(runtime, scenario, options, say)
            summary["real_seconds"] = round(time.monotonic() - started, 2)
    finally:
        if log is not None:
            log.close()
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _run(
    runtime: LocalRuntime, scenario: Scenario, options: SimulationOptions, say: Callable[[str], None]
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
    catalog = stage_catalog(runtime)
    runtime.clock.restart()
    if scenario.change_freeze_hours:
        for change in close_change_calendar(runtime, scenario):
            say(f"scenario {scenario.name}: {change}")
    request = start_request(catalog, scenario, options.cycle)
    first = runtime.lambdas.invoke("StartRolloutFunction", request)
    if first.failed:
        raise RuntimeError(f"StartRolloutFunction failed: {first.error_type}: {first.error_message}")
    execution_arn = first.payload["execution_arn"]
    say(f"execution started: {execution_arn}")
    duplicate_starts = 0
    if scenario.name == "duplicate-start":
        again = runtime.lambdas.invoke("StartRolloutFunction", request)
        duplicate_starts = int(not again.failed and not again.payload["started"])
        say(f"second start of cycle {options.cycle}: {'no-op' if duplicate_starts else 'STARTED AGAIN'}")
    on_call = OnCall(runtime, scenario, say)
    description = _follow(runtime, execution_arn, options.real_timeout_seconds, on_call)
    runtime.settle(timeout=10)
    on_call.read_alerts()
    history = runtime.history(execution_arn)
    status = description["status"]
    installs = install_starts(runtime)
    for row in installs:
        say(
            f"install on {row['patch_group']:8} reached the fleet at {row['requested']} (sim); window "
            f"{row['window_opens']} to cutoff {row['window_cutoff']}: {'inside' if row['inside_window'] else 'OUTSIDE'}"
        )
    excluded = excluded_patches(history)
    problems = judge(scenario, description, runtime, history, excluded, duplicate_starts)
    executions = runtime.admin.client("stepfunctions").list_executions(stateMachineArn=runtime.state_machine_arn())[
        "executions"
    ]
    return {
        "status": status,
        "execution_arn": execution_arn,
        "stages": stage_rows(catalog, history),
        "excluded_patches": excluded,
        "state_transitions": sum(e["type"].endswith("StateEntered") for e in history),
        "max_state_payload_bytes": _payload_sizes(history),
        "notifications": len(runtime.notifications()),
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
        "invocations": invocation_statuses(runtime),
        "installs": installs,
        "dead_letters": len(runtime.router.dead_letters),
        "lambda_invocations": len(runtime.lambdas.records),
        "command_result_ms_per_event": _mean_ms(runtime, "CommandResultFunction"),
        "simulated_hours": round(runtime.clock.elapsed_seconds() / 3600, 1),
    }
