"""Decisions about install commands: record results once, resume the waiting execution once, reconcile lost events."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from patchpilot.integrations.ports import CommandDirectory, ExecutionCallbacks, InstallTracker, RecordOutcome
from patchpilot.logic.commands import parse_command_comment
from patchpilot.models.events import TERMINAL_INVOCATION_STATUSES, CommandInvocationDetail
from patchpilot.models.exceptions import CommandNotTracked, InstallResultsIncomplete
from patchpilot.models.records import TrackedCommand
from patchpilot.models.state import AwaitInstallRequest, InstallTally, ReconcileOutcome, ReconcileRequest

INSTALL_DOCUMENT = "AWS-RunPatchBaseline"
TERMINAL_COMMAND_STATUSES = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "DeliveryTimedOut"})


Action = Literal["recorded", "duplicate", "progress", "ignored_foreign_command"]


class InvocationHandled(BaseModel):
    """What the command-result handler did with one status-change event."""

    model_config = ConfigDict(frozen=True)

    action: Action
    command_id: str
    instance_id: str
    status: str
    resumed_execution: bool = False
    tally: InstallTally | None = None


def tally_of(command: TrackedCommand, command_finished: bool = False) -> InstallTally:
    """Counts of a tracked command.

    Parameters
    ----------
    command : TrackedCommand
        The tracking row.
    command_finished : bool
        SSM reports the command itself as finished: instances that never reported will not report any more,
        so they count as ``not_reported`` and the tally is complete.

    Returns
    -------
    InstallTally
        ``complete`` once every expected instance reported (or the command finished).
    """
    expected = command.expected or 0
    missing = max(expected - command.reported, 0)
    complete = expected > 0 and (missing == 0 or command_finished)
    return InstallTally(
        command_id=command.command_id,
        expected=expected,
        reported=command.reported,
        succeeded=command.reported - command.failed,
        failed=command.failed,
        not_reported=missing if complete else 0,
        complete=complete,
    )


def targeted_by_ssm(command_id: str, expected: int, directory: CommandDirectory) -> int:
    """The instances the command really targets: ListCommands `TargetCount` once SSM resolved it, else `expected`.

    The planner counts the patch group before the command is sent; an instance tagged into the group meanwhile is
    targeted too (SendCommand resolves tag targets itself), so the planned count can be short.
    """
    info = directory.describe_command(command_id)
    return max(expected, info.target_count) if info is not None else expected


def _resume_if_complete(
    command: TrackedCommand, tracker: InstallTracker, callbacks: ExecutionCallbacks, directory: CommandDirectory
) -> bool:
    tally = tally_of(command)
    if not tally.complete or command.task_token is None or command.resumed:
        return False
    targeted = targeted_by_ssm(command.command_id, command.expected or 0, directory)
    if targeted > command.reported:
        return False  # SSM targeted more instances than planned: wait for them too
    tally = tally_of(command.model_copy(update={"expected": targeted}))
    if not tracker.claim_resume(command.command_id, command.task_token):
        return False
    return callbacks.resume(command.task_token, tally)


def _ensure_tracked(command_id: str, tracker: InstallTracker, directory: CommandDirectory) -> bool:
    """Start tracking a command PatchPilot started whose first event beat the wait registration."""
    known = tracker.get_command(command_id)
    if known is not None:
        return not known.foreign
    info = directory.describe_command(command_id)
    owner = None if info is None else parse_command_comment(info.comment)
    if owner is None:
        tracker.mark_foreign(command_id)
        return False
    tracker.track_command(command_id, owner.run_id, owner.stage_name)
    return True


def record_invocation_result(
    detail: CommandInvocationDetail,
    tracker: InstallTracker,
    directory: CommandDirectory,
    callbacks: ExecutionCallbacks,
) -> InvocationHandled:
    """Record one instance's command status and resume the waiting execution when the last instance reports.

    Parameters
    ----------
    detail : CommandInvocationDetail
        The status-change event's detail.
    tracker, directory, callbacks
        Ports to the tracking table, SSM and Step Functions.

    Returns
    -------
    InvocationHandled
        ``recorded`` (first terminal report), ``duplicate`` (already recorded: no second effect), ``progress``
        (a non-terminal status: heartbeat only) or ``ignored_foreign_command`` (a command PatchPilot did not start).
    """

    def handled(action: Action, resumed: bool = False, tally: InstallTally | None = None) -> InvocationHandled:
        return InvocationHandled(
            action=action,
            command_id=detail.command_id,
            instance_id=detail.instance_id,
            status=detail.status,
            resumed_execution=resumed,
            tally=tally,
        )

    if not detail.is_terminal:
        command = tracker.get_command(detail.command_id)
        if command is not None and command.foreign:
            return handled("ignored_foreign_command")
        if command is not None and command.task_token and not command.resumed:
            callbacks.heartbeat(command.task_token)
        return handled("progress")

    succeeded = detail.status == "Success"
    outcome = tracker.record_result(detail.command_id, detail.instance_id, detail.status, succeeded)
    if outcome is RecordOutcome.UNKNOWN_COMMAND:
        if not _ensure_tracked(detail.command_id, tracker, directory):
            return handled("ignored_foreign_command")
        outcome = tracker.record_result(detail.command_id, detail.instance_id, detail.status, succeeded)
    command = tracker.get_command(detail.command_id)
    if command is None:
        raise CommandNotTracked(f"command {detail.command_id} lost its tracking row while recording a result")
    resumed = _resume_if_complete(command, tracker, callbacks, directory)
    if not resumed and outcome is RecordOutcome.RECORDED and command.task_token and not command.resumed:
        callbacks.heartbeat(command.task_token)
    return handled("recorded" if outcome is RecordOutcome.RECORDED else "duplicate", resumed, tally_of(command))


def register_install_wait(
    request: AwaitInstallRequest, tracker: InstallTracker, callbacks: ExecutionCallbacks, directory: CommandDirectory
) -> InstallTally:
    """Store the waiting task's token; if every instance already reported, resume at once.

    Parameters
    ----------
    request : AwaitInstallRequest
        Token, command and expected instance count from the state machine.
    tracker, callbacks, directory
        Ports to the tracking table, Step Functions and SSM (the command's resolved target count).

    Returns
    -------
    InstallTally
        The counts at registration time.
    """
    command = tracker.register_wait(
        request.command_id, request.run_id, request.stage_name, request.expected_instances, request.task_token
    )
    _resume_if_complete(command, tracker, callbacks, directory)
    return tally_of(command)


def reconcile_install(
    request: ReconcileRequest, tracker: InstallTracker, directory: CommandDirectory
) -> ReconcileOutcome:
    """Recover results whose status events were lost, from SSM's own record of the command.

    Parameters
    ----------
    request : ReconcileRequest
        The command, the expected count and how many reconciliations already ran.
    tracker, directory
        Ports to the tracking table and SSM.

    Returns
    -------
    ReconcileOutcome
        The tally after recovery; ``tally.complete`` tells the state machine whether to verify or wait again.

    Raises
    ------
    InstallResultsIncomplete
        The command is still unfinished after ``max_attempts`` reconciliations.
    """
    recovered = 0
    for invocation in directory.list_invocations(request.command_id):
        if invocation.status not in TERMINAL_INVOCATION_STATUSES:
            continue
        outcome = tracker.record_result(
            request.command_id, invocation.instance_id, invocation.status, invocation.status == "Success"
        )
        recovered += outcome is RecordOutcome.RECORDED
    command = tracker.get_command(request.command_id)
    if command is None:
        raise CommandNotTracked(f"command {request.command_id} has no tracking row to reconcile")
    info = directory.describe_command(request.command_id)
    finished = info is not None and info.status in TERMINAL_COMMAND_STATUSES
    expected = max(request.expected_instances, info.target_count if info is not None else 0)
    tally = tally_of(command.model_copy(update={"expected": expected}), command_finished=finished)
    attempts = request.attempts_so_far + 1
    if not tally.complete and attempts >= request.max_attempts:
        raise InstallResultsIncomplete(
            f"command {request.command_id}: {tally.reported}/{tally.expected} instances reported "
            f"after {attempts} reconciliation(s)"
        )
    return ReconcileOutcome(tally=tally, attempts=attempts, recovered_results=recovered)
