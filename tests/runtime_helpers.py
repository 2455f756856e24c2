"""Helpers for tests that run the real ASL and handlers on the local runtime."""

import json
from typing import Any

from patchpilot_local.fleet import SimulatedInstance
from patchpilot_local.runtime import LocalRuntime
from patchpilot_local.scenarios import build_fleet
from patchpilot_local.simulate import compress_request

REAL_TIMEOUT = 90.0


def dev_fleet(runtime: LocalRuntime, instances: int = 10, seed: int = 3) -> list[SimulatedInstance]:
    return [i for i in runtime.add_instances(build_fleet(instances, seed)) if i.patch_group == "dev"]


def rollout_request(run_id: str = "test-run", **stage: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "stage": {"name": "dev", "patch_group": "dev", "bake_seconds": 3600, **stage},
        "limits": {"heartbeat_seconds": 900, "install_timeout_seconds": 14_400},
    }


def run_rollout(runtime: LocalRuntime, request: dict[str, Any], name: str = "test-run") -> dict[str, Any]:
    arn = runtime.start_rollout(compress_request(request, runtime.clock) if "stage" in request else request, name=name)
    description = runtime.wait_for_execution(arn, timeout=REAL_TIMEOUT)
    runtime.settle(timeout=10)
    return description


def entered_states(runtime: LocalRuntime, execution_arn: str) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in runtime.history(execution_arn) if "stateEnteredEventDetails" in e
    ]


def send_command_parameters(runtime: LocalRuntime, execution_arn: str) -> dict[str, Any]:
    for event in runtime.history(execution_arn):
        details = event.get("taskScheduledEventDetails")
        if details and details["resource"] == "sendCommand":
            parameters: dict[str, Any] = json.loads(details["parameters"])
            return parameters
    raise AssertionError("no sendCommand task in the history")
