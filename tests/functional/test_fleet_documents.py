"""The simulated fleet runs custom schema 2.2 Command documents as AWS documents them: PatchPilot's health check.

Sources: SSM user guide, documents-schemas-features.md ("Using the precondition parameter": a step is run or skipped
per platform; plugin compatibility before the precondition; only StringEquals), documents-command-ssm-plugin-reference
(aws:runShellScript runs on Linux, aws:runPowerShellScript on Windows and Linux), monitor-commands.md ("Invalid
Platform"); amazon-ssm-agent agent/contracts/aggregator.go (a skipped step is a form of success).
"""

from collections.abc import Iterator
from typing import Any

import pytest

from patchpilot.models.rollout import HealthCheck
from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.fleet import (
    Command,
    SimulatedApiError,
    SimulatedInstance,
    SsmAgentSimulator,
    healthy_outcome,
)
from patchpilot_sim.template import SamTemplate

GROUP = "dev"
DOCUMENT = "patchpilot-local-HealthCheckDocument"
CONTENT: dict[str, Any] = SamTemplate().resources["HealthCheckDocument"]["Properties"]["Content"]


class _Fleet:
    """The simulator with the stack's health-check document, and which instances' health steps really ran."""

    def __init__(self, sim: SsmAgentSimulator) -> None:
        self.sim = sim
        self.ran: list[str] = []
        self.failing: set[str] = set()  # reachable instances whose health commands fail (e.g. the app is down)
        sim.register_document(DOCUMENT, CONTENT)
        sim.health_outcome = self._outcome

    def _outcome(self, command: Command, instance: SimulatedInstance) -> str:
        self.ran.append(instance.instance_id)
        return "Failed" if instance.instance_id in self.failing else healthy_outcome(command, instance)

    def add(self, name: str, platform: str, failing: bool = False) -> str:
        instance_id = f"i-0{name:0>16}"
        if failing:
            self.failing.add(instance_id)
        self.sim.add_instance(
            SimulatedInstance(
                instance_id=instance_id,
                patch_group=GROUP,
                platform=platform,
                tags={"PatchGroup": GROUP},
            )
        )
        return instance_id

    def send(self, document: str = DOCUMENT, **params: Any) -> str:
        request = {
            "DocumentName": document,
            "Targets": [{"Key": "tag:PatchGroup", "Values": [GROUP]}],
            "MaxConcurrency": "100%",
            "MaxErrors": "100%",
            **params,
        }
        command_id = str(self.sim.handle("SendCommand", request)["Command"]["CommandId"])
        assert self.sim.clock.run_until(lambda: not self.sim.busy()), "the simulated command did not finish"
        return command_id

    def statuses(self, command_id: str) -> dict[str, str]:
        rows = self.sim.handle("ListCommandInvocations", {"CommandId": command_id})["CommandInvocations"]
        return {row["InstanceId"]: row["Status"] for row in rows}

    def command(self, command_id: str) -> dict[str, Any]:
        return dict(self.sim.handle("ListCommands", {"CommandId": command_id})["Commands"][0])


@pytest.fixture
def fleet() -> Iterator[_Fleet]:
    clock = SimClock()
    scheduler = Scheduler(clock)
    yield _Fleet(SsmAgentSimulator(clock, scheduler, lambda _: None, "us-east-1", seed=5))
    scheduler.stop()
    assert not scheduler.errors


def test_health_check_document_runs_once_per_node_on_a_mixed_group(fleet: _Fleet) -> None:
    linux, windows = fleet.add("a1", "AMAZON_LINUX_2023"), fleet.add("b1", "WINDOWS")
    broken = fleet.add("c1", "UBUNTU", failing=True)
    check = HealthCheck(linux_commands=["curl -f :8080"], windows_commands=["Test-NetConnection -Port 443"])
    command_id = fleet.send(Parameters=check.parameters())
    # the other platform's step is skipped, never InvalidPlatform; the step that ran decides the invocation
    assert fleet.statuses(command_id) == {linux: "Success", windows: "Success", broken: "Failed"}
    assert sorted(fleet.ran) == sorted([linux, windows, broken])  # each node ran exactly one step
    assert fleet.command(command_id)["Status"] == "Success"  # within MaxErrors 100 %


def test_health_check_document_default_commands_stand_in_for_a_platform_without_any(fleet: _Fleet) -> None:
    windows = fleet.add("b1", "WINDOWS")
    command_id = fleet.send(Parameters=HealthCheck(linux_commands=["curl -f :8080"]).parameters())
    assert fleet.statuses(command_id) == {windows: "Success"}
    assert fleet.ran == [windows]  # its step ran the document's windowsCommands default


def test_command_document_whose_preconditions_match_no_step_ends_success_having_run_nothing(fleet: _Fleet) -> None:
    fleet.sim.register_document(
        "windows-only",
        {
            "schemaVersion": "2.2",
            "mainSteps": [
                {
                    "action": "aws:runPowerShellScript",  # PowerShell runs on Linux too: the node is a valid platform
                    "name": "OnWindows",
                    "precondition": {"StringEquals": ["platformType", "Windows"]},
                    "inputs": {"runCommand": ["exit 1"]},
                }
            ],
        },
    )
    broken_linux = fleet.add("c1", "AMAZON_LINUX_2", failing=True)
    command_id = fleet.send("windows-only")
    assert fleet.statuses(command_id) == {broken_linux: "Success"}  # every step skipped: nothing checked it
    assert fleet.ran == []


def test_command_document_on_a_platform_none_of_its_plugins_supports_ends_invalid_platform(fleet: _Fleet) -> None:
    step = {"action": "aws:runShellScript", "name": "Shell", "inputs": {"runCommand": ["true"]}}
    fleet.sim.register_document("shell-only", {"schemaVersion": "2.2", "mainSteps": [step]})
    linux, windows = fleet.add("a1", "AMAZON_LINUX_2023"), fleet.add("b1", "WINDOWS")
    command_id = fleet.send("shell-only")
    assert fleet.statuses(command_id) == {linux: "Success", windows: "InvalidPlatform"}
    assert fleet.ran == [linux]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"commands": ["true"]}, r"parameters not in the document: \['commands'\]"),
        ({"linuxCommands": ["true"], "executionTimeout": ["7200"]}, "'executionTimeout' must match"),
        ({"linuxCommands": ["true"], "executionTimeout": ["60", "90"]}, "'executionTimeout' takes one value"),
    ],
)
def test_health_check_document_rejects_parameters_it_does_not_declare_or_allow(
    fleet: _Fleet, parameters: dict[str, list[str]], message: str
) -> None:
    fleet.add("a1", "AMAZON_LINUX_2023")
    with pytest.raises(SimulatedApiError, match=message) as caught:
        fleet.sim.handle(
            "SendCommand",
            {
                "DocumentName": DOCUMENT,
                "Targets": [{"Key": "tag:PatchGroup", "Values": [GROUP]}],
                "Parameters": parameters,
            },
        )
    assert caught.value.code == "InvalidParameters"


def test_command_document_expires_after_the_delivery_timeout_and_every_steps_timeout(fleet: _Fleet) -> None:
    fleet.add("a1", "AMAZON_LINUX_2023")
    check = HealthCheck(linux_commands=["true"], timeout_seconds=300)
    command_id = fleet.send(Parameters=check.parameters(), TimeoutSeconds=600)
    command = fleet.command(command_id)
    assert (command["ExpiresAfter"] - command["RequestedDateTime"]).total_seconds() == 600 + 3 * 300


@pytest.mark.parametrize(
    ("precondition", "message"),
    [
        ({"StringLike": ["platformType", "Linux"]}, "only StringEquals with 2 arguments"),
        ({"StringEquals": ["platformType", "Solaris"]}, "platformType is one of"),
    ],
)
def test_command_document_with_a_precondition_ssm_does_not_support_is_rejected(
    fleet: _Fleet, precondition: dict[str, list[str]], message: str
) -> None:
    step = {"action": "aws:runShellScript", "name": "S", "precondition": precondition, "inputs": {"runCommand": ["x"]}}
    with pytest.raises(SimulatedApiError, match=message) as caught:
        fleet.sim.register_document("bad", {"schemaVersion": "2.2", "mainSteps": [step]})
    assert caught.value.code == "InvalidDocumentContent"
    with pytest.raises(SimulatedApiError, match="not known to the simulator"):
        fleet.sim.handle("SendCommand", {"DocumentName": "bad", "InstanceIds": ["i-1"]})
