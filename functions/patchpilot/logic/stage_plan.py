"""Planning a stage step: which SSM commands it sends (install, scan, health) and to how many instances."""

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from patchpilot.integrations.ports import CanaryTags, ChangeCalendar, Clock, CommandDirectory, PatchSetStore
from patchpilot.logic.commands import install_command_comment
from patchpilot.logic.install_tracking import HEARTBEATS_PER_TIMEOUT
from patchpilot.logic.install_window import decide_install_start
from patchpilot.logic.platforms import operating_system_of
from patchpilot.models.exceptions import NoInstancesInPatchGroup, NoTestedPatchSet, TransientAwsError
from patchpilot.models.records import ManagedInstance
from patchpilot.models.rollout import (
    CANARY_TAG_KEY,
    MAX_CANARIES,
    CanaryPolicy,
    CommandSpec,
    CommandTarget,
    Phase,
    RunContext,
    StageCommands,
    StagePlan,
    StageStepRequest,
)
from patchpilot.models.state import WaitLimits

PATCH_DOCUMENT = "AWS-RunPatchBaseline"
SCAN_MINUTES = 10
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 600, 2_592_000
SNAPSHOT_NAMESPACE = uuid.UUID("7c1f4f52-55d9-4c1e-9a8e-6a0f2f1d3b10")
# AWS-RunPatchBaseline's plugins run at most 7200 s on an instance (the document's `timeoutSeconds`); past it the
# invocation ends ExecutionTimedOut (SSM user guide, monitor-commands.md, "Execution timeout").
PATCH_EXECUTION_TIMEOUT_SECONDS = 7200
HEARTBEAT_MARGIN = 1.5  # a healthy invocation may run this much longer than expected before the wait reconciles
EVENT_DELIVERY_SECONDS = 60  # SSM -> EventBridge -> SQS -> command-result function, batching window included


def rate_limit(max_concurrency: str, targeted: int) -> int:
    """How many instances SSM runs a command on at once for a `MaxConcurrency` (absolute or % rounded up, min 1)."""
    if max_concurrency.endswith("%"):
        return max(math.ceil(targeted * int(max_concurrency[:-1]) / 100), 1)
    return max(int(max_concurrency), 1)


def delivery_timeout_seconds(targeted: int, max_concurrency: str, seconds_per_instance: int) -> int:
    """SendCommand `TimeoutSeconds` for a rate-controlled command: every wave must start before it passes.

    `TimeoutSeconds` bounds how long an invocation may wait to *start*: with `MaxConcurrency` below the group size,
    later waves queue behind earlier ones and end `DeliveryTimedOut` when it passes (SSM user guide,
    monitor-commands.md, "Understanding command timeout values").

    Parameters
    ----------
    targeted : int
        Instances the command targets.
    max_concurrency : str
        The command's `MaxConcurrency`.
    seconds_per_instance : int
        Expected run time on one instance (an install: patch and reboot).

    Returns
    -------
    int
        Waves x expected time per instance, within SendCommand's 600 s (floor) and 30 days.
    """
    waves = math.ceil(targeted / min(rate_limit(max_concurrency, targeted), max(targeted, 1)))
    return min(max(waves * seconds_per_instance, MIN_TIMEOUT_SECONDS), MAX_TIMEOUT_SECONDS)


def command_heartbeat_seconds(
    seconds_per_instance: int, execution_timeout_seconds: int, limits: WaitLimits, wait_timeout_seconds: int
) -> int:
    """The wait's `HeartbeatSeconds` for one command: long enough for the longest quiet gap of a healthy command.

    While a command runs, some invocation is always running (rate control starts the next one when one ends), and
    every end is a final-status event (the only ones the rule queues). So the longest healthy gap between two
    events, or between the wait's start and the first event, is one invocation's run time: the expected time per
    instance with a margin, never more than the document's execution timeout (past it the invocation ends
    ExecutionTimedOut, an event too), plus event delivery. The command-result
    function sends at most one SendTaskHeartbeat per third of the heartbeat (`install_tracking.heartbeat_interval_for`):
    an event just after a heartbeat sends none, so the heartbeat is 3/2 of that gap. A rate-controlled group's waves
    then never look like lost events, at any fleet size; a lost event is noticed at most one heartbeat after the
    last heartbeat sent, and reconciliation recovers it from SSM.

    Parameters
    ----------
    seconds_per_instance : int
        The expected run time on one instance (``install_minutes``, the scan's, the health check's timeout).
    execution_timeout_seconds : int
        The longest an invocation of the document runs (AWS-RunPatchBaseline 7200 s; a shell script's
        ``executionTimeout``).
    limits : WaitLimits
        The run's wait limits: ``heartbeat_seconds`` is the floor.
    wait_timeout_seconds : int
        The wait's timeout: the heartbeat stays below it (Step Functions requires HeartbeatSeconds < TimeoutSeconds).

    Returns
    -------
    int
        ``3/2 x (min(expected x HEARTBEAT_MARGIN, execution timeout) + EVENT_DELIVERY_SECONDS)``, within those limits.
    """
    gap = min(math.ceil(seconds_per_instance * HEARTBEAT_MARGIN), execution_timeout_seconds) + EVENT_DELIVERY_SECONDS
    heartbeat = math.ceil(gap * HEARTBEATS_PER_TIMEOUT / (HEARTBEATS_PER_TIMEOUT - 1))
    return min(max(heartbeat, limits.heartbeat_seconds), wait_timeout_seconds - 1)


def command_wait_timeout_seconds(timeout_seconds: int, execution_timeout_seconds: int, limits: WaitLimits) -> int:
    """The wait's `TimeoutSeconds` for one command: until SSM has ended every invocation of it.

    SSM expires a command `TimeoutSeconds` + the document's execution timeout after it was sent (`ExpiresAfter`):
    every invocation still waiting or running then ends DeliveryTimedOut (SSM user guide, monitor-commands.md,
    "Understanding command timeout values"). A healthy command therefore always finishes before this timeout,
    however many waves its group needs, and at the timeout reconciliation finds the command finished.

    Parameters
    ----------
    timeout_seconds : int
        The command's SendCommand `TimeoutSeconds` (waves x expected time per instance).
    execution_timeout_seconds : int
        The longest an invocation of the document runs.
    limits : WaitLimits
        The run's wait limits: ``install_timeout_seconds`` is the floor.

    Returns
    -------
    int
        ``TimeoutSeconds + execution timeout + EVENT_DELIVERY_SECONDS``, at least ``install_timeout_seconds``.
    """
    return max(timeout_seconds + execution_timeout_seconds + EVENT_DELIVERY_SECONDS, limits.install_timeout_seconds)


def snapshot_id(run_id: str, stage_name: str, attempt: int) -> str:
    """One `SnapshotId` per stage attempt: its install and post-patch scan evaluate the same baseline snapshot."""
    return str(uuid.uuid5(SNAPSHOT_NAMESPACE, f"{run_id}/{stage_name}/{attempt}"))


def canary_tag_value(run_id: str, stage_name: str) -> str:
    """The value of the canary tag on a stage's canary instances (one per run and stage: no stale tag ever matches)."""
    return f"{run_id}/{stage_name}"


def choose_canaries(instances: Sequence[ManagedInstance], policy: CanaryPolicy, salt: str) -> list[str]:
    """Pick a stage's canary instances: per operating system, a few reachable instances, rotated from run to run.

    Parameters
    ----------
    instances : Sequence[ManagedInstance]
        The managed instances of the stage's patch group.
    policy : CanaryPolicy
        ``per_os`` instances of every OS, or ``percent`` of each OS's instances (rounded up, at least one).
    salt : str
        Orders each OS's instances by a hash of salt and instance id (the run and stage): the same run picks the same
        canaries every time it asks, the next run picks others.

    Returns
    -------
    list[str]
        Instance ids, sorted. Only Online instances are candidates (an unreachable canary says nothing about a
        patch). At most ``MAX_CANARIES`` and, in a group of two or more, fewer than the whole group, so something is
        left for after the canary; when the cap bites, every OS gets its first canary before any OS gets a second.
    """
    by_system: dict[str, list[str]] = {}
    for instance in instances:
        if instance.ping_status == "Online":
            system = operating_system_of(instance.platform_type, instance.platform_name, instance.platform_version)
            by_system.setdefault(system, []).append(instance.instance_id)
    queues: list[list[str]] = []
    for system in sorted(by_system):
        ranked = sorted(by_system[system], key=lambda i: hashlib.sha256(f"{salt}/{i}".encode()).hexdigest())
        quota = policy.per_os if policy.per_os is not None else math.ceil(len(ranked) * (policy.percent or 0) / 100)
        queues.append(ranked[: max(quota, 1)])
    cap = min(MAX_CANARIES, max(len(instances) - 1, 1))
    chosen: list[str] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        chosen.extend(queue[rank] for queue in queues if rank < len(queue))
    return sorted(chosen[:cap])


@dataclass(frozen=True)
class StepTargets:
    """Whom a stage step's commands target: the SendCommand targets and how many instances they resolve to."""

    targets: list[CommandTarget]
    count: int
    canary: bool = False


def _canary_targets(
    request: StageStepRequest, directory: CommandDirectory, tags: CanaryTags, patch_group_tag_key: str, tag_now: bool
) -> StepTargets:
    """The canary step targets the instances carrying the run's canary tag; the first plan that starts sets it."""
    run, stage = request.run, request.stage
    assert stage.canary is not None
    value = canary_tag_value(run.run_id, stage.name)
    target = [CommandTarget(Key=f"tag:{CANARY_TAG_KEY}", Values=[value])]
    tagged = directory.managed_instances(CANARY_TAG_KEY, value)
    if tagged:  # an earlier plan of this run chose them (a retry re-verifies the same canaries)
        return StepTargets(target, len(tagged), canary=True)
    group = directory.managed_instances(patch_group_tag_key, stage.patch_group)
    if not group:
        raise NoInstancesInPatchGroup(
            f"stage {stage.name}: no managed instance has tag {patch_group_tag_key}={stage.patch_group}"
        )
    chosen = choose_canaries(group, stage.canary, value)
    if not chosen:
        raise NoInstancesInPatchGroup(f"stage {stage.name}: no instance of patch group {stage.patch_group} is Online")
    if tag_now:
        tags.tag(chosen, CANARY_TAG_KEY, value)
        visible = len(directory.managed_instances(CANARY_TAG_KEY, value))
        if visible != len(chosen):  # tags are eventually consistent: plan again rather than miss a canary
            raise TransientAwsError(f"stage {stage.name}: {visible} of {len(chosen)} canary tags visible to SSM yet")
    return StepTargets(target, len(chosen), canary=True)


def step_targets(
    request: StageStepRequest,
    directory: CommandDirectory,
    tags: CanaryTags,
    patch_group_tag_key: str,
    tag_now: bool = True,
) -> StepTargets:
    """Whom a stage step targets: its canaries (``canary`` step), else the whole patch group by its tag.

    The step after a passed canary targets the whole group: SendCommand targets match instances that carry a tag
    and cannot leave some out, and naming the rest by `InstanceIds` takes one command per 50 instances (SendCommand
    API reference, InstanceIds) and would put the fleet into the state payload. On the canaries that install finds
    nothing missing (they already hold the stage's patches), so it installs nothing and RebootIfNeeded does not
    reboot them; the group's scan and health command then verify them with everyone else. Planning that step
    removes the canary tags (``tag_now``: only when the step starts now).
    """
    stage = request.stage
    if request.phase_set == "canary" and stage.canary is not None:
        return _canary_targets(request, directory, tags, patch_group_tag_key, tag_now)
    if request.phase_set == "patch" and stage.canary is not None and tag_now:
        canaries = directory.managed_instances(CANARY_TAG_KEY, canary_tag_value(request.run.run_id, stage.name))
        if canaries:
            tags.untag([i.instance_id for i in canaries], CANARY_TAG_KEY)
    targeted = directory.count_managed_instances(patch_group_tag_key, stage.patch_group)
    if targeted == 0:
        raise NoInstancesInPatchGroup(
            f"stage {stage.name}: no managed instance has tag {patch_group_tag_key}={stage.patch_group}"
        )
    return StepTargets([CommandTarget(Key=f"tag:{patch_group_tag_key}", Values=[stage.patch_group])], targeted)


def _install_parameters(request: StageStepRequest, patch_sets: PatchSetStore) -> dict[str, list[str]]:
    run, stage = request.run, request.stage
    parameters: dict[str, list[str]] = {
        "Operation": ["Install"],
        "RebootOption": [stage.reboot_option],
        "SnapshotId": [snapshot_id(run.run_id, stage.name, request.attempt)],
    }
    if run.mode == "emergency":
        parameters["BaselineOverride"] = [patch_sets.emergency_baseline_override(run)]
    elif stage.role == "production":
        install_list = patch_sets.install_list_for(run.run_id, stage)
        if install_list is None:
            raise NoTestedPatchSet(
                f"stage {stage.name}: no test stage of run {run.run_id} froze a patch set; production installs "
                "only what a test stage verified"
            )
        parameters["InstallOverrideList"] = [install_list]
    return parameters


def plan_stage_commands(
    request: StageStepRequest,
    directory: CommandDirectory,
    patch_sets: PatchSetStore,
    patch_group_tag_key: str,
    tags: CanaryTags,
    tag_now: bool = True,
    *,
    health_document: str,
) -> StageCommands:
    """Plan the commands of one stage step.

    Parameters
    ----------
    request : StageStepRequest
        The run, the stage and the step: ``canary`` (install, post-patch scan, health command on the stage's canary
        instances), ``patch`` (the same on the patch group) or ``verify`` (the health command again, after the bake).
    directory : CommandDirectory
        SSM, to count the managed instances of the stage's patch group (or its canaries).
    patch_sets : PatchSetStore
        Where production stages find the frozen patch set (InstallOverrideList) and emergency runs their
        BaselineOverride.
    patch_group_tag_key : str
        The tag that assigns instances to patch groups (``PatchGroup``).
    tags : CanaryTags
        Sets the canary tag on the chosen canaries, and removes it when the rest of the group is planned.
    tag_now : bool
        Whether the step starts now (tags change only then).
    health_document : str
        The stack's cross-platform health-check document: the stage's health check is ONE command of it, whatever
        the platforms of the group (parameters: ``HealthCheck.parameters``).

    Returns
    -------
    StageCommands
        The commands in order, each with tag targets, rate control and the comment that marks it as PatchPilot's.
        Canary commands run on every canary at once and never stop early (`MaxConcurrency`/`MaxErrors` 100 %): every
        canary reports, so every OS has its evidence.

    Raises
    ------
    NoInstancesInPatchGroup
        No managed instance carries the stage's patch group tag (or, for a canary, none is Online).
    NoTestedPatchSet
        A production stage of a non-emergency run has no frozen patch set to install.
    TransientAwsError
        The canary tags were set but SSM does not see all of them yet (the state machine plans again).
    """
    run, stage = request.run, request.stage
    chosen = step_targets(request, directory, tags, patch_group_tag_key, tag_now)
    targeted = chosen.count
    comment = install_command_comment(run.run_id, stage.name)
    max_concurrency, max_errors = ("100%", "100%") if chosen.canary else (stage.max_concurrency, stage.max_errors)

    def command(phase: Phase, document: str, parameters: dict[str, list[str]], seconds: int, limit: int) -> CommandSpec:
        timeout = delivery_timeout_seconds(targeted, max_concurrency, seconds)
        wait = command_wait_timeout_seconds(timeout, limit, run.limits)
        return CommandSpec(
            phase=phase,
            document_name=document,
            parameters=parameters,
            targets=chosen.targets,
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            comment=comment,
            timeout_seconds=timeout,
            heartbeat_seconds=command_heartbeat_seconds(seconds, limit, run.limits, wait),
            wait_timeout_seconds=wait,
        )

    commands: list[CommandSpec] = []
    if request.phase_set in ("canary", "patch"):
        install = _install_parameters(request, patch_sets)
        scan = {"Operation": ["Scan"], "SnapshotId": install["SnapshotId"]}
        patch_limit = PATCH_EXECUTION_TIMEOUT_SECONDS
        commands.append(command("install", PATCH_DOCUMENT, install, stage.install_minutes * 60, patch_limit))
        commands.append(command("scan", PATCH_DOCUMENT, scan, SCAN_MINUTES * 60, patch_limit))
    if stage.health_check is not None:
        check = stage.health_check
        seconds = check.timeout_seconds
        commands.append(command("health", health_document, check.parameters(), seconds, seconds))
    return StageCommands(targeted_instances=targeted, commands=commands)


def plan_stage_step(
    request: StageStepRequest,
    directory: CommandDirectory,
    patch_sets: PatchSetStore,
    patch_group_tag_key: str,
    clock: Clock,
    calendar: ChangeCalendar,
    tags: CanaryTags,
    *,
    health_document: str,
) -> StageCommands:
    """Plan a stage step's commands and whether they may start now (window, cutoff, change calendar).

    Parameters
    ----------
    request : StageStepRequest
        The run, the stage and the step.
    directory, patch_sets
        As for `plan_stage_commands`.
    patch_group_tag_key : str
        The patch group tag.
    clock, calendar
        The time to decide for, and the stage's SSM Change Calendar.
    tags : CanaryTags
        The canary tag (set only when the step starts now).
    health_document : str
        The stack's health-check document.

    Returns
    -------
    StageCommands
        The commands, and in ``start`` either ``start_now`` or the ``wait_until`` timestamp after which the state
        machine plans the step again.
    """
    start = decide_install_start(request, clock, calendar)
    planned = plan_stage_commands(
        request, directory, patch_sets, patch_group_tag_key, tags, start.start_now, health_document=health_document
    )
    return planned.model_copy(update={"start": start})


def bisect_round_commands(
    run: RunContext,
    stage: StagePlan,
    attempt: int,
    round_number: int,
    install_list: str,
    tag_key: str,
    tag_value: str,
    health_document: str,
) -> StageCommands:
    """The commands of a bisection round: install a subset of the suspects, post-patch scan, health command.

    They target the bisected instance alone, by the bisection tag (``tag_key=tag_value``, set on that instance only):
    AWS-RunPatchBaseline installs exactly the patches its InstallOverrideList names (SSM user guide,
    patch-manager-about-aws-runpatchbaseline, InstallOverrideList), with the stage's reboot option, and the scan and
    the stage's health check (one command of the stack's ``health_document``) then verify the instance. Every round has
    its own baseline `SnapshotId`.
    """
    targets = [CommandTarget(Key=f"tag:{tag_key}", Values=[tag_value])]
    comment = install_command_comment(run.run_id, stage.name)
    snapshot = snapshot_id(run.run_id, f"{stage.name}/bisect/{round_number}", attempt)

    def command(phase: Phase, document: str, parameters: dict[str, list[str]], seconds: int, limit: int) -> CommandSpec:
        timeout = delivery_timeout_seconds(1, "100%", seconds)
        wait = command_wait_timeout_seconds(timeout, limit, run.limits)
        return CommandSpec(
            phase=phase,
            document_name=document,
            parameters=parameters,
            targets=targets,
            max_concurrency="100%",
            max_errors="100%",
            comment=comment,
            timeout_seconds=timeout,
            heartbeat_seconds=command_heartbeat_seconds(seconds, limit, run.limits, wait),
            wait_timeout_seconds=wait,
        )

    install: dict[str, list[str]] = {
        "Operation": ["Install"],
        "RebootOption": [stage.reboot_option],
        "SnapshotId": [snapshot],
        "InstallOverrideList": [install_list],
    }
    patch_limit = PATCH_EXECUTION_TIMEOUT_SECONDS
    commands = [
        command("install", PATCH_DOCUMENT, install, stage.install_minutes * 60, patch_limit),
        command(
            "scan", PATCH_DOCUMENT, {"Operation": ["Scan"], "SnapshotId": [snapshot]}, SCAN_MINUTES * 60, patch_limit
        ),
    ]
    if stage.health_check is not None:
        check = stage.health_check
        seconds = check.timeout_seconds
        commands.append(command("health", health_document, check.parameters(), seconds, seconds))
    return StageCommands(targeted_instances=1, commands=commands)
