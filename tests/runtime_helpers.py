"""Helpers for tests that run the real ASL and handlers on the local runtime."""

import json
from typing import Any

from patchpilot_sim.fleet import SimulatedInstance
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import build_fleet
from patchpilot_sim.simulate import APPROVAL_TIMEOUT_SECONDS, LOCAL_LIMITS

REAL_TIMEOUT = 120.0


def launch_fleet(
    runtime: LocalRuntime, instances: int = 10, seed: int = 3, groups: set[str] | None = None
) -> dict[str, list[SimulatedInstance]]:
    fleet = [i for i in build_fleet(instances, seed) if groups is None or i.patch_group in groups]
    by_group: dict[str, list[SimulatedInstance]] = {}
    for instance in runtime.add_instances(fleet):
        by_group.setdefault(instance.patch_group, []).append(instance)
    return by_group


def start(runtime: LocalRuntime, stages: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """Start a rollout through the real StartRolloutFunction (compressed bakes and waits) and wait for its end."""
    request: dict[str, Any] = {
        "mode": "manual",
        "cycle": "2026-12",
        "limits": LOCAL_LIMITS,
        "approval_timeout_seconds": APPROVAL_TIMEOUT_SECONDS,
        **fields,
    }
    if stages is not None:
        request["stages"] = stages
        request.setdefault("bake_seconds", {stage: 1 for stage in stages})
    result = runtime.lambdas.invoke("StartRolloutFunction", request)
    assert not result.failed, result.error_message
    description = runtime.wait_for_execution(result.payload["execution_arn"], timeout=REAL_TIMEOUT)
    runtime.settle(timeout=10)
    return description


def entered_states(runtime: LocalRuntime, execution_arn: str) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in runtime.history(execution_arn) if "stateEnteredEventDetails" in e
    ]


def sent_commands(runtime: LocalRuntime, execution_arn: str) -> list[dict[str, Any]]:
    commands = []
    for event in runtime.history(execution_arn):
        details = event.get("taskScheduledEventDetails")
        if details and details["resource"] == "sendCommand":
            commands.append(json.loads(details["parameters"]))
    return commands


def task_outputs(runtime: LocalRuntime, execution_arn: str, state: str) -> list[dict[str, Any]]:
    return [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in runtime.history(execution_arn)
        if (e.get("stateExitedEventDetails") or {}).get("name") == state
    ]
