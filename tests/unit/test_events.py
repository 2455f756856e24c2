import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.events import CommandInvocationEvent
from patchpilot.models.rollout import RolloutRequest

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _load(name: str) -> dict[str, object]:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize(
    "name",
    [
        "ssm/command-invocation-success.json",
        "ssm/command-invocation-failed.json",
        "ssm/command-invocation-in-progress.json",
    ],
)
def test_command_invocation_event_parses_sample_events(name: str) -> None:
    event = CommandInvocationEvent.model_validate(_load(name))
    assert event.detail.document_name == "AWS-RunPatchBaseline"
    assert event.detail.is_terminal == (event.detail.status != "InProgress")


def test_command_invocation_event_rejects_malformed_sample_naming_the_fields() -> None:
    with pytest.raises(
        ValidationError, match=r"2 validation errors for CommandInvocationEvent\ndetail\.instance-id\n"
    ) as error:
        CommandInvocationEvent.model_validate(_load("ssm/command-invocation-malformed.json"))
    locations = {".".join(str(part) for part in e["loc"]) for e in error.value.errors()}
    assert locations == {"detail.instance-id", "detail.requested-date-time"}


def test_command_invocation_event_rejects_other_event_types() -> None:
    with pytest.raises(ValidationError, match="detail-type"):
        CommandInvocationEvent.model_validate(_load("ssm/command-status-success.json"))


def test_rollout_start_samples_are_valid_and_the_invalid_one_names_its_fields() -> None:
    for name in ("start-cycle", "start-manual-dev-staging", "start-emergency"):
        StartRolloutRequest.model_validate(_load(f"rollout/{name}.json"))
    assert RolloutRequest.model_validate(_load("rollout/execution-input.json")).limits.heartbeat_seconds == 900
    with pytest.raises(ValidationError, match=r"2 validation errors for StartRolloutRequest\ncycle\n") as error:
        StartRolloutRequest.model_validate(_load("rollout/start-invalid.json"))
    assert {e["loc"][0] for e in error.value.errors()} == {"cycle", "cve_ids"}
