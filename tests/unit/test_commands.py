import pytest
from pydantic import ValidationError

from patchpilot.logic.commands import install_command_comment, parse_command_comment
from patchpilot.logic.stage_plan import plan_stage
from patchpilot.models.exceptions import NoInstancesInPatchGroup
from patchpilot.models.state import RolloutRequest
from tests.unit.fakes import FakeCommandDirectory


def _request(**stage: object) -> RolloutRequest:
    return RolloutRequest.model_validate({"run_id": "2026-12", "stage": {"name": "dev", "patch_group": "dev", **stage}})


def test_plan_stage_counts_the_patch_group_and_marks_the_command() -> None:
    directory = FakeCommandDirectory()
    directory.managed[("PatchGroup", "dev")] = 7
    planned = plan_stage(_request(max_errors="10%", bake_seconds=3600), directory, "PatchGroup")
    assert planned.targeted_instances == 7
    assert (planned.max_errors, planned.bake_seconds, planned.limits.heartbeat_seconds) == ("10%", 3600, 900)
    assert parse_command_comment(planned.command_comment) == ("2026-12", "dev")


def test_plan_stage_rejects_an_empty_patch_group() -> None:
    with pytest.raises(NoInstancesInPatchGroup, match="PatchGroup=dev"):
        plan_stage(_request(), FakeCommandDirectory(), "PatchGroup")


def test_install_command_comment_fits_send_command_limit_for_longest_names() -> None:
    comment = install_command_comment("r" * 56, "s" * 32)
    assert len(comment) <= 100
    assert parse_command_comment(comment) == ("r" * 56, "s" * 32)


def test_parse_command_comment_rejects_foreign_comments() -> None:
    assert parse_command_comment("Patch Tuesday run by ops") is None


@pytest.mark.parametrize(
    ("stage", "field"),
    [
        ({"name": "Dev Stage"}, "stage.name"),
        ({"bake_seconds": 0}, "stage.bake_seconds"),
        ({"bake_seconds": 15 * 24 * 3600}, "stage.bake_seconds"),
        ({"max_concurrency": "0%"}, "stage.max_concurrency"),
        ({"reboot_option": "Always"}, "stage.reboot_option"),
    ],
)
def test_rollout_request_rejects_out_of_range_stage_fields(stage: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        _request(**stage)
    assert field in str(error.value).replace("\n", ".")
