"""An `aws-sdk:` task that AWS answers with an error fails with the service's error name, so Retry and Catch apply.

AWS error answers carry a request id; the local runtime's error answers (fault injection, stand-ins) do too. Without
it, moto's engine could not build the task's Cause and ended the whole execution with `States.Runtime` (the chaos
scenario's intermittent `FAILED States.Runtime`: an injected SSM fault on the workflow's own SendCommand).
"""

import pytest

from patchpilot_sim.faults import NO_FAULTS, FaultInjector
from patchpilot_sim.runtime import LocalRuntime
from tests.runtime_helpers import launch_fleet, start

pytestmark = pytest.mark.runtime


def test_send_command_error_is_caught_as_the_ssm_error_and_stops_the_stage() -> None:
    with LocalRuntime(seed=3) as runtime:
        launch_fleet(runtime, instances=4, groups={"dev"})
        injector = FaultInjector(NO_FAULTS, seed=1)
        injector.install(runtime)
        injector.refuse("ssm", "SendCommand", "AccessDeniedException", lambda _: True)
        description = start(runtime, ["dev"])
        assert injector.injected["ssm.AccessDeniedException"] >= 1
        assert (description["status"], description["error"]) == ("FAILED", "Ssm.AccessDeniedException")
        failed_tasks = [
            e["taskFailedEventDetails"]
            for e in runtime.history(description["executionArn"])
            if "taskFailedEventDetails" in e
        ]
        send_command = [d for d in failed_tasks if d.get("resource") == "sendCommand"]
        assert send_command, failed_tasks
        assert send_command[0]["error"] == "Ssm.AccessDeniedException"
        assert "Request ID: " in send_command[0]["cause"]
        alert = runtime.notifications()[-1]
        assert (alert["kind"], alert["details"]["error"]) == ("rollout_failed", "Ssm.AccessDeniedException")
