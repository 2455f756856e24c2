"""Planning a stage step: which SSM commands it sends (install, scan, health) and to how many instances."""

import math
import uuid

from patchpilot.integrations.ports import ChangeCalendar, Clock, CommandDirectory, PatchSetStore
from patchpilot.logic.commands import install_command_comment
from patchpilot.logic.install_window import decide_install_start
from patchpilot.models.exceptions import NoInstancesInPatchGroup, NoTestedPatchSet
from patchpilot.models.rollout import CommandSpec, CommandTarget, Phase, StageCommands, StageStepRequest

PATCH_DOCUMENT = "AWS-RunPatchBaseline"
SCAN_MINUTES = 10
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 600, 2_592_000
SNAPSHOT_NAMESPACE = uuid.UUID("7c1f4f52-55d9-4c1e-9a8e-6a0f2f1d3b10")


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


def snapshot_id(run_id: str, stage_name: str, attempt: int) -> str:
    """One `SnapshotId` per stage attempt: its install and post-patch scan evaluate the same baseline snapshot."""
    return str(uuid.uuid5(SNAPSHOT_NAMESPACE, f"{run_id}/{stage_name}/{attempt}"))


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
    request: StageStepRequest, directory: CommandDirectory, patch_sets: PatchSetStore, patch_group_tag_key: str
) -> StageCommands:
    """Plan the commands of one stage step.

    Parameters
    ----------
    request : StageStepRequest
        The run, the stage and the step: ``patch`` (install, post-patch scan, health command) or ``verify``
        (the health command again, after the bake).
    directory : CommandDirectory
        SSM, to count the managed instances of the stage's patch group.
    patch_sets : PatchSetStore
        Where production stages find the frozen patch set (InstallOverrideList) and emergency runs their
        BaselineOverride.
    patch_group_tag_key : str
        The tag that assigns instances to patch groups (``PatchGroup``).

    Returns
    -------
    StageCommands
        The commands in order, each with tag targets, rate control and the comment that marks it as PatchPilot's.

    Raises
    ------
    NoInstancesInPatchGroup
        No managed instance carries the stage's patch group tag.
    NoTestedPatchSet
        A production stage of a non-emergency run has no frozen patch set to install.
    """
    run, stage = request.run, request.stage
    targeted = directory.count_managed_instances(patch_group_tag_key, stage.patch_group)
    if targeted == 0:
        raise NoInstancesInPatchGroup(
            f"stage {stage.name}: no managed instance has tag {patch_group_tag_key}={stage.patch_group}"
        )
    targets = [CommandTarget(Key=f"tag:{patch_group_tag_key}", Values=[stage.patch_group])]
    comment = install_command_comment(run.run_id, stage.name)

    def command(phase: Phase, document: str, parameters: dict[str, list[str]], timeout: int) -> CommandSpec:
        return CommandSpec(
            phase=phase,
            document_name=document,
            parameters=parameters,
            targets=targets,
            max_concurrency=stage.max_concurrency,
            max_errors=stage.max_errors,
            comment=comment,
            timeout_seconds=timeout,
        )

    commands: list[CommandSpec] = []

    def timeout(seconds_per_instance: int) -> int:
        return delivery_timeout_seconds(targeted, stage.max_concurrency, seconds_per_instance)

    if request.phase_set == "patch":
        install = _install_parameters(request, patch_sets)
        scan = {"Operation": ["Scan"], "SnapshotId": install["SnapshotId"]}
        commands.append(command("install", PATCH_DOCUMENT, install, timeout(stage.install_minutes * 60)))
        commands.append(command("scan", PATCH_DOCUMENT, scan, timeout(SCAN_MINUTES * 60)))
    for check in (stage.health_check, stage.windows_health_check):
        if check is not None:
            parameters = {"commands": check.commands, "executionTimeout": [str(check.timeout_seconds)]}
            commands.append(command("health", check.document_name, parameters, timeout(check.timeout_seconds)))
    return StageCommands(targeted_instances=targeted, commands=commands)


def plan_stage_step(
    request: StageStepRequest,
    directory: CommandDirectory,
    patch_sets: PatchSetStore,
    patch_group_tag_key: str,
    clock: Clock,
    calendar: ChangeCalendar,
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

    Returns
    -------
    StageCommands
        The commands, and in ``start`` either ``start_now`` or the ``wait_until`` timestamp after which the state
        machine plans the step again.
    """
    start = decide_install_start(request, clock, calendar)
    planned = plan_stage_commands(request, directory, patch_sets, patch_group_tag_key)
    return planned.model_copy(update={"start": start})
