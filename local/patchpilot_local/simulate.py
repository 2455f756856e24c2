"""One local patch cycle: fleet + scenario -> the real state machine -> summary.json."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchpilot.integrations.dynamodb_tracker import DynamoDBInstallTracker
from patchpilot_local.clock import SimClock
from patchpilot_local.runtime import LocalRuntime
from patchpilot_local.scenarios import SCENARIOS, apply_scenario, build_fleet

# Waits that guard against lost events are floored in *real* seconds: in-process handler latency is not
# compressed by the clock, so a heartbeat of a few simulated minutes would otherwise fire on every event.
MIN_REAL_HEARTBEAT_SECONDS = 3
MIN_REAL_INSTALL_TIMEOUT_SECONDS = 60
# Bakes are pure waiting: one real second per simulated day, and the simulated clock jumps over the rest.
BAKE_SECONDS_PER_REAL_SECOND = 86_400


@dataclass(frozen=True)
class SimulationOptions:
    instances: int = 40
    scenario: str = "healthy"
    seed: int = 7
    time_scale: float = 3_600.0
    stage: str = "dev"
    bake_hours: float = 24.0
    out_dir: Path | None = Path("out/demo")
    real_timeout_seconds: float = 300.0


def compress_request(request: dict[str, Any], clock: SimClock) -> dict[str, Any]:
    """The execution input with every simulated duration turned into compressed real seconds."""
    stage = dict(request["stage"])
    stage["bake_seconds"] = max(1, round(stage["bake_seconds"] / BAKE_SECONDS_PER_REAL_SECOND))
    limits = dict(request.get("limits", {}))
    limits["heartbeat_seconds"] = max(
        MIN_REAL_HEARTBEAT_SECONDS, math.ceil(clock.to_real(limits.get("heartbeat_seconds", 900)))
    )
    limits["install_timeout_seconds"] = max(
        MIN_REAL_INSTALL_TIMEOUT_SECONDS, math.ceil(clock.to_real(limits.get("install_timeout_seconds", 14_400)))
    )
    return {**request, "stage": stage, "limits": limits}


def _stage_rows(runtime: LocalRuntime, history: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    tracker = DynamoDBInstallTracker(runtime.resources.table_names["RunsTable"], runtime.admin.client("dynamodb"))
    stages, current = [], None
    for event in history:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") == "Install Patches":
            current = json.loads(details["output"])
            stages.append(current)
    rows = []
    verified = any(
        (e.get("stateExitedEventDetails") or {}).get("name") == "Verify Stage Health"
        and "verdict" in json.loads(e["stateExitedEventDetails"]["output"])
        for e in history
    )
    for state in stages:
        command = tracker.get_command(state["install_command"]["command_id"])
        reported = command.reported if command else 0
        failed = command.failed if command else 0
        rows.append(
            {
                "name": state["plan"]["stage_name"],
                "patch_group": state["plan"]["patch_group"],
                "status": "succeeded" if status == "SUCCEEDED" and verified else "failed",
                "targeted": state["plan"]["targeted_instances"],
                "succeeded": reported - failed,
                "failed": failed + max(state["plan"]["targeted_instances"] - reported, 0),
                "command_id": state["install_command"]["command_id"],
            }
        )
    return rows


def _payload_sizes(history: list[dict[str, Any]]) -> int:
    sizes = [0]
    for event in history:
        for key, field in (("stateEnteredEventDetails", "input"), ("stateExitedEventDetails", "output")):
            text = (event.get(key) or {}).get(field)
            if text is not None:
                sizes.append(len(text.encode()))
    return max(sizes)


def run_simulation(options: SimulationOptions, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run one patch cycle on the local runtime and return summary.json's content."""
    scenario = SCENARIOS[options.scenario]
    started = time.monotonic()
    out = options.out_dir
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    log = (out / "lambda.log").open("w") if out is not None else None
    try:
        with LocalRuntime(time_scale=options.time_scale, seed=options.seed, lambda_log=log) as runtime:
            fleet = runtime.add_instances(build_fleet(options.instances, options.seed))
            groups: dict[str, int] = {}
            for instance in fleet:
                groups[instance.patch_group] = groups.get(instance.patch_group, 0) + 1
            say(f"fleet: {len(fleet)} simulated instances " + ", ".join(f"{g}={n}" for g, n in groups.items()))
            for change in apply_scenario(scenario, fleet, options.stage, options.seed):
                say(f"scenario {scenario.name}: {change}")
            request: dict[str, Any] = {
                "run_id": f"local-{options.scenario}-{options.seed}",
                "stage": {
                    "name": options.stage,
                    "patch_group": options.stage,
                    "bake_seconds": int(options.bake_hours * 3600),
                },
                "limits": {"heartbeat_seconds": 900, "install_timeout_seconds": 14_400},
            }
            runtime.clock.restart()
            execution_arn = runtime.start_rollout(compress_request(request, runtime.clock), name=request["run_id"])
            say(f"execution started: {execution_arn}")
            description = _follow(runtime, execution_arn, options.real_timeout_seconds, say)
            runtime.settle(timeout=10)
            history = runtime.history(execution_arn)
            status = description["status"]
            summary: dict[str, Any] = {
                "status": status,
                "execution_arn": execution_arn,
                "stages": _stage_rows(runtime, history, status),
                "excluded_patches": [],
                "state_transitions": sum(e["type"].endswith("StateEntered") for e in history),
                "max_state_payload_bytes": _payload_sizes(history),
                "notifications": len(runtime.notifications()),
                "aws_calls": dict(sorted(runtime.aws_calls.items())),
                "scenario": scenario.name,
                "error": description.get("error"),
                "cause": description.get("cause"),
                "outcome_as_expected": status == scenario.expected_status
                and description.get("error") == scenario.expected_error,
                "fleet_instances": len(fleet),
                "lost_events": len(runtime.fleet.dropped_events),
                "dead_letters": len(runtime.router.dead_letters),
                "lambda_invocations": len(runtime.lambdas.records),
                "simulated_hours": round(runtime.clock.elapsed_seconds() / 3600, 1),
                "real_seconds": round(time.monotonic() - started, 2),
            }
    finally:
        if log is not None:
            log.close()
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _follow(runtime: LocalRuntime, execution_arn: str, timeout: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Wait for the execution, telling each state as it is entered (in simulated time)."""
    sfn = runtime.admin.client("stepfunctions")
    seen = 0
    deadline = time.monotonic() + timeout
    while True:
        history = runtime.history(execution_arn)
        for event in history[seen:]:
            entered = event.get("stateEnteredEventDetails")
            if entered:
                say(f"[sim {runtime.clock.now():%a %H:%M}] {entered['name']}")
            if entered and event["type"] == "WaitStateEntered":
                real_bake = json.loads(entered["input"])["plan"]["bake_seconds"]
                runtime.clock.jump(real_bake * (BAKE_SECONDS_PER_REAL_SECOND - runtime.clock.time_scale))
        seen = len(history)
        description = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] != "RUNNING":
            return dict(description)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout:.0f} s of real time")
        time.sleep(0.1)
