"""Decisions about install commands: record results once, resume the waiting execution once, reconcile lost events."""

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from patchpilot.integrations.ports import CommandDirectory, ExecutionCallbacks, InstallTracker
from patchpilot.logic.commands import parse_command_comment
from patchpilot.models.events import TERMINAL_INVOCATION_STATUSES, CommandInvocationDetail
from patchpilot.models.exceptions import CommandNotTracked, InstallResultsIncomplete
from patchpilot.models.records import BatchRecorded, CommandInfo, InstanceResult, TrackedCommand
from patchpilot.models.state import AwaitInstallRequest, InstallTally, ReconcileOutcome, ReconcileRequest

INSTALL_DOCUMENT = "AWS-RunPatchBaseline"


@dataclass(frozen=True)
class TrackingPorts:
    """The ports the command-result path needs: the tracking table, SSM and Step Functions."""

    tracker: InstallTracker
    directory: CommandDirectory
    callbacks: ExecutionCallbacks


TERMINAL_COMMAND_STATUSES = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "DeliveryTimedOut"})


RESUME_LEASE_SECONDS = 60
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 60
HEARTBEATS_PER_TIMEOUT = 3  # SendTaskHeartbeat at most every third of the task's HeartbeatSeconds


Action = Literal["recorded", "duplicate", "progress", "ignored_foreign_command"]


class CommandBatchHandled(BaseModel):
    """What the command-result function did with the events of one command in one batch."""

    model_config = ConfigDict(frozen=True)

    command_id: str
    events: int
    recorded: int = 0
    duplicates: int = 0
    progress: int = 0
    ignored_foreign: bool = False
    resumed_execution: bool = False
    heartbeat_sent: bool = False
    tally: InstallTally | None = None


def group_by_command(details: list[CommandInvocationDetail]) -> dict[str, list[CommandInvocationDetail]]:
    """The batch's events by command, in arrival order (each command's events are recorded together)."""
    groups: dict[str, list[CommandInvocationDetail]] = {}
    for detail in details:
        groups.setdefault(detail.command_id, []).append(detail)
    return groups


def heartbeat_interval_for(heartbeat_seconds: int | None) -> int:
    """How often (at most) to send SendTaskHeartbeat: a third of the task's HeartbeatSeconds (so two can be lost)."""
    if heartbeat_seconds is None:
        return DEFAULT_HEARTBEAT_INTERVAL_SECONDS
    return max(1, heartbeat_seconds // HEARTBEATS_PER_TIMEOUT)


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
        phase=command.phase,
    )


def targeted_by_ssm(command_id: str, expected: int, directory: CommandDirectory) -> int:
    """The instances the command really targets: ListCommands `TargetCount` once SSM resolved it, else `expected`.

    The planner counts the patch group before the command is sent; an instance tagged into the group meanwhile is
    targeted too (SendCommand resolves tag targets itself), so the planned count can be short.
    """
    info = directory.describe_command(command_id)
    return max(expected, info.target_count) if info is not None else expected


def _resume_if_complete(
    command: TrackedCommand,
    tracker: InstallTracker,
    callbacks: ExecutionCallbacks,
    directory: CommandDirectory,
    now: float,
) -> bool:
    """Resume the waiting execution exactly once.

    The right to resume is a lease, not a flag: the execution is marked resumed only after SendTaskSuccess
    succeeded (or answered that the token is already closed, which makes a repeated call harmless). A resume that
    fails gives its lease back and raises, so the event is redelivered and the resume retried; one whose holder
    died is retried by the next event or redelivery once the lease expires, or the wait's heartbeat timeout sends
    the execution to reconciliation.
    """
    tally = tally_of(command)
    if not tally.complete or command.task_token is None or command.resumed:
        return False
    targeted = targeted_by_ssm(command.command_id, command.expected or 0, directory)
    if targeted > command.reported:
        return False  # SSM targeted more instances than planned: wait for them too
    tally = tally_of(command.model_copy(update={"expected": targeted}))
    token = command.task_token
    if not tracker.claim_resume(command.command_id, token, now, RESUME_LEASE_SECONDS):
        return False
    try:
        delivered = callbacks.resume(token, tally)
    except Exception:
        tracker.release_resume(command.command_id, token)
        raise
    tracker.mark_resumed(command.command_id, token)
    return delivered


def _heartbeat_if_due(
    command: TrackedCommand, tracker: InstallTracker, callbacks: ExecutionCallbacks, now: float
) -> bool:
    """At most one SendTaskHeartbeat per interval per command, however many events arrive."""
    token = command.task_token
    if token is None or command.resumed:
        return False
    last = command.last_heartbeat_at
    if last is not None and now - last < command.heartbeat_interval_seconds:
        return False
    if not tracker.claim_heartbeat(command.command_id, token, now, command.heartbeat_interval_seconds):
        return False
    return callbacks.heartbeat(token)


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


def record_command_results(
    command_id: str,
    details: list[CommandInvocationDetail],
    ports: TrackingPorts,
    now: float,
) -> CommandBatchHandled:
    """Record a batch's status changes of one command; resume the waiting execution when the last instance reports.

    Parameters
    ----------
    command_id : str
        The command all ``details`` belong to.
    details : list[CommandInvocationDetail]
        The status-change events' details (terminal ones are recorded, the others are progress).
    ports : TrackingPorts
        The tracking table, SSM and Step Functions.
    now : float
        The current time (epoch seconds): heartbeat intervals and resume leases.

    Returns
    -------
    CommandBatchHandled
        How many results were new, duplicates (no second effect) or progress; whether the execution was resumed.

    Raises
    ------
    CommandNotTracked
        The tracking row vanished while recording.
    """
    terminal = [d for d in details if d.is_terminal]
    results = [
        InstanceResult(instance_id=d.instance_id, status=d.status, succeeded=d.status == "Success") for d in terminal
    ]
    recorded = BatchRecorded()
    if results:
        recorded = ports.tracker.record_results(command_id, results)
        if recorded.unknown_command:
            if not _ensure_tracked(command_id, ports.tracker, ports.directory):
                return CommandBatchHandled(command_id=command_id, events=len(details), ignored_foreign=True)
            recorded = ports.tracker.record_results(command_id, results)
    command = ports.tracker.get_command(command_id)
    if command is None and results:
        raise CommandNotTracked(f"command {command_id} lost its tracking row while recording results")
    handled = CommandBatchHandled(
        command_id=command_id,
        events=len(details),
        recorded=recorded.recorded,
        duplicates=recorded.duplicates,
        progress=len(details) - len(terminal),
    )
    if command is None:
        return handled
    if command.foreign:
        return handled.model_copy(update={"ignored_foreign": True})
    resumed = _resume_if_complete(command, ports.tracker, ports.callbacks, ports.directory, now)
    beat = not resumed and _heartbeat_if_due(command, ports.tracker, ports.callbacks, now)
    return handled.model_copy(update={"resumed_execution": resumed, "heartbeat_sent": beat, "tally": tally_of(command)})


def register_install_wait(
    request: AwaitInstallRequest,
    tracker: InstallTracker,
    callbacks: ExecutionCallbacks,
    directory: CommandDirectory,
    now: float,
) -> InstallTally:
    """Store the waiting task's token; if every instance already reported, resume at once.

    Parameters
    ----------
    request : AwaitInstallRequest
        Token, command, expected instance count and heartbeat from the state machine.
    tracker, callbacks, directory
        Ports to the tracking table, Step Functions and SSM (the command's resolved target count).
    now : float
        The current time (epoch seconds).

    Returns
    -------
    InstallTally
        The counts at registration time.
    """
    command = tracker.register_wait(
        request.command_id,
        request.run_id,
        request.stage_name,
        request.expected_instances,
        request.task_token,
        heartbeat_interval_for(request.heartbeat_seconds),
        request.phase,
    )
    _resume_if_complete(command, tracker, callbacks, directory, now)
    return tally_of(command)


def reconcile_install(
    request: ReconcileRequest, tracker: InstallTracker, directory: CommandDirectory, now: float
) -> ReconcileOutcome:
    """Recover results whose status events were lost, from SSM's own record of the command.

    Only results the tracking table lacks are written (one read of the recorded ones first): rewriting every
    finished result made each reconciliation a train of transactions that fail on conflicts and throttling
    under load, each failure costing the whole attempt.

    Parameters
    ----------
    request : ReconcileRequest
        The command, the expected count and how many reconciliations already ran.
    tracker, directory
        Ports to the tracking table and SSM.
    now : float
        The current time (epoch seconds), compared with the command's ``ExpiresAfter``.

    Returns
    -------
    ReconcileOutcome
        The tally after recovery; ``tally.complete`` tells the state machine whether to verify or wait again.

    Raises
    ------
    InstallResultsIncomplete
        The command is still unfinished after ``max_attempts`` reconciliations. A pass counts only when it cannot
        be waiting on SSM: a pass that recovered results of an unfinished command made progress, and a command SSM
        still runs before its ``ExpiresAfter`` (a large group's rate-controlled waves, a Windows install that
        outlasts a heartbeat) is being waited on, not lost; SSM ends every unfinished invocation at
        ``ExpiresAfter``, so that wait is bounded. A finished command, an expired one SSM still calls running, and
        one SSM does not know (or gives no expiry for) count.
    """
    already_recorded = {result.instance_id for result in tracker.list_results(request.command_id)}
    lost_results = [
        InstanceResult(instance_id=i.instance_id, status=i.status, succeeded=i.status == "Success")
        for i in directory.list_invocations(request.command_id)
        if i.status in TERMINAL_INVOCATION_STATUSES and i.instance_id not in already_recorded
    ]
    recovered = tracker.record_results(request.command_id, lost_results).recorded if lost_results else 0
    command = tracker.get_command(request.command_id)
    if command is None:
        raise CommandNotTracked(f"command {request.command_id} has no tracking row to reconcile")
    info = directory.describe_command(request.command_id)
    finished = info is not None and info.status in TERMINAL_COMMAND_STATUSES
    expected = max(request.expected_instances, info.target_count if info is not None else 0)
    tally = tally_of(command.model_copy(update={"expected": expected}), command_finished=finished)
    made_progress = recovered > 0 and not finished
    attempts = request.attempts_so_far + (0 if made_progress or _ssm_still_running(info, now) else 1)
    if not tally.complete and attempts >= request.max_attempts:
        raise InstallResultsIncomplete(
            f"command {request.command_id}: {tally.reported}/{tally.expected} instances reported "
            f"after {attempts} reconciliation(s)"
        )
    return ReconcileOutcome(tally=tally, attempts=attempts, recovered_results=recovered)


def _ssm_still_running(info: CommandInfo | None, now: float) -> bool:
    """SSM runs the command and has not reached its expiry: a wait for its results is a wait on SSM, not a loss."""
    if info is None or info.status in TERMINAL_COMMAND_STATUSES or info.expires_after is None:
        return False
    return now < info.expires_after.timestamp()
