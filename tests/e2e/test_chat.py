"""Chat on the local runtime: a signed Slack click resumes a waiting execution; an outage loses no message."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from patchpilot_cli.main import app
from patchpilot_sim.chat import LOCAL_SIGNING_SECRET
from patchpilot_sim.chat_sink import ChatSink
from patchpilot_sim.runtime import LocalRuntime
from patchpilot_sim.simulate import approval_button
from patchpilot_sim.stack_standin import register_stack_outputs
from tests.runtime_helpers import REAL_TIMEOUT, launch_fleet

pytestmark = pytest.mark.runtime
ALL = ("info", "warning", "critical")


@pytest.fixture
def chat_runtime() -> Iterator[tuple[LocalRuntime, ChatSink]]:
    with ChatSink(max_lifetime_seconds=600) as sink, LocalRuntime(seed=21) as runtime:
        yield runtime, sink


def _wait_for(runtime: LocalRuntime, condition: Any, what: str) -> Any:
    """Run the simulation until `condition()` gives a value (checked whenever nothing is running)."""
    found: list[Any] = []

    def check() -> bool:
        value = condition()
        if value:
            found.append(value)
        return bool(value)

    assert runtime.run_until(check, max_simulated_seconds=45 * 24 * 3600), f"timed out waiting for {what}"
    return found[-1]


def _status(runtime: LocalRuntime, arn: str) -> str:
    return str(runtime.admin.client("stepfunctions").describe_execution(executionArn=arn)["status"])


def test_chat_signed_slack_click_resumes_the_waiting_execution_and_nothing_else_does(
    chat_runtime: tuple[LocalRuntime, ChatSink],
) -> None:
    runtime, sink = chat_runtime
    runtime.chat.configure(sink, channels=(("slack", "patching", ALL),))
    launch_fleet(runtime, instances=10, groups={"staging", "prod-1"})
    started = runtime.lambdas.invoke(
        "StartRolloutFunction",
        {
            "mode": "manual",
            "cycle": "2026-12",
            "stages": ["staging", "prod-1"],
            "bake_seconds": {"staging": 1, "prod-1": 1},
            "approval_timeout_seconds": 60,
        },
    )
    arn = started.payload["execution_arn"]
    approval_id = _wait_for(
        runtime,
        lambda: next((i for m in sink.messages if (i := approval_button(m))), None),
        "the approval request in Slack",
    )
    chat = runtime.chat
    forged = chat.post_slack_interaction(approval_id, "approve", "U0SIMONCALL", "oncall-sim", signing_secret="guess")
    stale = chat.post_slack_interaction(
        approval_id, "approve", "U0SIMONCALL", "oncall-sim", timestamp=int(runtime.clock.epoch_seconds()) - 301
    )
    stranger = chat.post_slack_interaction(approval_id, "approve", "U0MALLORY", "mallory")
    malformed = chat.invoke_function_url(
        "SlackInteractionFunction", "/slack/interactions", "payload=%7B", _signed_headers(runtime, "payload=%7B")
    )
    assert [forged["statusCode"], stale["statusCode"], stranger["statusCode"], malformed["statusCode"]] == [
        401,
        401,
        403,
        400,
    ]
    assert _status(runtime, arn) == "RUNNING"  # still waiting: nothing above changed the execution
    pending = runtime.admin.client("dynamodb").get_item(
        TableName=runtime.resources.table_names["RunsTable"],
        Key={"pk": {"S": f"APPROVAL#{approval_id}"}, "sk": {"S": "APPROVAL"}},
    )["Item"]
    assert pending["status"]["S"] == "pending"
    approved = chat.post_slack_interaction(approval_id, "approve", "U0SIMONCALL", "oncall-sim")
    assert approved["statusCode"] == 200
    assert json.loads(approved["body"])["status"] == "approved"
    again = chat.post_slack_interaction(approval_id, "reject", "U0ONCALL2", "U0ONCALL2")
    assert json.loads(again["body"])["recorded_earlier"] is True
    assert runtime.wait_for_execution(arn, timeout=3 * REAL_TIMEOUT)["status"] == "SUCCEEDED"
    runtime.settle(timeout=30)
    updates = [m for m in sink.messages if m["channel"] == "response_url"]
    assert [u["payload"]["text"].split(" by ")[0] for u in updates] == [
        f":white_check_mark: Approval {approval_id} approved"
    ] * 2
    decided = [m for m in sink.messages if m["kind"] == "approval_decided"]
    assert len(decided) == 1


def _signed_headers(runtime: LocalRuntime, body: str) -> dict[str, str]:
    from patchpilot_sim.chat import sign_slack_request

    stamp = str(int(runtime.clock.epoch_seconds()))  # Slack's clock: the simulated world's
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": sign_slack_request(LOCAL_SIGNING_SECRET, stamp, body),
    }


def _publish(runtime: LocalRuntime, message: str) -> None:
    runtime.admin.client("sns").publish(TopicArn=runtime.resources.topic_arns["AlertTopic"], Message=message)


def _alert(kind: str, severity: str = "info") -> str:
    return json.dumps(
        {
            "kind": kind,
            "severity": severity,
            "run_id": "2026-12",
            "title": f"{kind} title",
            "summary": f"{kind} summary",
            "occurred_at": "2026-12-08T20:00:00+00:00",
        }
    )


def test_chat_outage_retries_then_dead_letters_then_redrive_delivers_each_alert_once(
    chat_runtime: tuple[LocalRuntime, ChatSink],
) -> None:
    runtime, sink = chat_runtime
    runtime.chat.configure(sink, channels=(("slack", "patching", ALL), ("teams", "patching", ALL)))
    sink.fail_next(["503"] * 3 + ["429"] * 3 + ["503"] * 12)  # 3 invocations x 2 channels x 3 attempts
    _publish(runtime, _alert("cycle_started"))
    _wait_for(runtime, lambda: runtime.chat.dead_letter_count() == 1, "the alert in the chat dead-letter queue")
    assert sink.messages == []
    _publish(runtime, _alert("cycle_finished"))  # the outage is over: posted at once
    _publish(runtime, "{not an alert")
    runtime.settle(timeout=30)
    assert sorted((m["platform"], m["kind"]) for m in sink.messages) == [
        ("slack", "cycle_finished"),
        ("teams", "cycle_finished"),
    ]
    assert runtime.chat.dead_letter_count() == 2  # the undelivered alert and the unrenderable message, kept
    register_stack_outputs(runtime, "patchpilot-chat-test")
    result = CliRunner().invoke(app, ["chat", "redrive", "--stack-name", "patchpilot-chat-test"])
    assert result.exit_code == 0, result.output
    assert "redelivered 1 message(s)" in result.output
    assert "cannot be rendered (kept): the message is not JSON" in result.output
    assert sorted((m["platform"], m["kind"]) for m in sink.messages) == [
        ("slack", "cycle_finished"),
        ("slack", "cycle_started"),
        ("teams", "cycle_finished"),
        ("teams", "cycle_started"),
    ]
    _publish(runtime, _alert("cycle_started"))  # the same alert again (a retried publish): posted once only
    runtime.settle(timeout=30)
    assert len(sink.messages) == 4
    alarm = {
        "AlarmName": "patchpilot-local-chat-dead-letters",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [2.0] was greater than the threshold (0.0).",
        "StateChangeTime": "2026-12-08T20:10:00.000+0000",
        "Trigger": {"Dimensions": [{"name": "QueueName", "value": "patchpilot-local-ChatDeadLetterQueue"}]},
    }
    runtime.admin.client("sns").publish(
        TopicArn=runtime.resources.topic_arns["DeadLetterAlarmTopic"], Message=json.dumps(alarm)
    )
    runtime.settle(timeout=30)
    assert sorted(m["platform"] for m in sink.messages if m["kind"] == "events_dead_lettered") == ["slack", "teams"], [
        (f, r.error_type, r.payload) for f, r in runtime.chat.delivery.results[-2:]
    ]


def _resume_button(message: dict[str, Any]) -> str | None:
    if message.get("platform") != "slack" or message.get("kind") != "rollout_failed":
        return None
    for block in message["payload"].get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == "patchpilot_resume":
                return str(element["value"])
    return None


def test_chat_resume_button_of_a_failed_rollout_starts_one_next_attempt_that_succeeds(
    chat_runtime: tuple[LocalRuntime, ChatSink],
) -> None:
    from patchpilot_sim.faults import NO_FAULTS, FaultInjector
    from tests.runtime_helpers import start

    runtime, sink = chat_runtime
    runtime.chat.configure(sink, channels=(("slack", "patching", ALL),))
    launch_fleet(runtime, instances=10, groups={"dev", "staging"})
    injector = FaultInjector(NO_FAULTS, seed=1)
    injector.install(runtime)
    denied = injector.refuse(
        "ssm",
        "SendCommand",
        "AccessDeniedException",
        lambda params: any("staging" in t.get("Values", []) for t in params.get("Targets") or []),  # type: ignore[union-attr]
    )
    # Given a cycle whose staging stage failed, and its rollout_failed alert in Slack with a Resume button
    failed = start(runtime, stages=["dev", "staging"])
    assert failed["status"] == "FAILED"
    execution = _wait_for(runtime, lambda: next((v for m in sink.messages if (v := _resume_button(m))), None), "Resume")
    assert execution == "manual-2026-12"
    injector.lift(denied)
    chat = runtime.chat
    # A user who is not an approver changes nothing
    stranger = chat.post_slack_interaction(execution, "resume", "U0MALLORY", "mallory")
    assert stranger["statusCode"] == 403
    # When on-call clicks Resume, and clicks it again
    first = json.loads(chat.post_slack_interaction(execution, "resume", "U0SIMONCALL", "oncall-sim")["body"])
    second = json.loads(chat.post_slack_interaction(execution, "resume", "U0SIMONCALL", "oncall-sim")["body"])
    # Then one next attempt runs, without the stage that passed, and succeeds
    assert (first["started"], first["execution_name"], first["skipped_stages"]) == (True, "manual-2026-12-r2", ["dev"])
    assert (second["started"], second["execution_name"]) == (False, "manual-2026-12-r2")
    assert runtime.wait_for_execution(first["execution_arn"], timeout=REAL_TIMEOUT)["status"] == "SUCCEEDED"
    runtime.settle(timeout=30)
    updates = [m["payload"]["text"] for m in sink.messages if m["channel"] == "response_url"]
    assert any("resumed by slack:oncall-sim (U0SIMONCALL): started execution manual-2026-12-r2" in u for u in updates)
    assert any("already resumed, execution manual-2026-12-r2" in u for u in updates)
