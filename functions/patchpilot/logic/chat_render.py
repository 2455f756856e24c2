"""Render alerts for chat: Slack Block Kit (``text`` fallback + ``blocks``) and Teams Adaptive Cards (1.4, Workflows).

Severity drives the emoji/colour and the mention (``<!here>`` on Slack for critical alerts only). Every message links to
the execution in the Step Functions console and says what to do next as an exact ``patchpilot`` command. Approval
requests carry the short approval id: Slack buttons send it back, Teams shows the command (no unauthenticated link).
Limits (Slack Block Kit reference): 50 blocks per message, 3,000 characters per section text, 150 per header,
2,000 per section field, 10 fields per section, 75 per button label. Teams caps a message at about 28 KB.
"""

import json
import re
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from patchpilot.logic.commands import rollback_command
from patchpilot.models.alerts import Alert, AlertKind, Severity
from patchpilot.models.chat import ChatMessage, Platform, UnrenderableAlert

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELD_TEXT = 2000
MAX_FALLBACK_TEXT = 3000
MAX_DETAIL_SECTIONS = 8
MAX_TEAMS_DETAIL_TEXT = 1500  # a Teams message is capped at about 28 KB: 8 details x 1.5 KB leave room for the rest
MAX_DIGEST_LINES = 25
ADAPTIVE_CARD_VERSION = "1.4"
ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
KIND_TAG = "patchpilot:"
"""Slack header ``block_id`` / Adaptive Card title ``id`` prefix naming the alert kind (chat.jsonl reads it)."""
APPROVE_ACTION_ID = "patchpilot_approve"
REJECT_ACTION_ID = "patchpilot_reject"
RESUME_ACTION_ID = "patchpilot_resume"
_RESUMABLE_NAME = re.compile(r"^(cycle|manual|emergency)-\d{4}-\d{2}[-0-9a-z]*$")

EMOJI: dict[Severity, str] = {"info": ":large_green_circle:", "warning": ":warning:", "critical": ":rotating_light:"}
TEAMS_COLOUR: dict[Severity, str] = {"info": "Good", "warning": "Warning", "critical": "Attention"}
# Known evidence keys, shown first with a label; any other key of `details` is shown generically after them.
KNOWN_DETAILS: dict[str, str] = {
    "reasons": "Reasons",
    "alarms_in_alarm": "Alarms in ALARM",
    "unhealthy_sample": "Unhealthy instances (sample)",
    "patches": "Patches",
    "evidence": "Evidence",
    "compliance": "Compliance",
    "stages": "Stages",
    "error": "Error",
    "cause": "Cause",
    "expires_at": "Answer before",
    "queue": "Queue",
    "messages": "Messages waiting",
}
_HIDDEN_DETAILS = {"approve_command", "reject_command", "request_summary", "timeout_seconds", "instances", "snapshots"}
MAX_ROLLBACK_HINTS = 3


def console_url(execution_id: str | None) -> str | None:
    """The Step Functions console page of an execution ARN (None when the alert names no execution)."""
    if not execution_id or not execution_id.startswith("arn:"):
        return None
    parts = execution_id.split(":")
    if len(parts) < 7:
        return None
    region = parts[3]
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_id}"


def _unhealthy_ids(alert: Alert) -> list[str]:
    sample = alert.details.get("unhealthy_sample")
    ids = (
        [item.get("instance_id") if isinstance(item, dict) else item for item in sample or []]
        if isinstance(sample, list)
        else []
    )
    return [str(i) for i in ids if isinstance(i, str) and i.startswith("i-")]


def rollback_hints(alert: Alert) -> list[str]:
    """After the stage's retry, instances still unhealthy in a stage that took pre-patch snapshots: how to roll back."""
    attempt = alert.details.get("attempt")
    if alert.kind != "stage_failed" or not isinstance(alert.details.get("snapshots"), dict):
        return []
    if not isinstance(attempt, int) or attempt < 2:
        return []
    ids = _unhealthy_ids(alert)
    commands = [rollback_command(alert.run_id, instance_id) for instance_id in ids[:MAX_ROLLBACK_HINTS]]
    return [*commands, f"patchpilot rollback --run {alert.run_id} --plan"] if ids else []


def next_steps(alert: Alert) -> list[str]:
    """The exact commands on-call runs next for this alert."""
    run = f"--run {alert.run_id}"
    by_kind: dict[AlertKind, list[str]] = {
        "stage_failed": [f"patchpilot exclusions list {run}", "patchpilot status"],
        "patch_excluded": [f"patchpilot exclusions list {run}", f"patchpilot exclusions remove {run} <patch-id>"],
        "exclusion_inconclusive": [f"patchpilot exclusions list {run}", "patchpilot status"],
        "approval_timed_out": ["patchpilot status", "patchpilot start --stages <stage>  (to try the promotion again)"],
        "events_dead_lettered": ["patchpilot chat redrive  (chat messages)", "patchpilot status"],
    }
    if alert.kind == "rollout_failed":
        return [*_resume_commands(failed_execution_name(alert)), "patchpilot status"]
    if alert.kind == "approval_requested" and alert.approval_id:
        return [f"patchpilot approve {alert.approval_id}", f"patchpilot reject {alert.approval_id} --reason <why>"]
    return rollback_hints(alert) + by_kind.get(alert.kind, ["patchpilot status"])


def failed_execution_name(alert: Alert) -> str | None:
    """The execution a rollout_failed alert is about (the last part of its ARN), if it is a PatchPilot rollout's."""
    name = (alert.execution_id or "").rsplit(":", 1)[-1] if alert.execution_id else alert.run_id
    return name if _RESUMABLE_NAME.match(name) else None


def _resume_commands(execution_name: str | None) -> list[str]:
    match = re.match(r"^(cycle|manual)-(\d{4}-\d{2})", execution_name or "")
    if match is None:
        return []
    manual = " --manual" if match.group(1) == "manual" else ""
    return [f"patchpilot resume --cycle {match.group(2)}{manual}"]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(str(item) for item in value) or "none"
    return json.dumps(value, sort_keys=True, default=str)


def detail_lines(alert: Alert) -> list[tuple[str, str]]:
    """(label, text) of the evidence worth showing: known keys first, then every other key, empty values left out."""
    shown: list[tuple[str, str]] = []
    keys = [key for key in KNOWN_DETAILS if key in alert.details]
    keys += sorted(key for key in alert.details if key not in KNOWN_DETAILS and key not in _HIDDEN_DETAILS)
    for key in keys:
        value = alert.details[key]
        if value in (None, "", [], {}):
            continue
        shown.append((KNOWN_DETAILS.get(key, key.replace("_", " ").capitalize()), _value_text(value)))
    return shown


def digest_lines(alert: Alert) -> list[str]:
    """One line per instance of a per-stage digest (``details.instances``), at most MAX_DIGEST_LINES."""
    instances = alert.details.get("instances")
    if not isinstance(instances, list):
        return []
    lines = [_value_text(item) for item in instances[:MAX_DIGEST_LINES]]
    if len(instances) > MAX_DIGEST_LINES:
        lines.append(f"... and {len(instances) - MAX_DIGEST_LINES} more")
    return lines


def summary_line(alert: Alert, platform: Platform, channel: str) -> str:
    """The one-line summary of a message (what ``make demo`` prints as it arrives)."""
    return f"{platform:5} #{channel} [{alert.severity}] {alert.kind}: {alert.title}"


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [("Run", alert.run_id), ("Severity", alert.severity)]
    if alert.stage_name:
        facts.append(("Stage", alert.stage_name))
    if alert.approval_id:
        facts.append(("Approval id", alert.approval_id))
    facts.append(("When", alert.occurred_at.isoformat(timespec="seconds")))
    return facts


def _slack_buttons(alert: Alert, url: str | None) -> list[Block]:
    elements: list[ButtonElement] = []
    if alert.kind == "approval_requested" and alert.approval_id:
        elements.append(
            ButtonElement(
                text="Approve",
                action_id=APPROVE_ACTION_ID,
                value=alert.approval_id,
                style="primary",
                confirm=ConfirmObject(
                    title="Promote to production?", text=_clip(alert.summary, 300), confirm="Approve", deny="Cancel"
                ),
            )
        )
        elements.append(
            ButtonElement(text="Reject", action_id=REJECT_ACTION_ID, value=alert.approval_id, style="danger")
        )
    failed = failed_execution_name(alert) if alert.kind == "rollout_failed" else None
    if failed:
        elements.append(
            ButtonElement(
                text="Resume",
                action_id=RESUME_ACTION_ID,
                value=failed,
                style="primary",
                confirm=ConfirmObject(
                    title="Resume the rollout?",
                    text=_clip(f"Starts the next attempt of {failed}; stages that passed are not patched again.", 300),
                    confirm="Resume",
                    deny="Cancel",
                ),
            )
        )
    if url:
        elements.append(ButtonElement(text="Open execution", action_id="patchpilot_open_execution", url=url))
    return [ActionsBlock(elements=elements)] if elements else []


def render_slack(alert: Alert) -> dict[str, Any]:
    """The Slack incoming-webhook payload of an alert: ``text`` (fallback, mention included) and ``blocks``."""
    mention = "<!here> " if alert.severity == "critical" else ""
    url = console_url(alert.execution_id)
    blocks: list[Block] = [
        HeaderBlock(
            text=_clip(f"{EMOJI[alert.severity]} {alert.title}", MAX_HEADER_TEXT),
            block_id=f"{KIND_TAG}{alert.kind}:{alert.alert_id[:16]}",
        ),
        SectionBlock(
            text=MarkdownTextObject(text=_clip(f"{mention}{alert.summary}", MAX_SECTION_TEXT)),
            fields=[MarkdownTextObject(text=_clip(f"*{k}*\n{v}", MAX_FIELD_TEXT)) for k, v in _facts(alert)],
        ),
    ]
    for label, text in detail_lines(alert)[:MAX_DETAIL_SECTIONS]:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(f"*{label}*\n{text}", MAX_SECTION_TEXT))))
    digest = digest_lines(alert)
    if digest:
        body = "\n".join(f"• {line}" for line in digest)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(f"*Instances*\n{body}", MAX_SECTION_TEXT))))
    blocks.append(DividerBlock())
    blocks.extend(_slack_buttons(alert, url))
    steps = " · ".join(f"`{step}`" for step in next_steps(alert))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_clip(f"Next: {steps}", MAX_SECTION_TEXT))]))
    if len(blocks) > MAX_BLOCKS:
        raise UnrenderableAlert(f"alert {alert.kind} needs {len(blocks)} Slack blocks (limit {MAX_BLOCKS})")
    fallback = _clip(f"{mention}{EMOJI[alert.severity]} {alert.title}: {alert.summary}", MAX_FALLBACK_TEXT)
    return {"text": fallback, "blocks": [block.to_dict() for block in blocks]}


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def render_teams(alert: Alert) -> dict[str, Any]:
    """The Teams Workflows-webhook message of an alert: one Adaptive Card (version 1.4) attachment."""
    body: list[dict[str, Any]] = [
        _text_block(
            alert.title, id=f"{KIND_TAG}{alert.kind}", size="Large", weight="Bolder", color=TEAMS_COLOUR[alert.severity]
        ),
        _text_block(alert.summary),
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in _facts(alert)]},
    ]
    for label, text in detail_lines(alert)[:MAX_DETAIL_SECTIONS]:
        body.append(_text_block(f"**{label}**: {_clip(text, MAX_TEAMS_DETAIL_TEXT)}", spacing="Small"))
    digest = digest_lines(alert)
    if digest:
        body.append(_text_block("**Instances**\n\n" + "\n".join(f"- {line}" for line in digest)))
    if alert.kind == "approval_requested" and alert.approval_id:
        body.append(_text_block(f"Approval id: **{alert.approval_id}**", weight="Bolder", spacing="Medium"))
    body.append(_text_block("Next:", spacing="Medium", isSubtle=True))
    body.extend(_text_block(step, fontType="Monospace", spacing="None") for step in next_steps(alert))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    url = console_url(alert.execution_id)
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open execution", "url": url}]
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def render(alert: Alert, platform: Platform, channel: str) -> ChatMessage:
    """The message of an alert for one channel.

    Raises
    ------
    UnrenderableAlert
        The alert does not fit the platform's limits.
    """
    payload = render_slack(alert) if platform == "slack" else render_teams(alert)
    return ChatMessage(
        platform=platform,
        channel=channel,
        kind=alert.kind,
        alert_id=alert.alert_id,
        summary=summary_line(alert, platform, channel),
        payload=payload,
    )


def decided_update(alert_summary: str, approval_id: str, status: str, approver: str, note: str) -> dict[str, Any]:
    """The Slack ``response_url`` body that replaces an approval request with who decided (buttons removed)."""
    emoji = ":white_check_mark:" if status == "approved" else ":no_entry:"
    text = f"{emoji} Approval {approval_id} {status} by {approver}. {note}".strip()
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=_clip(alert_summary, MAX_SECTION_TEXT))),
        ContextBlock(elements=[MarkdownTextObject(text=_clip(text, MAX_SECTION_TEXT))]),
    ]
    return {"replace_original": True, "text": text, "blocks": [block.to_dict() for block in blocks]}


def resumed_update(failed: str, attempt: str, status: str | None, started: bool, actor: str) -> dict[str, Any]:
    """The Slack ``response_url`` body that replaces a rollout_failed alert with who resumed it (buttons removed)."""
    if started:
        text = f":arrows_counterclockwise: Rollout {failed} resumed by {actor}: started execution {attempt}."
    else:
        state = f" ({status})" if status else ""
        text = f":information_source: {actor} asked to resume {failed}: already resumed, execution {attempt}{state}."
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=_clip(f"Rollout {failed} stopped.", MAX_SECTION_TEXT))),
        ContextBlock(elements=[MarkdownTextObject(text=_clip(text, MAX_SECTION_TEXT))]),
    ]
    return {"replace_original": True, "text": text, "blocks": [block.to_dict() for block in blocks]}
