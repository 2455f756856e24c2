"""HTTPS webhook adapter of the ChatPoster port (Slack incoming webhooks, Teams Workflows webhooks, response_url).

Standard library only (urllib): one POST of a JSON body, bounded by a timeout; HTTP errors, timeouts and refused
connections become a PostResult, never an exception. The URL is a credential: it is never logged or echoed.
"""

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from patchpilot.integrations.ports import ChatPoster
from patchpilot.models.chat import PostResult

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_ERROR_CHARS = 200  # Slack answers errors as a short body ("invalid_blocks", "no_text", "channel_not_found")
_ALLOWED_SCHEMES = ("https://", "http://127.0.0.1:", "http://localhost:")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


class WebhookPoster(ChatPoster):
    """POST JSON with urllib; only https (and loopback http, for the local runtime's stand-in) URLs."""

    def __init__(self, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout_seconds

    def post(self, url: str, payload: dict[str, Any]) -> PostResult:
        if not url.startswith(_ALLOWED_SCHEMES):
            return PostResult(status=400, error="the webhook URL is not https")
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "PatchPilot"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
                return PostResult(status=response.status)
        except urllib.error.HTTPError as error:
            retry_after = retry_after_seconds(error.headers.get("Retry-After"))
            detail = error.read(MAX_ERROR_CHARS).decode("utf-8", errors="replace").strip() or str(error.reason)
            return PostResult(status=error.code, retry_after_seconds=retry_after, error=" ".join(detail.split()))
        except TimeoutError:
            return PostResult(status=0, error="timed out")
        except urllib.error.URLError as error:
            reason = "timed out" if isinstance(error.reason, TimeoutError) else type(error.reason).__name__
            return PostResult(status=0, error=reason)
        except (ConnectionError, OSError) as error:
            return PostResult(status=0, error=type(error).__name__)
