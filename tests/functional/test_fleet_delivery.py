"""The simulated fleet's Run Command timing, as AWS documents it: delivery deadline, expiry, MaxErrors, targeting.

Sources: SSM user guide, monitor-commands.md ("Understanding command statuses", "Understanding command timeout
values"); API reference SendCommand (TimeoutSeconds, MaxConcurrency, MaxErrors) and ListCommands (TargetCount).
"""

from collections.abc import Iterator
from typing import Any

import pytest

from patchpilot.logic.stage_plan import delivery_timeout_seconds
from patchpilot_sim.clock import Scheduler, SimClock
from patchpilot_sim.fleet import SimulatedApiError, SimulatedInstance, SsmAgentSimulator
from patchpilot_sim.progress import StageProgress, stage_progress

GROUP = "prod-1"


@pytest.fixture
def sim() -> Iterator[SsmAgentSimulator]:
    clock = SimClock()
    scheduler = Scheduler(clock)
    simulator = SsmAgentSimulator(clock, scheduler, lambda _: None, "us-east-1", seed=5)
    yield simulator
    scheduler.stop()
    assert not scheduler.errors


def _add(sim: SsmAgentSimulator, count: int, minutes: float = 20.0, start: int = 0) -> list[SimulatedInstance]:
    added = []
    for n in range(start, start + count):
        instance = SimulatedInstance(
            instance_id=f"i-{n:017x}",
            patch_group=GROUP,
            platform="AMAZON_LINUX_2023",
            tags={"PatchGroup": GROUP},
            install_minutes=minutes,
        )
        sim.add_instance(instance)
        added.append(instance)
    return added


def _send(sim: SsmAgentSimulator, **params: Any) -> str:
    request = {
        "DocumentName": "AWS-RunPatchBaseline",
        "Targets": [{"Key": "tag:PatchGroup", "Values": [GROUP]}],
        "Parameters": {"Operation": ["Install"]},
        **params,
    }
    return str(sim.handle("SendCommand", request)["Command"]["CommandId"])


def _finish(sim: SsmAgentSimulator) -> None:
    assert sim.clock.run_until(lambda: not sim.busy()), "the simulated command did not finish"


def _statuses(sim: SsmAgentSimulator, command_id: str) -> dict[str, int]:
    rows = sim.handle("ListCommandInvocations", {"CommandId": command_id, "MaxResults": 50})["CommandInvocations"]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["Status"]] = counts.get(row["Status"], 0) + 1
    return counts


def _command(sim: SsmAgentSimulator, command_id: str) -> dict[str, Any]:
    return dict(sim.handle("ListCommands", {"CommandId": command_id})["Commands"][0])


def test_later_waves_that_cannot_start_before_timeout_seconds_end_delivery_timed_out(sim: SsmAgentSimulator) -> None:
    _add(sim, 30)
    command_id = _send(sim, MaxConcurrency="10%", MaxErrors="0", TimeoutSeconds=600)
    _finish(sim)
    assert _statuses(sim, command_id) == {"Success": 3, "DeliveryTimedOut": 27}  # only the first wave started
    command = _command(sim, command_id)
    assert command["DeliveryTimedOutCount"] == 27
    assert command["Status"] == "Success"  # delivery timeouts do not count toward MaxErrors


def test_a_timeout_sized_per_wave_lets_every_wave_start(sim: SsmAgentSimulator) -> None:
    _add(sim, 30, minutes=40.0)
    timeout = delivery_timeout_seconds(30, "10%", 60 * 60)
    command_id = _send(sim, MaxConcurrency="10%", MaxErrors="0", TimeoutSeconds=timeout)
    _finish(sim)
    assert _statuses(sim, command_id) == {"Success": 30}


def test_execution_timeouts_count_toward_max_errors_and_stop_the_rest(sim: SsmAgentSimulator) -> None:
    _add(sim, 1, minutes=200.0)  # longer than AWS-RunPatchBaseline's 7200 s execution timeout
    _add(sim, 4, start=1)
    command_id = _send(sim, MaxConcurrency="1", MaxErrors="0", TimeoutSeconds=86_400)
    _finish(sim)
    statuses = _statuses(sim, command_id)
    assert statuses.get("ExecutionTimedOut") == 1
    assert statuses.get("Terminated", 0) >= 1  # max-errors exceeded: the invocations not yet started never run
    assert _command(sim, command_id)["Status"] == "Failed"


def test_an_unreachable_instance_ends_delivery_timed_out_without_failing_the_command(sim: SsmAgentSimulator) -> None:
    offline, *_ = _add(sim, 3)
    offline.online = False
    command_id = _send(sim, MaxConcurrency="100%", MaxErrors="0", TimeoutSeconds=3600)
    _finish(sim)
    assert _statuses(sim, command_id) == {"Success": 2, "DeliveryTimedOut": 1}
    assert _command(sim, command_id)["Status"] == "Success"


def test_the_command_expires_after_timeout_seconds_plus_the_execution_timeout(sim: SsmAgentSimulator) -> None:
    _add(sim, 1)
    command_id = _send(sim, TimeoutSeconds=600)
    command = _command(sim, command_id)
    assert (command["ExpiresAfter"] - command["RequestedDateTime"]).total_seconds() == 600 + 7200


def test_timeout_seconds_outside_the_api_range_is_rejected(sim: SsmAgentSimulator) -> None:
    _add(sim, 1)
    with pytest.raises(SimulatedApiError, match="TimeoutSeconds"):
        _send(sim, TimeoutSeconds=10)


def test_tag_targets_resolve_after_send_command_and_include_instances_tagged_meanwhile(sim: SsmAgentSimulator) -> None:
    _add(sim, 3)
    with sim.hold():
        command_id = _send(sim, MaxConcurrency="100%")
        assert _command(sim, command_id)["TargetCount"] == 0  # not resolved yet: no invocation exists
        assert sim.handle("ListCommandInvocations", {"CommandId": command_id})["CommandInvocations"] == []
        _add(sim, 1, start=3)  # tagged into the group before SSM resolved the targets
    _finish(sim)
    assert _command(sim, command_id)["TargetCount"] == 4
    assert _statuses(sim, command_id) == {"Success": 4}


def test_a_shell_document_ends_invalid_platform_on_windows(sim: SsmAgentSimulator) -> None:
    _add(sim, 2)
    windows = SimulatedInstance(
        instance_id="i-0eeeeeeeeeeeeeee1", patch_group=GROUP, platform="WINDOWS", tags={"PatchGroup": GROUP}
    )
    sim.add_instance(windows)
    command_id = _send(sim, DocumentName="AWS-RunShellScript", Parameters={"commands": ["curl -f :8080"]})
    _finish(sim)
    assert _statuses(sim, command_id) == {"Success": 2, "InvalidPlatform": 1}
    assert _command(sim, command_id)["Status"] == "Success"  # InvalidPlatform does not count toward MaxErrors


def test_stage_progress_counts_the_latest_commands_reported_and_failed_invocations(sim: SsmAgentSimulator) -> None:
    instances = _add(sim, 6)
    instances[0].online = False  # never reached: DeliveryTimedOut, reported and not successful
    _send(sim, MaxConcurrency="100%", MaxErrors="100%", TimeoutSeconds=600)
    _finish(sim)
    scan_id = _send(sim, Parameters={"Operation": ["Scan"]}, MaxConcurrency="100%", TimeoutSeconds=600)
    scan = sim.commands[scan_id]
    assert (scan.completed, scan.unsuccessful) == (0, 0)
    _finish(sim)
    statuses = _statuses(sim, scan_id)
    (row,) = stage_progress(sim, {"first-prod": GROUP, "idle": "prod-2"})[:1]
    assert row == StageProgress("first-prod", "Scan", 6, 6, 6 - statuses["Success"])
    assert row.failed == 1
    listed = _command(sim, scan_id)
    assert (listed["TargetCount"], listed["CompletedCount"], listed["ErrorCount"]) == (6, 6, 1)
    assert listed["DeliveryTimedOutCount"] == statuses["DeliveryTimedOut"] == 1
    assert stage_progress(sim, {"idle": "prod-2"}) == [StageProgress("idle", "", 0, 0, 0)]
