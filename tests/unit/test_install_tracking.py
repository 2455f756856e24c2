from datetime import UTC, datetime

import pytest

from patchpilot.logic.commands import install_command_comment
from patchpilot.logic.install_tracking import (
    RESUME_LEASE_SECONDS,
    TrackingPorts,
    group_by_command,
    heartbeat_interval_for,
    reconcile_install,
    record_command_results,
    register_install_wait,
)
from patchpilot.models.events import CommandInvocationDetail
from patchpilot.models.exceptions import InstallResultsIncomplete, TransientAwsError
from patchpilot.models.records import InvocationInfo
from patchpilot.models.state import AwaitInstallRequest, ReconcileRequest
from tests.fakes import FakeCommandDirectory, InMemoryInstallTracker, RecordingCallbacks

COMMAND = "11111111-2222-3333-4444-555555555555"
TOKEN = "token-1"
NOW = 1_800_000_000.0


def _detail(instance: str, status: str, command: str = COMMAND) -> CommandInvocationDetail:
    return CommandInvocationDetail.model_validate(
        {
            "command-id": command,
            "document-name": "AWS-RunPatchBaseline",
            "instance-id": instance,
            "requested-date-time": "2026-12-08T18:40:03.512Z",
            "status": status,
        }
    )


def _instance(n: int) -> str:
    return f"i-{n:016x}"


def _waiting(expected: int, heartbeat_seconds: int = 900) -> TrackingPorts:
    ports = TrackingPorts(InMemoryInstallTracker(), FakeCommandDirectory(), RecordingCallbacks())
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.add_command(COMMAND, install_command_comment("2026-12", "dev"))
    request = AwaitInstallRequest(
        task_token=TOKEN,
        run_id="2026-12",
        stage_name="dev",
        command_id=COMMAND,
        expected_instances=expected,
        heartbeat_seconds=heartbeat_seconds,
        phase="install",
    )
    register_install_wait(request, ports.tracker, ports.callbacks, ports.directory, NOW)
    return ports


def _callbacks(ports: TrackingPorts) -> RecordingCallbacks:
    assert isinstance(ports.callbacks, RecordingCallbacks)
    return ports.callbacks


def _tracker(ports: TrackingPorts) -> InMemoryInstallTracker:
    assert isinstance(ports.tracker, InMemoryInstallTracker)
    return ports.tracker


def test_record_command_results_resumes_once_when_last_instance_reports() -> None:
    # Given a stage waiting for two instances
    ports = _waiting(expected=2)
    # When both report, in two batches, the second one twice
    first = record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW)
    second = record_command_results(
        COMMAND, [_detail(_instance(2), "Failed"), _detail(_instance(2), "Failed")], ports, NOW + 1
    )
    again = record_command_results(COMMAND, [_detail(_instance(2), "Failed")], ports, NOW + 2)
    # Then the execution is resumed exactly once, with the counts and the phase the wait registered
    assert (first.resumed_execution, second.resumed_execution, again.resumed_execution) == (False, True, False)
    assert (second.recorded, second.duplicates, again.duplicates) == (1, 1, 1)
    resumed = _callbacks(ports).resumed
    assert [token for token, _ in resumed] == [TOKEN]
    assert resumed[0][1] == {
        "command_id": COMMAND,
        "expected": 2,
        "reported": 2,
        "succeeded": 1,
        "failed": 1,
        "not_reported": 0,
        "complete": True,
        "phase": "install",
    }


def test_record_command_results_writes_the_command_counter_once_per_batch() -> None:
    ports = _waiting(expected=50)
    batch = [_detail(_instance(n), "Success" if n % 7 else "Failed") for n in range(1, 51)]
    handled = record_command_results(COMMAND, batch, ports, NOW)
    command = ports.tracker.get_command(COMMAND)
    assert command is not None
    assert (handled.recorded, command.reported, command.failed) == (50, 50, 7)
    assert _tracker(ports).counter_writes == 1
    assert handled.resumed_execution


def test_record_command_results_duplicate_batch_has_no_second_effect() -> None:
    ports = _waiting(expected=3)
    batch = [_detail(_instance(1), "Failed"), _detail(_instance(2), "Success")]
    record_command_results(COMMAND, batch, ports, NOW)
    duplicate = record_command_results(COMMAND, list(reversed(batch)), ports, NOW + 1)
    assert (duplicate.recorded, duplicate.duplicates) == (0, 2)
    command = ports.tracker.get_command(COMMAND)
    assert command is not None
    assert (command.reported, command.failed) == (2, 1)


def test_record_command_results_ignores_foreign_command_and_remembers_it() -> None:
    ports = TrackingPorts(InMemoryInstallTracker(), FakeCommandDirectory(), RecordingCallbacks())
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.add_command("foreign-command", "nightly scan by another team")
    first = record_command_results("foreign-command", [_detail(_instance(1), "Success", "foreign-command")], ports, NOW)
    second = record_command_results(
        "foreign-command", [_detail(_instance(2), "Success", "foreign-command")], ports, NOW
    )
    assert (first.ignored_foreign, second.ignored_foreign) == (True, True)
    assert ports.directory.describe_calls == 1
    assert _callbacks(ports).resumed == []


def test_record_command_results_before_wait_registration_is_kept_and_resumes_at_registration() -> None:
    # Given a PatchPilot command whose only result arrives before the wait registered its token
    ports = TrackingPorts(InMemoryInstallTracker(), FakeCommandDirectory(), RecordingCallbacks())
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.add_command(COMMAND, install_command_comment("2026-12", "dev"))
    early = record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW)
    assert early.recorded == 1
    assert _callbacks(ports).resumed == []
    # When the wait registers
    request = AwaitInstallRequest(
        task_token=TOKEN, run_id="2026-12", stage_name="dev", command_id=COMMAND, expected_instances=1
    )
    tally = register_install_wait(request, ports.tracker, ports.callbacks, ports.directory, NOW + 5)
    # Then it resumes at once
    assert tally.complete
    assert [token for token, _ in _callbacks(ports).resumed] == [TOKEN]


def test_record_command_results_heartbeats_at_most_once_per_interval() -> None:
    # Given a wait with a 90 s heartbeat (a heartbeat is due at most every 30 s)
    ports = _waiting(expected=100, heartbeat_seconds=90)
    # When progress and results arrive in five batches within 20 s, then one more after 31 s
    for second in range(0, 20, 4):
        record_command_results(COMMAND, [_detail(_instance(second + 1), "InProgress")], ports, NOW + second)
    record_command_results(COMMAND, [_detail(_instance(99), "Success")], ports, NOW + 31)
    # Then two heartbeats were sent, not six
    assert _callbacks(ports).heartbeats == [TOKEN, TOKEN]
    assert heartbeat_interval_for(90) == 30


def test_record_command_results_failed_resume_is_retried_by_the_redelivered_batch() -> None:
    # Given the last result, and SendTaskSuccess throttled on the first attempt
    ports = _waiting(expected=1)
    _callbacks(ports).resume_failures_left = 1
    last = [_detail(_instance(1), "Success")]
    # When the batch fails, and SQS redelivers it
    with pytest.raises(TransientAwsError, match="ThrottlingException"):
        record_command_results(COMMAND, last, ports, NOW)
    redelivered = record_command_results(COMMAND, last, ports, NOW + 2)
    # Then the redelivery (a duplicate result) still resumes the execution, once
    assert (redelivered.duplicates, redelivered.resumed_execution) == (1, True)
    assert [token for token, _ in _callbacks(ports).resumed] == [TOKEN]


def test_record_command_results_resume_whose_holder_died_is_retried_after_the_lease() -> None:
    # Given a holder that claimed the resume and crashed before SendTaskSuccess
    ports = _waiting(expected=1)
    record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW)
    tracker = _tracker(ports)
    tracker.commands[COMMAND] = tracker.commands[COMMAND].model_copy(
        update={"resumed": False, "resume_lease_until": NOW + RESUME_LEASE_SECONDS}
    )
    _callbacks(ports).resumed.clear()
    # When its event is redelivered within the lease, and again after it
    within = record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW + 10)
    after = record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW + RESUME_LEASE_SECONDS + 1)
    # Then only the redelivery after the lease resumes
    assert (within.resumed_execution, after.resumed_execution) == (False, True)
    assert len(_callbacks(ports).resumed) == 1


def test_group_by_command_keeps_arrival_order_per_command() -> None:
    details = [
        _detail(_instance(1), "Success", "a"),
        _detail(_instance(2), "Success", "b"),
        _detail(_instance(3), "Failed", "a"),
    ]
    groups = group_by_command(details)
    assert list(groups) == ["a", "b"]
    assert [d.instance_id for d in groups["a"]] == [_instance(1), _instance(3)]


def test_reconcile_install_recovers_results_whose_events_were_lost() -> None:
    ports = _waiting(expected=2)
    assert isinstance(ports.directory, FakeCommandDirectory)
    record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW)
    ports.directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id=_instance(1), status="Success"),
        InvocationInfo(command_id=COMMAND, instance_id=_instance(2), status="Success"),
    ]
    outcome = reconcile_install(
        ReconcileRequest(command_id=COMMAND, expected_instances=2, attempts_so_far=0, max_attempts=3),
        ports.tracker,
        ports.directory,
        NOW,
    )
    assert outcome.recovered_results == 1
    assert outcome.tally.complete
    # it made progress on a command SSM still runs: not counted against the bound
    assert (outcome.tally.succeeded, outcome.tally.failed, outcome.attempts) == (2, 0, 0)


def test_reconcile_install_writes_only_the_results_the_table_lacks() -> None:
    # Given a command whose first result was recorded from its event and whose second event was lost
    ports = _waiting(expected=2)
    assert isinstance(ports.directory, FakeCommandDirectory)
    assert isinstance(ports.tracker, InMemoryInstallTracker)
    record_command_results(COMMAND, [_detail(_instance(1), "Success")], ports, NOW)
    ports.directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id=_instance(1), status="Success"),
        InvocationInfo(command_id=COMMAND, instance_id=_instance(2), status="Failed"),
    ]
    writes_before = ports.tracker.counter_writes
    # When reconciliation runs twice
    request = ReconcileRequest(command_id=COMMAND, expected_instances=2, attempts_so_far=0, max_attempts=3)
    first = reconcile_install(request, ports.tracker, ports.directory, NOW)
    second = reconcile_install(request, ports.tracker, ports.directory, NOW)
    # Then the lost result is written once, and nothing is rewritten
    assert (first.recovered_results, second.recovered_results) == (1, 0)
    assert ports.tracker.counter_writes - writes_before == 1
    assert (second.tally.succeeded, second.tally.failed) == (1, 1)


def test_reconcile_install_completes_when_command_finished_with_instances_missing() -> None:
    ports = _waiting(expected=3)
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), status="Failed")
    ports.directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id=_instance(1), status="Success"),
    ]
    outcome = reconcile_install(
        ReconcileRequest(command_id=COMMAND, expected_instances=3, attempts_so_far=0, max_attempts=3),
        ports.tracker,
        ports.directory,
        NOW,
    )
    assert outcome.tally.complete
    assert (outcome.tally.succeeded, outcome.tally.not_reported) == (1, 2)


def test_reconcile_install_gives_up_after_the_last_attempt() -> None:
    ports = _waiting(expected=2)
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id=_instance(1), status="InProgress"),
    ]
    request = ReconcileRequest(command_id=COMMAND, expected_instances=2, attempts_so_far=1, max_attempts=3)
    outcome = reconcile_install(request, ports.tracker, ports.directory, NOW)
    assert (outcome.tally.complete, outcome.attempts) == (False, 2)
    with pytest.raises(InstallResultsIncomplete, match="0/2 instances reported after 3"):
        reconcile_install(request.model_copy(update={"attempts_so_far": 2}), ports.tracker, ports.directory, NOW)


def test_reconcile_install_does_not_count_a_pass_while_ssm_still_runs_the_command() -> None:
    # Given a large group's install SSM still runs (rate-controlled waves) with no result for a heartbeat
    ports = _waiting(expected=2)
    assert isinstance(ports.directory, FakeCommandDirectory)
    expiry = datetime.fromtimestamp(NOW + 7_200, UTC)
    ports.directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), expires_after=expiry)
    ports.directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id=_instance(1), status="InProgress"),
    ]
    request = ReconcileRequest(command_id=COMMAND, expected_instances=2, attempts_so_far=2, max_attempts=3)
    # When reconciliation finds nothing new before the command's ExpiresAfter
    waiting = reconcile_install(request, ports.tracker, ports.directory, NOW + 3_600)
    # Then the pass is not an attempt, so the stage waits on SSM instead of failing
    assert (waiting.tally.complete, waiting.attempts, waiting.recovered_results) == (False, 2, 0)
    # And once the command is past its expiry while SSM still calls it running, the pass counts and the bound holds
    with pytest.raises(InstallResultsIncomplete, match="0/2 instances reported after 3"):
        reconcile_install(request, ports.tracker, ports.directory, NOW + 7_200)


def test_record_command_results_waits_for_every_instance_ssm_targeted() -> None:
    # Given a stage planned for two instances, while SSM's resolved command targets three (one tagged meanwhile)
    ports = _waiting(expected=2)
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), target_count=3)
    # When the two planned instances report
    record_command_results(COMMAND, [_detail(_instance(1), "Success"), _detail(_instance(2), "Success")], ports, NOW)
    # Then the wait goes on until the third reports, and the tally counts three
    assert _callbacks(ports).resumed == []
    last = record_command_results(COMMAND, [_detail(_instance(3), "Success")], ports, NOW + 1)
    assert last.resumed_execution
    assert _callbacks(ports).resumed[0][1]["expected"] == 3


def test_reconcile_install_expects_the_resolved_target_count() -> None:
    ports = _waiting(expected=1)
    assert isinstance(ports.directory, FakeCommandDirectory)
    ports.directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), target_count=2)
    ports.directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id=_instance(1), status="Success")
    ]
    request = ReconcileRequest(command_id=COMMAND, expected_instances=1, attempts_so_far=0, max_attempts=3)
    outcome = reconcile_install(request, ports.tracker, ports.directory, NOW)
    assert (outcome.tally.expected, outcome.tally.complete) == (2, False)
