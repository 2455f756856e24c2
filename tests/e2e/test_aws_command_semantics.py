"""The rollout on a fleet that behaves as AWS documents Run Command: resolved targets, every document's events."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from patchpilot.models.rollout import StageCatalog
from patchpilot_sim.fleet import SimulatedInstance
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.scenarios import build_fleet
from patchpilot_sim.template import SamTemplate
from patchpilot_sim.windows import Calendar, deployed_windows
from tests.runtime_helpers import entered_states, launch_fleet, start, task_outputs

pytestmark = pytest.mark.runtime
EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_health_command_status_events_reach_the_command_result_function_by_the_stacks_document_name() -> None:
    event = json.loads((EVENTS / "ssm/command-invocation-success.json").read_text())
    with LocalRuntime() as runtime:
        event["detail"]["document-name"] = runtime.resolver.ref("HealthCheckDocument")
        results = runtime.router.deliver_now(event)
        assert [spec.logical_id for spec, _ in results] == ["CommandResultFunction"]
        assert not results[0][1].failed
        # PatchPilot no longer sends the AWS shell documents: other teams' shell commands stay out of its queue
        for document in ("AWS-RunShellScript", "AWS-RunPowerShellScript"):
            event["detail"]["document-name"] = document
            assert runtime.router.deliver_now(event) == []


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
        arn = description["executionArn"]
        tallies = [  # what the command-result function resumed each wait with (the wait keeps phase and id)
            output
            for e in runtime.history(arn)
            if (e.get("taskSucceededEventDetails") or {}).get("resource") == "invoke.waitForTaskToken"
            and "command_id" in (output := json.loads(e["taskSucceededEventDetails"]["output"]))
        ]
        tallies += [o["reconcile"]["tally"] for o in task_outputs(runtime, arn, "Reconcile Command Results")]
        [install] = [c for c in runtime.fleet.commands.values() if c.operation == "Install"]
        [final] = [t for t in tallies if t["command_id"] == install.command_id and t["complete"]]
        assert final["expected"] == len(planned) + 1
        assert final["reported"] == len(planned) + 1
        assert runtime.fleet.installed_during_cycle(late.instance_id)


def _catalog_with_calendar(name: str) -> StageCatalog:
    deployed = StageCatalog.model_validate_json(SamTemplate().resources["StageCatalogParameter"]["Properties"]["Value"])
    return StageCatalog(stages=[stage.model_copy(update={"change_calendar": name}) for stage in deployed.stages])


def test_install_starts_in_the_window_once_the_change_calendar_opens() -> None:
    with LocalRuntime(stage_catalog=_catalog_with_calendar("freeze")) as runtime:
        launch_fleet(runtime, instances=10, groups={"dev"})
        window = deployed_windows(runtime.template)["dev"]
        opens = window.first_opening_after(runtime.clock.now())
        freeze_ends = opens + timedelta(minutes=30)
        runtime.calendars.add(Calendar("freeze", closed=[(opens - timedelta(hours=2), freeze_ends)]))
        description = start(runtime, stages=["dev"])
        assert description["status"] == "SUCCEEDED", description.get("cause")
        assert entered_states(runtime, description["executionArn"]).count("Wait For Install Window") == 2
        [install] = [c for c in runtime.fleet.commands.values() if c.operation == "Install"]
        assert freeze_ends <= install.requested
        assert window.takes_installs_at(install.requested)
        assert [state for _, _, state in runtime.calendars.queries] == ["CLOSED", "OPEN"]


def test_launched_fleet_carries_each_instance_s_tags_in_moto_ec2() -> None:
    # Given a fleet over several patch groups and OSes, one instance without a Name, one without any tag
    fleet = build_fleet(12, 4)
    fleet.append(SimulatedInstance("", "dev", "UBUNTU", tags={"PatchGroup": "dev", "OS": "UBUNTU"}))
    fleet.append(SimulatedInstance("", "", "UBUNTU", tags={}))
    with LocalRuntime() as runtime:
        # When it is launched (instances sharing all tags but their Name in one RunInstances)
        added = runtime.add_instances(fleet)
        described = {
            i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            for r in runtime.admin.client("ec2").describe_instances()["Reservations"]
            for i in r["Instances"]
        }
        # Then every instance is a distinct moto instance with exactly its own tags, and the agent manages each
        assert len({i.instance_id for i in added}) == len(fleet)
        assert {i.instance_id: i.tags for i in added} == described
        assert all(i.instance_id in runtime.fleet.instances for i in added)
