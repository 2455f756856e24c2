"""Command sizing from the stage (delivery timeout per wave, SnapshotId) and not-delivered commands in the verdict."""

import math

import pytest

from patchpilot.logic.health import is_patch_evidence, reason_for, verify_stage_health
from patchpilot.logic.install_tracking import heartbeat_interval_for
from patchpilot.logic.stage_plan import (
    EVENT_DELIVERY_SECONDS,
    PATCH_EXECUTION_TIMEOUT_SECONDS,
    bisect_round_commands,
    command_heartbeat_seconds,
    command_wait_timeout_seconds,
    delivery_timeout_seconds,
    plan_stage_commands,
    rate_limit,
    snapshot_id,
)
from patchpilot.models.rollout import CommandResultRef, HealthCheck, StageStepRequest, StageVerdict, VerifyStageRequest
from patchpilot.models.state import WaitLimits
from tests.fakes import (
    HEALTH_DOCUMENT,
    FakeAlarms,
    FakeCanaryTags,
    FakeCommandDirectory,
    FakeCompliance,
    FakePatchSets,
    InMemoryInstallTracker,
)
from tests.unit.test_rollout import _directory, _plan, _verify


@pytest.mark.parametrize(
    ("max_concurrency", "targeted", "expected"),
    [("10%", 100, 10), ("10%", 5, 1), ("25%", 10, 3), ("7", 100, 7), ("100%", 3, 3)],
)
def test_rate_limit_follows_max_concurrency_rounding_up(max_concurrency: str, targeted: int, expected: int) -> None:
    assert rate_limit(max_concurrency, targeted) == expected


def test_delivery_timeout_covers_every_wave_of_a_rate_controlled_install() -> None:
    assert delivery_timeout_seconds(100, "10%", 3600) == 10 * 3600
    assert delivery_timeout_seconds(10, "100%", 3600) == 3600
    assert delivery_timeout_seconds(1, "50%", 60) == 600  # never below SendCommand's usual floor
    assert delivery_timeout_seconds(10_000, "1", 3600) == 2_592_000  # SendCommand's maximum


def test_plan_stage_commands_sizes_each_command_timeout_from_the_stage() -> None:
    plan = _plan()
    stage = plan.stages[0].model_copy(update={"max_concurrency": "10%", "install_minutes": 45})
    step = StageStepRequest(run=plan.run, stage=stage, phase_set="patch")
    install, scan, health = plan_stage_commands(
        step,
        directory := _directory("dev", 30),
        FakePatchSets(),
        "PatchGroup",
        FakeCanaryTags(directory),
        health_document=HEALTH_DOCUMENT,
    ).commands
    waves = 10  # 30 instances, 3 at a time
    assert install.timeout_seconds == waves * 45 * 60
    assert scan.timeout_seconds == waves * 10 * 60
    assert health.timeout_seconds == waves * 120


@pytest.mark.parametrize(
    ("expected_seconds", "execution_timeout", "longest_gap"),
    [
        (60 * 60, PATCH_EXECUTION_TIMEOUT_SECONDS, 5400),  # the policy's default install, with its margin
        (10 * 60, PATCH_EXECUTION_TIMEOUT_SECONDS, 900),  # a scan
        (720 * 60, PATCH_EXECUTION_TIMEOUT_SECONDS, 7200),  # a 12-hour install still ends within 7200 s
        (300, 300, 300),  # a health check ends at its executionTimeout
    ],
)
def test_command_heartbeat_outlasts_one_invocation_even_just_after_a_heartbeat(
    expected_seconds: int, execution_timeout: int, longest_gap: int
) -> None:
    wait = 30 * 24 * 3600
    heartbeat = command_heartbeat_seconds(expected_seconds, execution_timeout, WaitLimits(), wait)
    # an event arriving just after a heartbeat sends none: the next one may come a whole quiet gap later
    assert heartbeat - heartbeat_interval_for(heartbeat) >= longest_gap + EVENT_DELIVERY_SECONDS
    # and no longer than that needs: a lost event is noticed soon after
    assert heartbeat == max(math.ceil((longest_gap + EVENT_DELIVERY_SECONDS) * 3 / 2), WaitLimits().heartbeat_seconds)


def test_command_heartbeat_stays_within_the_runs_floor_and_below_the_wait_timeout() -> None:
    limits = WaitLimits()  # 15-minute floor
    assert command_heartbeat_seconds(60, 120, limits, 14_400) == limits.heartbeat_seconds
    assert command_heartbeat_seconds(60 * 60, PATCH_EXECUTION_TIMEOUT_SECONDS, limits, 3_600) == 3_599
    assert command_heartbeat_seconds(60 * 60, PATCH_EXECUTION_TIMEOUT_SECONDS, limits, 86_400) == 8_190


def test_command_wait_lasts_until_ssm_expires_the_command() -> None:
    limits = WaitLimits()
    ten_waves = delivery_timeout_seconds(250, "10%", 3600)
    assert command_wait_timeout_seconds(ten_waves, 7200, limits) == ten_waves + 7200 + EVENT_DELIVERY_SECONDS
    assert command_wait_timeout_seconds(600, 120, limits) == limits.install_timeout_seconds  # never below the floor


@pytest.mark.parametrize("group_size", [10, 1_000, 10_000])
def test_plan_stage_commands_heartbeats_do_not_depend_on_the_group_size(group_size: int) -> None:
    plan = _plan()
    check = HealthCheck(linux_commands=["systemctl is-system-running"], timeout_seconds=300)
    stage = plan.stages[0].model_copy(update={"max_concurrency": "10%", "install_minutes": 45, "health_check": check})
    step = StageStepRequest(run=plan.run, stage=stage, phase_set="patch")
    directory = _directory("dev", group_size)
    install, scan, health = plan_stage_commands(
        step, directory, FakePatchSets(), "PatchGroup", FakeCanaryTags(directory), health_document=HEALTH_DOCUMENT
    ).commands
    one_install = 45 * 60 * 3 // 2 + EVENT_DELIVERY_SECONDS  # one wave's install with its margin, not every wave's
    assert install.heartbeat_seconds == one_install * 3 // 2
    assert scan.heartbeat_seconds == (900 + EVENT_DELIVERY_SECONDS) * 3 // 2
    assert health.heartbeat_seconds == plan.run.limits.heartbeat_seconds  # (300 + 60) x 3/2 is below the floor
    assert all(c.heartbeat_seconds < plan.run.limits.install_timeout_seconds for c in (install, scan, health))
    # the wait outlasts every wave the group needs: a healthy command never times out, whatever the group's size
    assert all(c.wait_timeout_seconds > c.timeout_seconds + c.heartbeat_seconds for c in (install, scan, health))


def test_bisection_round_commands_carry_their_own_heartbeats() -> None:
    plan = _plan()
    stage = plan.stages[0].model_copy(update={"install_minutes": 30})
    install, scan, *_ = bisect_round_commands(
        plan.run, stage, 1, 1, "s3://bucket/round-1.yaml", "PatchPilotBisect", "2026-12/dev", HEALTH_DOCUMENT
    ).commands
    assert install.heartbeat_seconds == (45 * 60 + EVENT_DELIVERY_SECONDS) * 3 // 2
    assert scan.heartbeat_seconds == (900 + EVENT_DELIVERY_SECONDS) * 3 // 2
    assert install.wait_timeout_seconds > install.heartbeat_seconds


def test_snapshot_id_is_one_uuid_per_stage_attempt() -> None:
    first = snapshot_id("2026-12", "dev", 1)
    assert len(first) == 36
    assert first == snapshot_id("2026-12", "dev", 1)
    assert len({first, snapshot_id("2026-12", "dev", 2), snapshot_id("2026-12", "staging", 1)}) == 3


def test_reasons_of_commands_that_never_ran_are_not_patch_evidence() -> None:
    assert reason_for("install", "DeliveryTimedOut") == "install_not_started_in_time"
    assert reason_for("health", "Undeliverable") == "health_undeliverable"
    assert reason_for("install", "Terminated") == "install_terminated"
    assert reason_for("install", "ExecutionTimedOut") == "install_executiontimedout"
    assert not is_patch_evidence("install_not_started_in_time")
    assert is_patch_evidence("install_failed")
    assert is_patch_evidence("install_executiontimedout")
    assert is_patch_evidence("unreachable")


def test_verify_stage_health_keeps_not_delivered_instances_out_of_the_patch_evidence() -> None:
    directory = _directory("dev", 10)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    tracker = InMemoryInstallTracker()
    statuses = {ids[0]: "DeliveryTimedOut", ids[1]: "Undeliverable", ids[2]: "Terminated", ids[3]: "Failed"}
    for command in ("install-1", "scan-1"):
        tracker.register_wait(command, "2026-12", "dev", len(ids), "t")
        for instance_id in ids:
            status = statuses.get(instance_id, "Success") if command == "install-1" else "Success"
            tracker.record_result(command, instance_id, status, status == "Success")
    verdict = _verify(0, directory, tracker)
    assert verdict.reasons == {
        "install_failed": 1,
        "install_not_started_in_time": 1,
        "install_terminated": 1,
        "install_undeliverable": 1,
    }
    assert (verdict.unhealthy, verdict.healthy) == (4, False)  # not patched: they count against the budget
    assert [r.instance_id for r in verdict.unhealthy_sample] == [ids[3]]  # only the failed install is evidence


def _health_verdict(
    tracker: InMemoryInstallTracker, directory: FakeCommandDirectory, commands: list[str]
) -> StageVerdict:
    plan = _plan()
    request = VerifyStageRequest(
        run=plan.run,
        stage=plan.stages[0],
        phase_set="verify",
        results=[CommandResultRef(phase="health", command_id=command_id) for command_id in commands],
    )
    return verify_stage_health(request, tracker, directory, FakeAlarms(), FakeCompliance(), "PatchGroup")


def test_verify_stage_health_counts_a_health_command_that_ran_nowhere_on_an_instance_as_unchecked() -> None:
    directory = _directory("dev", 3)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    tracker = InMemoryInstallTracker()
    tracker.register_wait("health-1", "2026-12", "dev", len(ids), "t")
    tracker.record_result("health-1", ids[0], "InvalidPlatform", False)  # a platform the document does not cover
    tracker.record_result("health-1", ids[1], "Success", True)
    tracker.record_result("health-1", ids[2], "Failed", False)
    verdict = _health_verdict(tracker, directory, ["health-1"])
    assert verdict.reasons == {"health_failed": 1, "health_invalid_platform": 1}
    assert not is_patch_evidence("health_invalid_platform")  # the check never ran: nothing against a patch


def test_verify_stage_health_ignores_the_other_platforms_check_of_a_step_sent_before_the_upgrade() -> None:
    directory = _directory("dev", 2)
    ids = [i.instance_id for i in directory.fleet[("PatchGroup", "dev")]]
    tracker = InMemoryInstallTracker()
    for command_id in ("shell-1", "powershell-1"):  # one health command per document, as earlier releases sent
        tracker.register_wait(command_id, "2026-12", "dev", len(ids), "t")
    tracker.record_result("shell-1", ids[0], "Success", True)
    tracker.record_result("powershell-1", ids[0], "InvalidPlatform", False)
    tracker.record_result("shell-1", ids[1], "Failed", False)
    tracker.record_result("powershell-1", ids[1], "InvalidPlatform", False)
    verdict = _health_verdict(tracker, directory, ["shell-1", "powershell-1"])
    assert verdict.reasons == {"health_failed": 1}
