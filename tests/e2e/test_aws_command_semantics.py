"""The rollout on a fleet that behaves as AWS documents Run Command: resolved targets, every document's events."""

import json
from pathlib import Path

import pytest

from patchpilot_sim.fleet import SimulatedInstance
from patchpilot_sim.runtime import LocalRuntime
from tests.runtime_helpers import launch_fleet, start, task_outputs

pytestmark = pytest.mark.runtime
EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize("document", ["AWS-RunShellScript", "AWS-RunPowerShellScript"])
def test_health_command_status_events_reach_the_command_result_function(document: str) -> None:
    event = json.loads((EVENTS / "ssm/command-invocation-success.json").read_text())
    event["detail"]["document-name"] = document
    with LocalRuntime() as runtime:
        results = runtime.router.deliver_now(event)
        assert [spec.logical_id for spec, _ in results] == ["CommandResultFunction"]
        assert not results[0][1].failed


def test_install_wait_resumes_only_after_an_instance_targeted_after_planning_reports() -> None:
    with LocalRuntime() as runtime:
        planned = launch_fleet(runtime, instances=10, groups={"dev"})["dev"]
        late = SimulatedInstance(
            instance_id="i-0fffffffffffffff1",
            patch_group="dev",
            platform="AMAZON_LINUX_2023",
            tags={"PatchGroup": "dev", "Name": "dev-late"},
            install_minutes=90.0,  # still installing when the planned instances have all reported
        )
        runtime.fleet.join_during_next_install = [late]
        description = start(runtime, stages=["dev"])
        assert description["status"] == "SUCCEEDED", description.get("cause")
        install_tally = task_outputs(runtime, description["executionArn"], "Wait For Command Results")[0]["tally"]
        assert install_tally["expected"] == len(planned) + 1
        assert install_tally["reported"] == len(planned) + 1
        assert runtime.fleet.installed_during_cycle(late.instance_id)
