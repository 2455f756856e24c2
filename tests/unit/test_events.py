import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from patchpilot.models.events import CommandInvocationEvent
from patchpilot.models.state import RolloutRequest

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
    with pytest.raises(ValidationError) as error:
        CommandInvocationEvent.model_validate(_load("ssm/command-invocation-malformed.json"))
    locations = {".".join(str(part) for part in e["loc"]) for e in error.value.errors()}
    assert locations == {"detail.instance-id", "detail.status"}


def test_command_invocation_event_rejects_other_event_types() -> None:
    with pytest.raises(ValidationError, match="detail-type"):
        CommandInvocationEvent.model_validate(_load("ssm/command-status-success.json"))


def test_rollout_request_sample_start_is_valid_and_invalid_one_is_not() -> None:
    assert RolloutRequest.model_validate(_load("rollout/start-dev.json")).stage.bake_seconds == 86_400
    with pytest.raises(ValidationError) as error:
        RolloutRequest.model_validate(_load("rollout/start-invalid.json"))
    assert {e["loc"][-1] for e in error.value.errors()} == {"run_id", "name", "max_concurrency", "bake_seconds"}
