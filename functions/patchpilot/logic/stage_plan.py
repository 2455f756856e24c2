"""Planning a stage step: which SSM commands it sends (install, scan, health) and to how many instances."""

from patchpilot.integrations.ports import CommandDirectory, PatchSetStore
from patchpilot.logic.commands import install_command_comment
from patchpilot.models.exceptions import NoInstancesInPatchGroup, NoTestedPatchSet
from patchpilot.models.rollout import CommandSpec, CommandTarget, Phase, StageCommands, StageStepRequest

PATCH_DOCUMENT = "AWS-RunPatchBaseline"
PATCH_TIMEOUT = 600


def _install_parameters(request: StageStepRequest, patch_sets: PatchSetStore) -> dict[str, list[str]]:
    run, stage = request.run, request.stage
    parameters: dict[str, list[str]] = {"Operation": ["Install"], "RebootOption": [stage.reboot_option]}
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
    if request.phase_set == "patch":
        commands.append(command("install", PATCH_DOCUMENT, _install_parameters(request, patch_sets), PATCH_TIMEOUT))
        commands.append(command("scan", PATCH_DOCUMENT, {"Operation": ["Scan"]}, PATCH_TIMEOUT))
    if stage.health_check is not None:
        check = stage.health_check
        commands.append(command("health", check.document_name, {"commands": check.commands}, check.timeout_seconds))
    return StageCommands(targeted_instances=targeted, commands=commands)
