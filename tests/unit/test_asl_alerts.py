"""The alerts the state machine builds itself (its `Notify …` states publish to SNS directly) are valid `Alert`s.

Each Notify state's `Message` is rendered the way Step Functions would (JSONPath and `$$` context references filled
from a sample state input, `States.Format` evaluated) and validated with the `Alert` model, so the ASL and the model
cannot drift: a Notify state that drops a required field, adds an unknown one or uses an unknown kind fails here.
"""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from patchpilot.models.alerts import DEFAULT_SEVERITY, Alert

ASL_PATH = Path(__file__).resolve().parents[2] / "statemachines" / "rollout.asl.json"

# What the Notify states read, with plausible values (the shapes of the task outputs they follow). A Notify state
# that reads a path missing here fails with the path named: add a sample value for it.
SAMPLE_INPUT: dict[str, Any] = {
    "run": {"run_id": "2026-12", "mode": "scheduled", "approval_timeout_seconds": 86400},
    "stage": {
        "name": "prod-1",
        "patch_group": "prod-1",
        "role": "production",
        "max_concurrency": "25%",
        "max_errors": "1",
        "snapshots": {"retention_days": 14},
    },
    "phase_set": "verify",
    "attempt": 1,
    "verdict": {
        "unhealthy": 3,
        "targeted": 10,
        "allowed_failures": 1,
        "reasons": {"i-0123456789abcdef0": ["health_failed"]},
        "alarms_in_alarm": ["patchpilot-prod-1-errors"],
        "unhealthy_sample": [{"instance_id": "i-0123456789abcdef0", "platform": "AMAZON_LINUX_2023"}],
    },
    "exclusion": {
        "outcome": "exclude",
        "reason": "bad-lib.x86_64 arrived on 3/3 unhealthy and 0/5 healthy instances",
        "patches": [{"patch_id": "bad-lib.x86_64"}],
    },
    "plan": {
        "run": {
            "run_id": "2026-12",
            "mode": "emergency",
            "patch_ids": ["openssl.x86_64"],
            "cve_ids": ["CVE-2026-0001"],
        },
        "stages": [{"name": "dev"}, {"name": "staging"}, {"name": "prod-1"}],
    },
    "outcome": {"stage_name": "prod-1", "status": "passed", "targeted": 10, "unhealthy": 1, "frozen_patch_count": None},
    "compliance": {
        "rate_before": 91.5,
        "rate_after": 98.0,
        "non_compliant": 2,
        "unmanaged": 0,
        "nodes": 100,
        "counts": {"compliant": 98, "non_compliant": 2},
        "report_uri": "s3://patchpilot-artifacts/reports/compliance/2026-12.html",
    },
    "stages_passed": [{"stage_name": "dev", "status": "passed"}, {"stage_name": "prod-1", "status": "passed"}],
    "failure": {"Error": "StageUnhealthy", "Cause": "stage prod-1: 3 of 10 instances unhealthy"},
}
SAMPLE_CONTEXT: dict[str, Any] = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:cycle-2026-12",
        "Name": "cycle-2026-12",
    },
    "State": {"EnteredTime": "2026-12-08T20:00:00.000Z", "Name": "Notify"},
}
_FORMAT = re.compile(r"^States\.Format\('((?:[^'\\]|\\.)*)'((?:\s*,\s*[^,]+)*)\)$")


def _notify_states(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state named `Notify …`, the ones inside Map item processors and Parallel branches included."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in machine["States"].items():
        if name.startswith("Notify"):
            found[name] = state
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                found.update(_notify_states(inner))
    return found


def _path(expression: str) -> Any:
    """A reference path (`$.a.b` into the state input, `$$.a.b` into the context object, `[*]` projects a list) or
    `States.ArrayLength(path)`."""
    length = re.fullmatch(r"States\.ArrayLength\((.+)\)", expression)
    if length:
        return len(_path(length.group(1)))
    document, rest = (
        (SAMPLE_CONTEXT, expression[3:]) if expression.startswith("$$.") else (SAMPLE_INPUT, expression[2:])
    )
    return _select(document, rest.split("."), expression)


def _select(value: Any, parts: list[str], expression: str) -> Any:
    if not parts:
        return value
    part, projected = (parts[0][:-3], True) if parts[0].endswith("[*]") else (parts[0], False)
    if not isinstance(value, dict) or part not in value:
        raise AssertionError(f"{expression}: no sample value (add it to SAMPLE_INPUT or SAMPLE_CONTEXT)")
    if projected:
        return [_select(item, parts[1:], expression) for item in value[part]]
    return _select(value[part], parts[1:], expression)


def _format(expression: str) -> str:
    """`States.Format('… {} …', path, …)`: each `{}` replaced by the next argument (JSON for non-strings)."""
    match = _FORMAT.match(expression)
    if match is None:
        raise AssertionError(f"unsupported intrinsic in a Notify state: {expression}")
    template, args = match.group(1), [a.strip() for a in match.group(2).split(",") if a.strip()]
    values = [_path(arg) for arg in args]
    assert template.count("{}") == len(values), f"{expression}: {template.count('{}')} placeholders, {len(values)} args"
    pieces = template.split("{}")
    rendered = pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        rendered += (value if isinstance(value, str) else json.dumps(value)) + piece
    return rendered.replace("\\'", "'")


def render(template: Any) -> Any:
    """A Parameters/Arguments block as Step Functions passes it: `key.$` fields resolved, the rest as written."""
    if isinstance(template, list):
        return [render(item) for item in template]
    if not isinstance(template, dict):
        return template
    rendered: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            rendered[key[:-2]] = _format(value) if value.startswith("States.") else _path(value)
        else:
            rendered[key] = render(value)
    return rendered


def _machine() -> dict[str, Any]:
    machine: dict[str, Any] = json.loads(ASL_PATH.read_text())
    return machine


def _notify_alerts(machine: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per Notify state: its rendered SNS parameters and the rendered alert message."""
    alerts = {}
    for name, state in _notify_states(machine).items():
        parameters = render(state.get("Parameters") or state.get("Arguments"))
        alerts[name] = (parameters, parameters["Message"])
    return alerts


def test_asl_alerts_every_notify_state_publishes_a_valid_alert() -> None:
    alerts = _notify_alerts(_machine())
    assert len(alerts) >= 4
    kinds = {}
    for name, (_, message) in alerts.items():
        alert = Alert.model_validate(message)
        kinds[name] = alert.kind
        assert alert.severity == DEFAULT_SEVERITY[alert.kind], name
    assert set(kinds.values()) >= {
        "cycle_started",
        "emergency_started",
        "stage_started",
        "stage_passed",
        "stage_failed",
        "rollout_failed",
        "cycle_finished",
        "approval_timed_out",
        "exclusion_inconclusive",
    }


def test_asl_alerts_notify_states_are_sns_publish_tasks_whose_attributes_match_the_alert() -> None:
    machine = _machine()
    for name, state in _notify_states(machine).items():
        assert (state["Type"], state["Resource"]) == ("Task", "arn:aws:states:::sns:publish"), name
    for name, (parameters, message) in _notify_alerts(machine).items():
        # subscription filter policies match on these attributes: they must say what the message says
        attributes = {key: value["StringValue"] for key, value in parameters["MessageAttributes"].items()}
        assert attributes == {"kind": message["kind"], "severity": message["severity"]}, name
        assert parameters["TopicArn"] == "${AlertTopicArn}", name


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda message: message.pop("occurred_at.$"), r"occurred_at\n  Field required"),
        (lambda message: message.pop("run_id.$"), r"run_id\n  Field required"),
        (lambda message: message.update(kind="stage_exploded"), r"kind\n  Input should be '[a-z_', ]*'stage_failed'"),
        (lambda message: message.update(severity="fatal"), r"severity\n  Input should be 'info'"),
        (lambda message: message.update(task_token="AQCEAAAA"), r"task_token\n  Extra inputs are not permitted"),
    ],
    ids=["drops-occurred-at", "drops-run-id", "unknown-kind", "unknown-severity", "unknown-field"],
)
def test_asl_alerts_a_notify_state_that_drifts_from_the_model_fails(change: Any, error: str) -> None:
    machine = copy.deepcopy(_machine())
    name, state = next(iter(_notify_states(machine).items()))
    change((state.get("Parameters") or state["Arguments"])["Message"])
    with pytest.raises((ValidationError, AssertionError), match=error):
        Alert.model_validate(_notify_alerts(machine)[name][1])


def test_asl_alerts_render_evaluates_format_and_paths() -> None:
    rendered = render(
        {
            "a.$": "States.Format('Stage {} of run {}: {} unhealthy', $.stage.name, $.run.run_id, $.verdict.unhealthy)",
            "b.$": "$$.Execution.Name",
            "c": {"d.$": "$.verdict.reasons"},
        }
    )
    assert rendered == {
        "a": "Stage prod-1 of run 2026-12: 3 unhealthy",
        "b": "cycle-2026-12",
        "c": {"d": {"i-0123456789abcdef0": ["health_failed"]}},
    }
    assert render(
        {"n.$": "States.Format('{} stages', States.ArrayLength($.plan.stages))", "s.$": "$.plan.stages[*].name"}
    ) == {"n": "3 stages", "s": ["dev", "staging", "prod-1"]}
    with pytest.raises(AssertionError, match=r"\$\.nowhere: no sample value"):
        render({"x.$": "$.nowhere"})
    with pytest.raises(AssertionError, match="unsupported intrinsic"):
        render({"x.$": "States.JsonToString($.run)"})
