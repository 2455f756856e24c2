import pytest

from patchpilot.logic.commands import install_command_comment
from patchpilot.logic.install_tracking import reconcile_install, record_invocation_result, register_install_wait
from patchpilot.models.events import CommandInvocationDetail
from patchpilot.models.exceptions import InstallResultsIncomplete
from patchpilot.models.records import InvocationInfo
from patchpilot.models.state import AwaitInstallRequest, ReconcileRequest
from tests.unit.fakes import FakeCommandDirectory, InMemoryInstallTracker, RecordingCallbacks

COMMAND = "11111111-2222-3333-4444-555555555555"
TOKEN = "token-1"


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


def _waiting(expected: int) -> tuple[InMemoryInstallTracker, FakeCommandDirectory, RecordingCallbacks]:
    tracker, directory, callbacks = InMemoryInstallTracker(), FakeCommandDirectory(), RecordingCallbacks()
    directory.add_command(COMMAND, install_command_comment("2026-12", "dev"))
    request = AwaitInstallRequest(
        task_token=TOKEN, run_id="2026-12", stage_name="dev", command_id=COMMAND, expected_instances=expected
    )
    register_install_wait(request, tracker, callbacks, directory)
    return tracker, directory, callbacks


def test_record_invocation_result_resumes_once_when_last_instance_reports() -> None:
    # Given a stage waiting for two instances
    tracker, directory, callbacks = _waiting(expected=2)
    # When both report, the second one twice
    first = record_invocation_result(_detail("i-0000000000000001", "Success"), tracker, directory, callbacks)
    second = record_invocation_result(_detail("i-0000000000000002", "Failed"), tracker, directory, callbacks)
    again = record_invocation_result(_detail("i-0000000000000002", "Failed"), tracker, directory, callbacks)
    # Then the execution is resumed exactly once, with the counts
    assert (first.resumed_execution, second.resumed_execution, again.resumed_execution) == (False, True, False)
    assert len(callbacks.resumed) == 1
    token, output = callbacks.resumed[0]
    assert token == TOKEN
    assert output == {
        "command_id": COMMAND,
        "expected": 2,
        "reported": 2,
        "succeeded": 1,
        "failed": 1,
        "not_reported": 0,
        "complete": True,
    }


def test_record_invocation_result_duplicate_event_has_no_second_effect() -> None:
    tracker, directory, callbacks = _waiting(expected=3)
    record_invocation_result(_detail("i-0000000000000001", "Failed"), tracker, directory, callbacks)
    duplicate = record_invocation_result(_detail("i-0000000000000001", "Failed"), tracker, directory, callbacks)
    assert duplicate.action == "duplicate"
    command = tracker.get_command(COMMAND)
    assert command is not None
    assert (command.reported, command.failed) == (1, 1)


def test_record_invocation_result_ignores_foreign_command_and_remembers_it() -> None:
    tracker, directory, callbacks = InMemoryInstallTracker(), FakeCommandDirectory(), RecordingCallbacks()
    directory.add_command("foreign-command", "nightly scan by another team")
    first = record_invocation_result(
        _detail("i-0000000000000001", "Success", "foreign-command"), tracker, directory, callbacks
    )
    second = record_invocation_result(
        _detail("i-0000000000000002", "Success", "foreign-command"), tracker, directory, callbacks
    )
    assert (first.action, second.action) == ("ignored_foreign_command", "ignored_foreign_command")
    assert directory.describe_calls == 1
    assert callbacks.resumed == []


def test_record_invocation_result_before_wait_registration_is_kept_and_resumes_at_registration() -> None:
    # Given a PatchPilot command whose only result arrives before the wait registered its token
    tracker, directory, callbacks = InMemoryInstallTracker(), FakeCommandDirectory(), RecordingCallbacks()
    directory.add_command(COMMAND, install_command_comment("2026-12", "dev"))
    early = record_invocation_result(_detail("i-0000000000000001", "Success"), tracker, directory, callbacks)
    assert early.action == "recorded"
    assert callbacks.resumed == []
    # When the wait registers
    tally = register_install_wait(
        AwaitInstallRequest(
            task_token=TOKEN, run_id="2026-12", stage_name="dev", command_id=COMMAND, expected_instances=1
        ),
        tracker,
        callbacks,
        directory,
    )
    # Then it resumes at once
    assert tally.complete
    assert [token for token, _ in callbacks.resumed] == [TOKEN]


def test_record_invocation_result_progress_sends_a_heartbeat_only() -> None:
    tracker, directory, callbacks = _waiting(expected=2)
    handled = record_invocation_result(_detail("i-0000000000000001", "InProgress"), tracker, directory, callbacks)
    assert handled.action == "progress"
    assert callbacks.heartbeats == [TOKEN]
    assert tracker.results == {}


def test_reconcile_install_recovers_results_whose_events_were_lost() -> None:
    tracker, directory, callbacks = _waiting(expected=2)
    record_invocation_result(_detail("i-0000000000000001", "Success"), tracker, directory, callbacks)
    directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id="i-0000000000000001", status="Success"),
        InvocationInfo(command_id=COMMAND, instance_id="i-0000000000000002", status="Success"),
    ]
    outcome = reconcile_install(
        ReconcileRequest(command_id=COMMAND, expected_instances=2, attempts_so_far=0, max_attempts=3),
        tracker,
        directory,
    )
    assert outcome.recovered_results == 1
    assert outcome.tally.complete
    assert (outcome.tally.succeeded, outcome.tally.failed, outcome.attempts) == (2, 0, 1)


def test_reconcile_install_completes_when_command_finished_with_instances_missing() -> None:
    tracker, directory, _callbacks = _waiting(expected=3)
    directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), status="Failed")
    directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id="i-0000000000000001", status="Success"),
    ]
    outcome = reconcile_install(
        ReconcileRequest(command_id=COMMAND, expected_instances=3, attempts_so_far=0, max_attempts=3),
        tracker,
        directory,
    )
    assert outcome.tally.complete
    assert (outcome.tally.succeeded, outcome.tally.not_reported) == (1, 2)


def test_reconcile_install_gives_up_after_the_last_attempt() -> None:
    tracker, directory, _ = _waiting(expected=2)
    directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id="i-0000000000000001", status="InProgress"),
    ]
    request = ReconcileRequest(command_id=COMMAND, expected_instances=2, attempts_so_far=1, max_attempts=3)
    outcome = reconcile_install(request, tracker, directory)
    assert (outcome.tally.complete, outcome.attempts) == (False, 2)
    with pytest.raises(InstallResultsIncomplete, match="0/2 instances reported after 3"):
        reconcile_install(request.model_copy(update={"attempts_so_far": 2}), tracker, directory)


def test_record_invocation_result_waits_for_every_instance_ssm_targeted() -> None:
    # Given a stage planned for two instances, while SSM's resolved command targets three (one tagged meanwhile)
    tracker, directory, callbacks = _waiting(expected=2)
    directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), target_count=3)
    # When the two planned instances report
    for instance in ("i-0000000000000001", "i-0000000000000002"):
        record_invocation_result(_detail(instance, "Success"), tracker, directory, callbacks)
    # Then the wait goes on until the third reports, and the tally counts three
    assert callbacks.resumed == []
    last = record_invocation_result(_detail("i-0000000000000003", "Success"), tracker, directory, callbacks)
    assert last.resumed_execution
    assert callbacks.resumed[0][1]["expected"] == 3


def test_reconcile_install_expects_the_resolved_target_count() -> None:
    tracker, directory, _ = _waiting(expected=1)
    directory.add_command(COMMAND, install_command_comment("2026-12", "dev"), target_count=2)
    directory.invocations[COMMAND] = [
        InvocationInfo(command_id=COMMAND, instance_id="i-0000000000000001", status="Success")
    ]
    request = ReconcileRequest(command_id=COMMAND, expected_instances=1, attempts_so_far=0, max_attempts=3)
    outcome = reconcile_install(request, tracker, directory)
    assert (outcome.tally.expected, outcome.tally.complete) == (2, False)
