"""In-memory fakes of the chat ports (webhooks, ledger, replay guard, rejected inputs)."""

from datetime import UTC, datetime
from typing import Any

from patchpilot.integrations.ports import ChatClaim, ChatLedger, ChatPoster, InteractionGuard, RejectedInputStore
from patchpilot.models.alerts import Alert, AlertKind
from patchpilot.models.chat import ChatSecret, PostResult

NOW = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:patchpilot-rollout:cycle-2026-12"


class ScriptedPoster(ChatPoster):
    """Answers each post with the next scripted result (then 200); records every (url, payload)."""

    def __init__(self, results: list[PostResult] | None = None) -> None:
        self.results = list(results or [])
        self.posts: list[tuple[str, dict[str, Any]]] = []

    def post(self, url: str, payload: dict[str, Any]) -> PostResult:
        self.posts.append((url, payload))
        return self.results.pop(0) if self.results else PostResult(status=200)

    def urls(self) -> list[str]:
        return [url for url, _ in self.posts]


class InMemoryChatLedger(ChatLedger):
    def __init__(self) -> None:
        self.status: dict[tuple[str, str], str] = {}
        self.held: dict[tuple[str, str], dict[str, str]] = {}

    def claim(self, alert_id: str, channel: str) -> ChatClaim:
        current = self.status.get((alert_id, channel))
        if current == "posted":
            return "posted"
        if current == "posting":
            return "busy"
        self.status[(alert_id, channel)] = "posting"
        return "claimed"

    def mark_posted(self, alert_id: str, channel: str) -> None:
        self.status[(alert_id, channel)] = "posted"

    def release(self, alert_id: str, channel: str) -> None:
        if self.status.get((alert_id, channel)) == "posting":
            del self.status[(alert_id, channel)]

    def hold_for_digest(self, run_id: str, stage_name: str, alert_id: str, line: str) -> None:
        self.held.setdefault((run_id, stage_name), {})[alert_id] = line

    def digest(self, run_id: str, stage_name: str) -> list[str]:
        return list(self.held.get((run_id, stage_name), {}).values())


class InMemoryInteractionGuard(InteractionGuard):
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def first_use(self, signature: str, expires_at: datetime) -> bool:
        if signature in self.seen:
            return False
        self.seen.add(signature)
        return True


class RecordingRejectedInputs(RejectedInputStore):
    def __init__(self) -> None:
        self.kept: list[tuple[dict[str, Any], str]] = []

    def keep(self, body: dict[str, Any], reason: str) -> None:
        self.kept.append((body, reason))


def chat_secret(**extra: Any) -> ChatSecret:
    """Slack #patching (all), Slack #oncall (critical only), Teams #patching (all)."""
    return ChatSecret.model_validate(
        {
            "channels": [
                {"name": "patching", "platform": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/p"},
                {
                    "name": "oncall",
                    "platform": "slack",
                    "webhook_url": "https://hooks.slack.com/services/T/B/o",
                    "severities": ["critical"],
                },
                {"name": "patching", "platform": "teams", "webhook_url": "https://prod.logic.azure.com/wf?sig=t"},
            ],
            "slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
            **extra,
        }
    )


def alert(kind: AlertKind = "stage_failed", **changes: Any) -> Alert:
    """An alert of `kind` with plausible evidence."""
    fields: dict[str, Any] = {
        "kind": kind,
        "severity": "critical" if kind in ("stage_failed", "rollout_failed", "events_dead_lettered") else "info",
        "run_id": "2026-12",
        "stage_name": None if kind in ("cycle_started", "cycle_finished", "rollout_failed") else "staging",
        "title": f"{kind.replace('_', ' ')} for run 2026-12",
        "summary": f"Something about {kind} happened.",
        "details": {"reasons": ["2 of 10 instances failed the install"], "unhealthy_sample": ["i-0abc", "i-0def"]},
        "execution_id": EXECUTION,
        "occurred_at": NOW,
    }
    if kind == "approval_requested":
        fields |= {"approval_id": "k7m2x9qa", "severity": "warning", "stage_name": "prod-1"}
    return Alert.model_validate({**fields, **changes})
