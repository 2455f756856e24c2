"""Chat delivery: where alerts go (channels in the chat secret), what was posted, and why a post failed.

The chat secret (Secrets Manager, JSON) holds the webhook URLs and the Slack signing secret. Every credential is a
``SecretStr``: it never shows in a repr, a log line or a JSON dump.
"""

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, JsonValue, SecretStr, StringConstraints, model_validator

from patchpilot.models.alerts import AlertKind, Severity
from patchpilot.models.exceptions import PatchPilotError

Platform = Literal["slack", "teams"]
ChannelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ALL_SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


class _ChatModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatChannel(_ChatModel):
    """One destination: a Slack incoming webhook or a Teams Workflows webhook, and which alerts it receives."""

    name: ChannelName
    platform: Platform
    webhook_url: SecretStr = Field(min_length=8)
    severities: list[Severity] = Field(default_factory=lambda: list(ALL_SEVERITIES), min_length=1)
    kinds: list[AlertKind] | None = None

    @property
    def key(self) -> str:
        """``platform/name``: unique in the secret; the idempotency ledger's channel key."""
        return f"{self.platform}/{self.name}"

    def wants(self, kind: AlertKind, severity: Severity) -> bool:
        """True when the channel receives alerts of this kind and severity."""
        return severity in self.severities and (self.kinds is None or kind in self.kinds)


class ChatSecret(_ChatModel):
    """The chat secret's JSON (``CHAT_SECRET_ARN``): channels and the Slack app's signing secret."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channels: list[ChatChannel] = Field(default_factory=list, max_length=20)
    slack_signing_secret: SecretStr = Field(min_length=1)
    slack_response_url_prefix: HttpUrl = HttpUrl("https://hooks.slack.com/")

    @model_validator(mode="after")
    def _unique_channels(self) -> Self:
        keys = [channel.key for channel in self.channels]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"channels must be unique per platform and name, got {', '.join(duplicates)} twice")
        return self


class ChatMessage(_ChatModel):
    """One rendered message for one channel."""

    platform: Platform
    channel: str
    kind: AlertKind
    alert_id: str
    summary: str
    payload: dict[str, JsonValue]


class PostResult(_ChatModel):
    """What a webhook answered to one attempt (``status`` 0: no answer, a timeout or a refused connection)."""

    status: int
    retry_after_seconds: float | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status in (0, 408, 429) or self.status >= 500


class Delivery(_ChatModel):
    """What the notifier did with one alert: channels posted now, channels posted before, channels that failed."""

    alert_id: str
    kind: AlertKind
    posted: list[str] = Field(default_factory=list)
    already_posted: list[str] = Field(default_factory=list)
    digested: bool = False
    failed: dict[str, str] = Field(default_factory=dict)


class UnrenderableAlert(PatchPilotError):
    """The message is not an alert PatchPilot can render (not JSON, not the Alert model, unknown kind)."""


class ChatDeliveryFailed(PatchPilotError):
    """A channel did not take the message after every retry (outage, throttling): the invocation is retried."""


class InteractionRejected(PatchPilotError):
    """A Slack interaction that must change nothing: ``status`` is the HTTP answer (400, 401 or 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_object(value: Any) -> dict[str, JsonValue]:
    """A JSON object as a typed dict (raises TypeError otherwise)."""
    if not isinstance(value, dict):
        raise TypeError("expected a JSON object")
    return value
