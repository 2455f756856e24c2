"""Approve, reject or resume from Slack: verify the request, authorise the user, act once, update the message in place.

Slack signs every interaction request: ``v0=`` + HMAC-SHA256(signing secret, ``v0:<timestamp>:<raw body>``) in
``X-Slack-Signature``, the timestamp in ``X-Slack-Request-Timestamp``; requests older than 5 minutes are refused
(https://api.slack.com/authentication/verifying-requests-from-slack). slack_sdk's SignatureVerifier checks both
(``hmac.compare_digest``). A signature is accepted once: a replayed request is refused even inside the window.

The Resume button of a rollout_failed alert carries the failed attempt's execution name; an approver's click starts
the run's next attempt exactly as ``patchpilot resume`` does (logic.cycle), and only while that attempt is the run's
latest: a second click, or a click on an older alert, starts nothing and says which attempt is already under way.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from slack_sdk.signature import Clock, SignatureVerifier

from patchpilot.integrations.ports import (
    AlertPublisher,
    ApprovalStore,
    ChatPoster,
    ExecutionCallbacks,
    InteractionGuard,
    RolloutStarter,
    RunLedger,
)
from patchpilot.logic.approval import decide_approval
from patchpilot.logic.chat_render import (
    APPROVE_ACTION_ID,
    REJECT_ACTION_ID,
    RESUME_ACTION_ID,
    decided_update,
    resumed_update,
)
from patchpilot.logic.cycle import resume_failed_attempt, run_of_execution
from patchpilot.models.approval import ApprovalDecided, ApprovalId, DecideApprovalRequest
from patchpilot.models.chat import InteractionRejected
from patchpilot.models.cycle import RolloutStarted
from patchpilot.models.exceptions import ApprovalExpired, ApprovalNotFound, NothingToResume
from patchpilot.models.rollout import StageCatalog

SIGNATURE_WINDOW_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
_APPROVAL_ID = TypeAdapter(ApprovalId)


class SlackUser(BaseModel):
    """Who clicked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=64)
    username: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=128)


class SlackAction(BaseModel):
    """Which button, carrying which value (the approval id, or the failed execution's name for Resume)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action_id: str
    value: str | None = None


class BlockActions(BaseModel):
    """The part of a Slack ``block_actions`` payload PatchPilot reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    user: SlackUser
    actions: list[SlackAction] = Field(min_length=1)
    response_url: str | None = None


@dataclass(frozen=True)
class InteractionPorts:
    """What answering an interaction needs: approvals, the execution, alerts, replay memory, posts, a starter.

    The rollout starter and the run's passed stages serve Resume.
    """

    store: ApprovalStore
    callbacks: ExecutionCallbacks
    publisher: AlertPublisher
    guard: InteractionGuard
    poster: ChatPoster
    starter: RolloutStarter
    ledger: RunLedger


@dataclass(frozen=True)
class InteractionSettings:
    """The signing secret, who may approve, which stages are production, where response_url may point."""

    signing_secret: str
    catalog: StageCatalog
    response_url_prefix: str


class _FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> float:
        return self._now.timestamp()


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def verify_request(body: str, headers: dict[str, str], secret: str, guard: InteractionGuard, now: datetime) -> None:
    """Refuse (401) an unsigned, badly signed, stale or replayed request.

    Raises
    ------
    InteractionRejected
        status 401, with the reason.
    """
    timestamp = _header(headers, "X-Slack-Request-Timestamp")
    signature = _header(headers, "X-Slack-Signature")
    if not timestamp or not signature:
        raise InteractionRejected(401, "the request is not signed")
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        raise InteractionRejected(401, "the request timestamp is outside the 5-minute window")
    if not SignatureVerifier(secret, clock=_FixedClock(now)).is_valid(body, timestamp, signature):
        raise InteractionRejected(401, "the request signature does not match")
    if not guard.first_use(signature, now + timedelta(seconds=2 * SIGNATURE_WINDOW_SECONDS)):
        raise InteractionRejected(401, "the request was already used (replay)")


def parse_actions(body: str) -> tuple[BlockActions, str, str]:
    """(payload, decision, target) of a button click; 400 for anything else.

    The target is the approval id of Approve/Reject, the failed execution's name of Resume.
    """
    if len(body.encode()) > MAX_BODY_BYTES:
        raise InteractionRejected(400, "the request body is too large")
    try:
        raw = parse_qs(body, strict_parsing=True).get("payload", [""])[0]
        payload = BlockActions.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as error:
        raise InteractionRejected(400, f"the body is not a Slack interaction payload: {type(error).__name__}") from None
    if payload.type != "block_actions":
        raise InteractionRejected(400, f"unsupported interaction type {payload.type!r}")
    action = payload.actions[0]
    decisions = {APPROVE_ACTION_ID: "approve", REJECT_ACTION_ID: "reject", RESUME_ACTION_ID: "resume"}
    if action.action_id not in decisions:
        raise InteractionRejected(400, f"unsupported action {action.action_id!r}")
    if decisions[action.action_id] == "resume":
        try:
            run_of_execution(action.value or "")
        except ValueError:
            raise InteractionRejected(400, "the button does not carry a rollout execution name") from None
        return payload, "resume", str(action.value)
    try:
        approval_id = _APPROVAL_ID.validate_python(action.value)
    except ValidationError:
        raise InteractionRejected(400, "the button does not carry an approval id") from None
    return payload, decisions[action.action_id], approval_id


def _approver_names(user: SlackUser, settings: InteractionSettings) -> set[str]:
    names = {name for name in (user.id, user.username, user.name) if name}
    if not names & set(settings.catalog.approvers):
        raise InteractionRejected(403, f"user {user.id} is not on the policy's approvers list")
    return names


def _actor(user: SlackUser) -> str:
    return f"slack:{user.username or user.name or user.id} ({user.id})"


def authorise(user: SlackUser, approval_id: str, settings: InteractionSettings, store: ApprovalStore) -> str:
    """The approver name to record, if the user may decide this approval; 403 (or 404) otherwise."""
    names = _approver_names(user, settings)
    record = store.get(approval_id)
    if record is None:
        raise InteractionRejected(404, f"no approval has the id {approval_id}")
    stage = settings.catalog.by_name().get(record.stage_name)
    production = stage is None or stage.role == "production"
    if production and record.requested_by and record.requested_by in names:
        raise InteractionRejected(403, f"user {user.id} requested run {record.run_id}: someone else must approve it")
    return _actor(user)


def _update_message(payload: BlockActions, decided: ApprovalDecided, ports: InteractionPorts, prefix: str) -> bool:
    if not payload.response_url or not payload.response_url.startswith(prefix):
        return False
    note = "(it had already been decided)" if decided.recorded_earlier else ""
    summary = f"Promote run {decided.run_id} to {decided.stage_name}"
    body = decided_update(summary, decided.approval_id, decided.status, decided.approver, note)
    return ports.poster.post(payload.response_url, body).delivered


def handle_interaction(
    body: str, headers: dict[str, str], settings: InteractionSettings, ports: InteractionPorts, now: datetime
) -> dict[str, Any]:
    """Answer one Slack interaction request (a click on Approve, Reject or Resume).

    Parameters
    ----------
    body : str
        The raw request body (``application/x-www-form-urlencoded``, ``payload=<json>``), exactly as signed.
    headers : dict
        The request headers (the Slack signature and timestamp).
    settings, ports
        The signing secret and policy; the approvals, execution, alert, replay and HTTP ports.
    now : datetime
        The current time (timezone-aware).

    Returns
    -------
    dict
        What was decided (``recorded_earlier`` for a second click), or for Resume which attempt serves the run
        (``started`` False for a second click), and whether the message was updated in place.

    Raises
    ------
    InteractionRejected
        401 (unsigned, bad signature, stale, replayed), 403 (not an approver, requester in production),
        404 (unknown approval, a run without execution), 410 (expired), 400 (malformed). Nothing changed.
    """
    verify_request(body, headers, settings.signing_secret, ports.guard, now)
    payload, decision, approval_id = parse_actions(body)
    if decision == "resume":
        return resume_from_chat(payload, approval_id, settings, ports)
    approver = authorise(payload.user, approval_id, settings, ports.store)
    request = DecideApprovalRequest(approval_id=approval_id, decision=decision, approver=approver)  # type: ignore[arg-type]
    try:
        decided = decide_approval(request, ports.store, ports.callbacks, ports.publisher, now)
    except ApprovalNotFound as error:
        raise InteractionRejected(404, str(error)) from None
    except ApprovalExpired as error:
        raise InteractionRejected(410, str(error)) from None
    updated = _update_message(payload, decided, ports, settings.response_url_prefix)
    return {**decided.model_dump(mode="json"), "message_updated": updated}


def _update_resumed(
    payload: BlockActions, failed: str, started: RolloutStarted, actor: str, prefix: str, ports: InteractionPorts
) -> bool:
    if not payload.response_url or not payload.response_url.startswith(prefix):
        return False
    body = resumed_update(failed, started.execution_name, started.status, started.started, actor)
    return ports.poster.post(payload.response_url, body).delivered


def resume_from_chat(
    payload: BlockActions, failed_execution: str, settings: InteractionSettings, ports: InteractionPorts
) -> dict[str, Any]:
    """An approver's Resume click: start the run's next attempt once, and say in the message who resumed it.

    Raises
    ------
    InteractionRejected
        403 (not an approver), 404 (the run has no execution).
    """
    _approver_names(payload.user, settings)
    actor = _actor(payload.user)
    try:
        started = resume_failed_attempt(failed_execution, ports.starter, ports.ledger)
    except NothingToResume as error:
        raise InteractionRejected(404, str(error)) from None
    updated = _update_resumed(payload, failed_execution, started, actor, settings.response_url_prefix, ports)
    return {
        "action": "resume",
        "resumed_by": actor,
        "failed_execution": failed_execution,
        **started.model_dump(mode="json"),
        "message_updated": updated,
    }
