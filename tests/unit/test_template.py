"""The template and the ASL agree, and keep the promises of the architecture."""

import importlib
import json
import re
from typing import Any

from patchpilot.models import exceptions
from patchpilot.models.events import TERMINAL_INVOCATION_STATUSES
from patchpilot.models.rollout import HealthCheck
from patchpilot_sim.template import SamTemplate

TEMPLATE = SamTemplate()
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}


def _asl() -> tuple[str, dict[str, Any]]:
    spec = TEMPLATE.state_machines()["RolloutStateMachine"]
    text = spec.definition_path.read_text()
    return text, json.loads(text)


def _all_states(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, the ones inside Map item processors included."""
    states: dict[str, dict[str, Any]] = {}
    for name, state in machine["States"].items():
        states[name] = state
        if "ItemProcessor" in state:
            states.update(_all_states(state["ItemProcessor"]))
    return states


def test_template_substitutions_cover_every_asl_placeholder() -> None:
    text, _ = _asl()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == set(TEMPLATE.state_machines()["RolloutStateMachine"].substitutions)


def test_template_every_task_has_retry_and_catch() -> None:
    _, asl = _asl()
    tasks = {name: state for name, state in _all_states(asl).items() if state["Type"] == "Task"}
    assert tasks
    for name, state in tasks.items():
        assert state.get("Retry"), name
        assert state.get("Catch"), name
        if "lambda" in state["Resource"] or state["Resource"].startswith("${"):
            retried = {error for retry in state["Retry"] for error in retry["ErrorEquals"]}
            assert retried >= LAMBDA_ERRORS, name


def test_template_every_task_retries_transient_aws_errors_with_backoff() -> None:
    _, asl = _asl()
    assert issubclass(exceptions.TransientAwsError, exceptions.PatchPilotError)
    for name, state in _all_states(asl).items():
        if state["Type"] != "Task" or "sns:publish" in state["Resource"]:
            continue  # SNS publishes retry States.ALL
        wanted = (
            {"Ssm.ThrottlingException", "Ssm.InternalServerErrorException"}
            if state["Resource"].endswith("ssm:sendCommand")
            else {"TransientAwsError", "Lambda.Unknown", "Sandbox.Timedout", "Runtime.ExitError"}
        )
        retriers = [retry for retry in state["Retry"] if wanted & set(retry["ErrorEquals"])]
        assert retriers, name
        assert wanted <= {error for retry in retriers for error in retry["ErrorEquals"]}, name
        assert all(retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3 for retry in retriers), name


def test_template_callback_wait_has_timeout_and_heartbeat() -> None:
    _, asl = _asl()
    states = _all_states(asl)
    callbacks = {name: s for name, s in states.items() if s.get("Resource", "").endswith(".waitForTaskToken")}
    assert set(callbacks) == {"Wait For Command Results", "Request Approval"}
    for state in callbacks.values():
        assert "TimeoutSecondsPath" in state
    assert "HeartbeatSecondsPath" in callbacks["Wait For Command Results"]


def test_template_command_wait_heartbeat_and_timeout_are_the_commands_own() -> None:
    _, asl = _asl()
    wait = _all_states(asl)["Wait For Command Results"]
    # the wait times out on the command's own quiet gap, and the function spaces its heartbeats by the same value
    assert wait["HeartbeatSecondsPath"] == "$.spec.heartbeat_seconds"
    assert wait["TimeoutSecondsPath"] == "$.spec.wait_timeout_seconds"
    assert wait["Parameters"]["Payload"]["heartbeat_seconds.$"] == "$.spec.heartbeat_seconds"


def test_template_verify_step_after_the_bake_is_planned_afresh_and_starts_at_once() -> None:
    _, asl = _asl()
    states = _all_states(asl)
    assert states["Bake"]["Next"] == "Plan Verify Step"
    verify, plan = states["Plan Verify Step"], states["Plan Stage Step"]
    assert verify["Resource"] == plan["Resource"]
    assert verify["Parameters"]["phase_set"] == "verify"
    assert (verify["ResultPath"], verify["Next"]) == (plan["ResultPath"], "Run Stage Commands")
    assert (verify["Retry"], verify["Catch"]) == (plan["Retry"], plan["Catch"])


def test_template_state_names_are_unique_across_nested_maps() -> None:
    _, asl = _asl()
    text = json.dumps(asl)
    for name in _all_states(asl):
        assert text.count(f'"{name}": {{') == 1, name


def test_template_state_machine_is_standard_with_logging_and_tracing() -> None:
    props = TEMPLATE.resources["RolloutStateMachine"]["Properties"]
    assert props["Type"] == "STANDARD"
    assert props["Logging"]["IncludeExecutionData"] is False
    assert props["Tracing"]["Enabled"] is True


def test_template_functions_share_one_code_uri_and_import() -> None:
    functions = TEMPLATE.functions()
    assert {spec.code_uri.name for spec in functions.values()} == {"functions"}
    for spec in functions.values():
        module, attribute = spec.handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attribute)), spec.handler


def test_template_globals_use_arm64_python313_tracing() -> None:
    assert TEMPLATE.globals["Runtime"] == "python3.13"
    assert TEMPLATE.globals["Architectures"] == ["arm64"]
    assert TEMPLATE.globals["Tracing"] == "Active"


def test_template_event_rules_keep_rejected_events() -> None:
    rules = [(spec, rule) for spec in TEMPLATE.functions().values() for rule in spec.rules]
    assert rules
    for spec, rule in rules:
        assert rule.dead_letter_logical_id == "EventsDeadLetterQueue", rule.name
        if rule.queue_logical_id is None:
            assert spec.async_on_failure_logical_id == "EventsDeadLetterQueue", spec.logical_id
            continue
        # through a queue: the queue redrives what the function keeps rejecting (AWS advises maxReceiveCount >= 5)
        redrive = TEMPLATE.resources[rule.queue_logical_id]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}, rule.name
        assert int(redrive["maxReceiveCount"]) >= 5, rule.name
        [source] = [s for s in spec.sqs_sources if s.queue_logical_id == rule.queue_logical_id]
        assert source.report_batch_item_failures, spec.logical_id


def test_template_patch_group_tag_key_allows_only_the_keys_patch_manager_honours() -> None:
    parameter = TEMPLATE.document["Parameters"]["PatchGroupTagKey"]
    assert parameter["AllowedValues"] == ["PatchGroup", "Patch Group"]
    assert parameter["Default"] in parameter["AllowedValues"]


def test_template_command_invocation_rule_matches_every_document_patchpilot_sends() -> None:
    pattern = TEMPLATE.resources["SsmCommandInvocationRule"]["Properties"]["EventPattern"]
    # custom documents appear by name in the status events: the stack's health-check document by its Ref
    assert pattern["detail"]["document-name"] == ["AWS-RunPatchBaseline", {"Ref": "HealthCheckDocument"}]


def test_template_command_invocation_rule_queues_exactly_the_final_statuses() -> None:
    # a progress event changes no count: the rule keeps it out of the queue (an SQS message saved per event)
    pattern = TEMPLATE.resources["SsmCommandInvocationRule"]["Properties"]["EventPattern"]
    assert set(pattern["detail"]["status"]) == TERMINAL_INVOCATION_STATUSES
    assert len(pattern["detail"]["status"]) == len(TERMINAL_INVOCATION_STATUSES)


def test_template_health_check_document_runs_one_step_per_platform() -> None:
    document = TEMPLATE.resources["HealthCheckDocument"]["Properties"]
    assert (document["DocumentType"], document["Content"]["schemaVersion"]) == ("Command", "2.2")
    steps = {step["name"]: step for step in document["Content"]["mainSteps"]}
    preconditions = {name: step["precondition"]["StringEquals"] for name, step in steps.items()}
    assert preconditions == {
        "LinuxHealthCheck": ["platformType", "Linux"],
        "WindowsHealthCheck": ["platformType", "Windows"],
        "NoMacOSHealthCheck": ["platformType", "MacOS"],
    }
    assert steps["LinuxHealthCheck"]["action"] == "aws:runShellScript"
    assert steps["WindowsHealthCheck"]["action"] == "aws:runPowerShellScript"
    # what the planner passes is what the document declares
    check = HealthCheck(linux_commands=["true"], windows_commands=["exit 0"], timeout_seconds=300)
    assert set(check.parameters()) == set(document["Content"]["parameters"])
    for logical_id in ("PlanStageFunction", "BisectSuspectsFunction"):
        variables = TEMPLATE.resources[logical_id]["Properties"]["Environment"]["Variables"]
        assert variables["HEALTH_CHECK_DOCUMENT"] == {"Ref": "HealthCheckDocument"}, logical_id
