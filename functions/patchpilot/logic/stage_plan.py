"""Planning a stage: who is targeted and how the install command is shaped."""

from patchpilot.integrations.ports import CommandDirectory
from patchpilot.logic.commands import install_command_comment
from patchpilot.models.exceptions import NoInstancesInPatchGroup
from patchpilot.models.state import PlannedStage, RolloutRequest


def plan_stage(request: RolloutRequest, directory: CommandDirectory, patch_group_tag_key: str) -> PlannedStage:
    """Plan the install of one stage.

    Parameters
    ----------
    request : RolloutRequest
        The rollout request naming the stage.
    directory : CommandDirectory
        SSM, to count the managed instances of the stage's patch group.
    patch_group_tag_key : str
        The tag that assigns instances to patch groups (``PatchGroup``).

    Returns
    -------
    PlannedStage
        Target count, rate control and the command comment that marks the command as PatchPilot's.

    Raises
    ------
    NoInstancesInPatchGroup
        No managed instance carries the stage's patch group tag.
    """
    stage = request.stage
    targeted = directory.count_managed_instances(patch_group_tag_key, stage.patch_group)
    if targeted == 0:
        raise NoInstancesInPatchGroup(
            f"stage {stage.name}: no managed instance has tag {patch_group_tag_key}={stage.patch_group}"
        )
    return PlannedStage(
        run_id=request.run_id,
        stage_name=stage.name,
        patch_group=stage.patch_group,
        patch_group_tag_key=patch_group_tag_key,
        targeted_instances=targeted,
        max_concurrency=stage.max_concurrency,
        max_errors=stage.max_errors,
        reboot_option=stage.reboot_option,
        command_comment=install_command_comment(request.run_id, stage.name),
        bake_seconds=stage.bake_seconds,
        limits=request.limits,
    )
