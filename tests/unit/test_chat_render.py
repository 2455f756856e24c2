"""Slack Block Kit and Teams Adaptive Card rendering of every alert kind: structure, limits, mentions, next steps."""

import json
from typing import Any, get_args

import pytest

from patchpilot.logic.chat_render import (
    MAX_BLOCKS,
    console_url,
    decided_update,
    next_steps,
    render,
    render_slack,
    render_teams,
)
from patchpilot.models.alerts import AlertKind
from tests.fakes import EXECUTION, alert

KINDS: tuple[AlertKind, ...] = get_args(AlertKind)
SLACK_SECTION_TEXT = 3000
SLACK_HEADER_TEXT = 150
SLACK_FIELD_TEXT = 2000
ALLOWED_CARD_ELEMENTS = {"TextBlock", "FactSet"}


def _slack_limits_problems(payload: dict[str, Any]) -> list[str]:
    problems = []
    blocks = payload["blocks"]
    if not payload["text"] or len(blocks) > MAX_BLOCKS:
        problems.append(f"text {bool(payload['text'])}, {len(blocks)} blocks")
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        limit = SLACK_HEADER_TEXT if block["type"] == "header" else SLACK_SECTION_TEXT
        if len(text) > limit:
            problems.append(f"{block['type']} text of {len(text)} characters")
        fields = block.get("fields", [])
        if len(fields) > 10 or any(len(field["text"]) > SLACK_FIELD_TEXT for field in fields):
            problems.append("section fields over the limits")
    return problems


def _card(payload: dict[str, Any]) -> dict[str, Any]:
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return dict(attachment["content"])


@pytest.mark.parametrize("kind", KINDS)
def test_render_slack_every_kind_fits_block_kit_limits_and_says_what_next(kind: AlertKind) -> None:
    payload = render_slack(alert(kind))
    assert _slack_limits_problems(payload) == []
    header = payload["blocks"][0]
    assert header["type"] == "header"
    assert header["block_id"].startswith(f"patchpilot:{kind}:")
    context = payload["blocks"][-1]
    assert context["type"] == "context"
    assert "Next: `patchpilot " in context["elements"][0]["text"]
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {"url": console_url(EXECUTION)}.items() <= buttons[-1].items()


@pytest.mark.parametrize("kind", KINDS)
def test_render_teams_every_kind_is_an_adaptive_card_1_4_in_a_workflows_message(kind: AlertKind) -> None:
    payload = render_teams(alert(kind))
    assert payload["type"] == "message"
    card = _card(payload)
    assert card["type"] == "AdaptiveCard"
    assert tuple(int(part) for part in card["version"].split(".")) >= (1, 4)
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert {element["type"] for element in card["body"]} <= ALLOWED_CARD_ELEMENTS
    assert card["body"][0]["id"] == f"patchpilot:{kind}"
    assert all(
        isinstance(f["title"], str) and isinstance(f["value"], str) for e in card["body"] for f in e.get("facts", [])
    )
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open execution", "url": console_url(EXECUTION)}]
    assert not {"@type", "themeColor", "sections"} & (set(payload) | set(card))  # never the retired MessageCard
    assert any(element.get("fontType") == "Monospace" and "patchpilot " in element["text"] for element in card["body"])


@pytest.mark.parametrize("kind", ["stage_failed", "patch_excluded", "cycle_finished"])
def test_render_huge_evidence_is_clipped_to_the_limits_never_refused(kind: AlertKind) -> None:
    details: dict[str, Any] = {f"evidence_{n}": "x" * 10_000 for n in range(40)}
    details["instances"] = [f"i-{n:017x}: install Failed, unhealthy after reboot" for n in range(500)]
    huge = alert(kind, details=details, summary="y" * 5000)
    slack = render_slack(huge)
    assert _slack_limits_problems(slack) == []
    assert len(json.dumps(render_teams(huge))) < 28_000  # Teams caps a message at about 28 KB
    assert "... and 475 more" in json.dumps(slack)


def test_render_mentions_the_channel_only_for_critical_alerts() -> None:
    critical = render_slack(alert("stage_failed", severity="critical"))
    assert critical["text"].startswith("<!here> ")
    assert critical["blocks"][1]["text"]["text"].startswith("<!here> ")
    for severity in ("info", "warning"):
        calm = json.dumps(render_slack(alert("stage_failed", severity=severity)))
        assert "<!here>" not in calm
        assert "<!channel>" not in calm


def test_render_severity_drives_the_emoji_and_the_card_colour() -> None:
    assert render_slack(alert("cycle_finished", severity="info"))["blocks"][0]["text"]["text"].startswith(
        ":large_green_circle:"
    )
    assert render_slack(alert("stage_failed"))["blocks"][0]["text"]["text"].startswith(":rotating_light:")
    assert _card(render_teams(alert("stage_failed")))["body"][0]["color"] == "Attention"
    assert _card(render_teams(alert("approval_requested")))["body"][0]["color"] == "Warning"


def test_render_approval_request_slack_buttons_carry_the_approval_id_never_a_token() -> None:
    payload = render_slack(alert("approval_requested", details={"task_token": "AAAA-secret-token"}))
    [actions] = [b for b in payload["blocks"] if b["type"] == "actions"]
    approve, reject, _ = actions["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == ("patchpilot_approve", "k7m2x9qa", "primary")
    assert (reject["action_id"], reject["value"], reject["style"]) == ("patchpilot_reject", "k7m2x9qa", "danger")
    assert approve["confirm"]["confirm"]["text"] == "Approve"


def test_render_approval_request_teams_shows_the_id_and_the_command_without_a_callback_action() -> None:
    card = _card(render_teams(alert("approval_requested")))
    texts = [element.get("text", "") for element in card["body"]]
    assert "Approval id: **k7m2x9qa**" in texts
    assert "patchpilot approve k7m2x9qa" in texts
    assert [action["type"] for action in card["actions"]] == ["Action.OpenUrl"]


def test_render_details_known_keys_first_and_any_other_key_generically() -> None:
    compliance = {"compliant": 38, "non_compliant": 2, "pending_reboot": 1}
    shown = render_slack(alert("cycle_finished", details={"zeta_note": "kept", "compliance": compliance}))
    sections = [b["text"]["text"] for b in shown["blocks"] if b["type"] == "section"][1:]
    assert sections[0].startswith("*Compliance*\n")
    assert '"non_compliant": 2' in sections[0]
    assert sections[1] == "*Zeta note*\nkept"


def test_render_next_steps_name_the_exact_commands() -> None:
    assert next_steps(alert("approval_requested")) == [
        "patchpilot approve k7m2x9qa",
        "patchpilot reject k7m2x9qa --reason <why>",
    ]
    assert next_steps(alert("patch_excluded"))[0] == "patchpilot exclusions list --run 2026-12"
    assert next_steps(alert("events_dead_lettered"))[0].startswith("patchpilot chat redrive")


def test_render_console_url_links_the_execution_in_its_region() -> None:
    url = console_url("arn:aws:states:eu-west-1:123456789012:execution:sm:run")
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/"
        "arn:aws:states:eu-west-1:123456789012:execution:sm:run"
    )
    assert console_url(None) is None
    assert console_url("not-an-arn") is None


def test_render_message_carries_platform_channel_kind_alert_id_and_a_one_line_summary() -> None:
    message = render(alert("stage_failed"), "teams", "patching")
    assert (message.platform, message.channel, message.kind) == ("teams", "patching", "stage_failed")
    assert message.alert_id == alert("stage_failed").alert_id
    assert "\n" not in message.summary
    assert "stage_failed" in message.summary


def test_render_decided_update_replaces_the_message_and_names_who_decided() -> None:
    update = decided_update("Promote run 2026-12 to prod-1", "k7m2x9qa", "approved", "slack:ana (U1)", "")
    assert update["replace_original"] is True
    assert "approved by slack:ana (U1)" in update["text"]
    assert all(block["type"] != "actions" for block in update["blocks"])


def test_render_stage_failed_after_the_retry_hints_the_exact_rollback_commands() -> None:
    details = {
        "attempt": 2,
        "snapshots": {"retention_days": 14},
        "unhealthy_sample": [{"instance_id": "i-0123456789abcdef0", "platform": "AMAZON_LINUX_2023"}],
    }
    steps = next_steps(alert("stage_failed", details=details))
    assert steps[:2] == [
        "patchpilot rollback --run 2026-12 --instance i-0123456789abcdef0",
        "patchpilot rollback --run 2026-12 --plan",
    ]
    first_attempt = next_steps(alert("stage_failed", details={**details, "attempt": 1}))
    no_snapshots = next_steps(alert("stage_failed", details={**details, "snapshots": None}))
    assert not any("rollback" in step for step in first_attempt + no_snapshots)
    slack = json.dumps(render(alert("stage_failed", details=details), "slack", "#oncall").payload)
    assert "patchpilot rollback --run 2026-12 --instance i-0123456789abcdef0" in slack
