"""How PatchPilot marks the SSM commands it starts, so that events about them can be told from foreign ones."""

import re
from typing import NamedTuple

_COMMENT = re.compile(r"^PatchPilot (?P<run_id>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<stage_name>[a-z][a-z0-9-]*)$")


class CommandOwner(NamedTuple):
    """The rollout run and stage that started a command."""

    run_id: str
    stage_name: str


def install_command_comment(run_id: str, stage_name: str) -> str:
    """The SendCommand `Comment` (at most 100 characters) that names the run and stage.

    Parameters
    ----------
    run_id : str
        Rollout run id (at most 64 characters).
    stage_name : str
        Stage name (at most 32 characters).

    Returns
    -------
    str
        ``"PatchPilot <run_id>/<stage_name>"``.
    """
    return f"PatchPilot {run_id}/{stage_name}"


def parse_command_comment(comment: str) -> CommandOwner | None:
    """The run and stage named by a command comment, or None when PatchPilot did not write it."""
    match = _COMMENT.match(comment)
    return None if match is None else CommandOwner(match["run_id"], match["stage_name"])


ROLLBACK_COMMAND = "patchpilot rollback --run {run} --instance {instance}"


def rollback_command(run_id: str, instance_id: str) -> str:
    """The exact command that restores an instance's root volume from its pre-patch snapshot of a run."""
    return ROLLBACK_COMMAND.format(run=run_id, instance=instance_id)
