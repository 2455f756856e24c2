"""Input of the stage's snapshot step: the run and the stage, as every stage step receives them."""

from pydantic import ConfigDict

from patchpilot.models.bounds import Utf8Input
from patchpilot.models.rollout import RunContext, StagePlan


class StageSnapshotsRequest(Utf8Input):
    """The snapshot step's input (the state machine passes the run and the stage)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: RunContext
    stage: StagePlan
