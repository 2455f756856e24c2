"""Notifier logic on fakes: parse, retry with backoff and Retry-After, post once per channel, digest, keep the bad."""

import json

import pytest

from patchpilot.logic.chat_delivery import (
    MAX_ATTEMPTS,
    deliver,
    notify_messages,
    parse_alert,
    post_with_retries,
)
from patchpilot.models.chat import ChatDeliveryFailed, PostResult, UnrenderableAlert
from tests.fakes import (
    InMemoryChatLedger,
    RecordingRejectedInputs,
    ScriptedPoster,
    alert,
    chat_secret,
)

SLACK_PATCHING = "https://hooks.slack.com/services/T/B/p"
SLACK_ONCALL = "https://hooks.slack.com/services/T/B/o"
TEAMS_PATCHING = "https://prod.logic.azure.com/wf?sig=t"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _deliver(poster: ScriptedPoster, ledger: InMemoryChatLedger, kind: str = "stage_failed", **changes: object):  # type: ignore[no-untyped-def]
    return deliver(alert(kind, **changes), chat_secret(), poster, ledger, Sleeps(), lambda: 60.0)  # type: ignore[arg-type]


def test_parse_alert_accepts_the_alert_json_the_asl_and_handlers_publish() -> None:
    published = alert("stage_failed").model_dump_json()
    assert parse_alert(published) == alert("stage_failed")


def test_parse_alert_turns_a_dead_letter_alarm_into_an_events_dead_lettered_alert() -> None:
    alarm = {
        "AlarmName": "patchpilot-chat-dead-letters",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [3.0] was greater than the threshold (0.0).",
        "StateChangeTime": "2026-12-08T20:05:00.000+0000",
        "Trigger": {"Dimensions": [{"name": "QueueName", "value": "patchpilot-ChatDeadLetterQueue-1A2B"}]},
    }
    parsed = parse_alert(json.dumps(alarm))
    assert (parsed.kind, parsed.severity) == ("events_dead_lettered", "critical")
    assert parsed.details["queue"] == "patchpilot-ChatDeadLetterQueue-1A2B"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Hello from SNS!", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"kind": "meteor_strike", "severity": "info"}), "kind: Input should be"),
        (json.dumps({**json.loads(alert().model_dump_json()), "task_token": "x"}), "task_token: Extra inputs"),
    ],
)
def test_parse_alert_rejects_what_it_cannot_render_with_a_clear_error(message: str, error: str) -> None:
    with pytest.raises(UnrenderableAlert, match=error):
        parse_alert(message)


def test_post_with_retries_backs_off_exponentially_on_5xx_and_timeouts_then_succeeds() -> None:
    poster = ScriptedPoster([PostResult(status=500), PostResult(status=0, error="timed out")])
    sleeps = Sleeps()
    result = post_with_retries(poster, SLACK_PATCHING, {"text": "x"}, sleeps, budget_seconds=30)
    assert result.delivered
    assert sleeps.waits == [0.5, 1.0]
    assert len(poster.posts) == 3


def test_post_with_retries_honours_retry_after_and_never_waits_less() -> None:
    poster = ScriptedPoster([PostResult(status=429, retry_after_seconds=3)])
    sleeps = Sleeps()
    assert post_with_retries(poster, SLACK_PATCHING, {}, sleeps, budget_seconds=30).delivered
    assert sleeps.waits == [3]


def test_post_with_retries_gives_up_at_once_when_retry_after_is_too_long_or_does_not_fit() -> None:
    for result, budget in ((PostResult(status=429, retry_after_seconds=600), 30.0), (PostResult(status=503), 0.1)):
        poster, sleeps = ScriptedPoster([result]), Sleeps()
        assert post_with_retries(poster, SLACK_PATCHING, {}, sleeps, budget_seconds=budget) == result
        assert (len(poster.posts), sleeps.waits) == (1, [])


def test_post_with_retries_never_retries_a_client_error() -> None:
    poster, sleeps = ScriptedPoster([PostResult(status=400, error="invalid_blocks")]), Sleeps()
    assert post_with_retries(poster, SLACK_PATCHING, {}, sleeps, budget_seconds=30).status == 400
    assert len(poster.posts) == 1


def test_post_with_retries_stops_after_the_attempt_limit() -> None:
    poster = ScriptedPoster([PostResult(status=502)] * 10)
    assert post_with_retries(poster, SLACK_PATCHING, {}, Sleeps(), budget_seconds=30).status == 502
    assert len(poster.posts) == MAX_ATTEMPTS


def test_deliver_posts_to_every_channel_that_wants_the_severity() -> None:
    poster, ledger = ScriptedPoster(), InMemoryChatLedger()
    critical = _deliver(poster, ledger, "stage_failed")
    assert sorted(poster.urls()) == sorted([SLACK_PATCHING, SLACK_ONCALL, TEAMS_PATCHING])
    assert sorted(critical.posted) == ["slack/oncall", "slack/patching", "teams/patching"]
    poster.posts.clear()
    _deliver(poster, ledger, "cycle_finished")
    assert sorted(poster.urls()) == sorted([SLACK_PATCHING, TEAMS_PATCHING])


def test_deliver_the_same_alert_twice_posts_once() -> None:
    poster, ledger = ScriptedPoster(), InMemoryChatLedger()
    first = _deliver(poster, ledger)
    second = _deliver(poster, ledger)
    assert len(poster.posts) == 3
    assert (len(first.posted), second.posted, sorted(second.already_posted)) == (3, [], sorted(first.posted))


def test_deliver_failure_raises_and_the_retry_posts_only_the_channels_that_missed_it() -> None:
    poster, ledger = ScriptedPoster([PostResult(status=503)] * MAX_ATTEMPTS), InMemoryChatLedger()
    with pytest.raises(ChatDeliveryFailed, match=r"not delivered to slack/patching \(HTTP 503"):
        _deliver(poster, ledger)
    assert len(poster.posts) == MAX_ATTEMPTS + 2
    poster.posts.clear()
    retried = _deliver(poster, ledger)
    assert (poster.urls(), retried.posted) == ([SLACK_PATCHING], ["slack/patching"])


def test_deliver_a_concurrent_delivery_of_the_same_alert_is_not_posted_twice() -> None:
    poster, ledger = ScriptedPoster(), InMemoryChatLedger()
    ledger.claim(alert().alert_id, "slack/patching")  # another invocation is posting it right now
    with pytest.raises(ChatDeliveryFailed, match="another delivery of the same alert is posting it"):
        _deliver(poster, ledger)
    assert SLACK_PATCHING not in poster.urls()


def test_deliver_per_instance_alerts_become_one_digest_in_the_stage_result() -> None:
    poster, ledger = ScriptedPoster(), InMemoryChatLedger()
    for n in range(3):
        noise = _deliver(
            poster,
            ledger,
            "instance_unhealthy",
            title=f"i-000{n} unhealthy",
            summary="install Failed",
            severity="warning",
        )
        assert noise.digested
    assert poster.posts == []
    _deliver(poster, ledger, "stage_failed")
    slack = json.dumps(poster.posts[0][1])
    assert "i-0000 unhealthy: install Failed" in slack
    assert "i-0002 unhealthy: install Failed" in slack
    assert len(poster.posts) == 3


def test_notify_messages_keeps_an_unrenderable_alert_and_still_delivers_the_others() -> None:
    poster, ledger, rejected = ScriptedPoster(), InMemoryChatLedger(), RecordingRejectedInputs()
    record = {"Sns": {"MessageId": "m-1", "Message": "{oops"}}
    report = notify_messages(
        [("m-1", "{oops", record), ("m-2", alert("cycle_finished").model_dump_json(), {})],
        chat_secret(),
        poster,
        ledger,
        rejected,
        Sleeps(),
        lambda: 60.0,
    )
    assert (report.rejected, report.posted, report.failures) == (1, 2, [])
    [(kept, reason)] = rejected.kept
    assert kept == record
    assert reason.startswith("the message is not JSON")
    report.raise_failures()


def test_notify_messages_reports_failures_for_the_handler_to_raise_after_every_message() -> None:
    poster = ScriptedPoster([PostResult(status=500)] * (MAX_ATTEMPTS * 2))
    report = notify_messages(
        [("m-1", alert("cycle_finished").model_dump_json(), {})],
        chat_secret(),
        poster,
        InMemoryChatLedger(),
        RecordingRejectedInputs(),
        Sleeps(),
        lambda: 60.0,
    )
    with pytest.raises(ChatDeliveryFailed, match=r"slack/patching .*teams/patching"):
        report.raise_failures()
