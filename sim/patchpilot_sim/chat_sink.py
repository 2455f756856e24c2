"""A loopback HTTP stand-in for Slack and Teams: one port, one path per platform and channel, planned failures.

- ``POST /slack/<channel>``: a Slack incoming webhook. Like Slack it answers 400 ``invalid_payload`` for a body that
  is not JSON, ``no_text`` when there is neither ``text`` nor ``blocks``, ``invalid_blocks`` for more than 50 blocks;
  otherwise 200 ``ok`` (https://api.slack.com/messaging/webhooks#handling_errors).
- ``POST /teams/<channel>``: a Teams Workflows webhook: the body must be ``{"type": "message", "attachments": [...]}``
  with Adaptive Card attachments; 202 Accepted like the Workflows trigger.
- ``POST /slack-response/<id>``: a Slack ``response_url`` (message updates in place).

Failures are planned by request count, never by wall time (``fail_next(["500", "429", "timeout"])``): a ``429``
carries ``Retry-After``; a ``timeout`` holds the answer longer than the client waits. Every accepted message is
appended to ``chat.jsonl`` (``platform``, ``channel``, ``kind``, ``payload``). The server listens on 127.0.0.1 only,
on an ephemeral port, and stops by itself after ``max_lifetime_seconds``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
SLACK_MAX_BLOCKS = 50
KIND_PREFIX = "patchpilot:"


def message_kind(platform: str, payload: dict[str, Any]) -> str:
    """The alert kind a rendered message names (Slack header ``block_id``, Adaptive Card title ``id``)."""
    candidates: list[Any] = []
    if platform == "slack":
        candidates = [block.get("block_id") for block in payload.get("blocks", []) if isinstance(block, dict)]
    else:
        for attachment in payload.get("attachments", []):
            body = (attachment.get("content") or {}).get("body", [])
            candidates += [element.get("id") for element in body if isinstance(element, dict)]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.startswith(KIND_PREFIX):
            return candidate.removeprefix(KIND_PREFIX).split(":")[0]
    return "message_update" if payload.get("replace_original") else "unknown"


def _slack_error(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "invalid_payload"
    if not payload.get("text") and not payload.get("blocks"):
        return "no_text"
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > SLACK_MAX_BLOCKS:
        return "invalid_blocks"
    return None


def _teams_error(payload: Any) -> str | None:
    if not isinstance(payload, dict) or payload.get("type") != "message":
        return "the body must be a message"
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "a message needs attachments"
    for attachment in attachments:
        content = attachment.get("content") if isinstance(attachment, dict) else None
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive" or not isinstance(content, dict):
            return "attachments must be Adaptive Cards"
        if content.get("type") != "AdaptiveCard" or not content.get("version"):
            return "an Adaptive Card needs type and version"
    return None


@dataclass
class SinkState:
    """What the sink received and what it still has to fail."""

    planned_failures: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChatSink:
    """Stands in for Slack and Teams on 127.0.0.1 (``with ChatSink(path) as sink: sink.url("slack", "ops")``)."""

    def __init__(
        self,
        out_path: Path | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        retry_after_seconds: int = 1,
        hold_seconds: float = 1.5,
        max_lifetime_seconds: float = 1800.0,
    ) -> None:
        self.out_path = out_path
        self.on_message = on_message
        self.retry_after_seconds = retry_after_seconds
        self.hold_seconds = hold_seconds
        self.max_lifetime_seconds = max_lifetime_seconds
        self.state = SinkState()
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    def __enter__(self) -> ChatSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the chat sink is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, platform: str, channel: str) -> str:
        return f"{self.base_url}/{platform}/{channel}"

    def start(self) -> None:
        if self.out_path is not None:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            self.out_path.write_text("")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="chat-sink", daemon=True).start()
        self._timer = threading.Timer(self.max_lifetime_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if self._timer is not None:
            self._timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()

    def fail_next(self, failures: list[str]) -> None:
        """Answer the next requests with these failures, in order: "500", "429" or "timeout"."""
        with self.state.lock:
            self.state.planned_failures.extend(failures)

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.messages)

    def _accept(self, platform: str, channel: str, payload: dict[str, Any]) -> None:
        record = {"platform": platform, "channel": channel, "kind": message_kind(platform, payload), "payload": payload}
        with self.state.lock:
            self.state.messages.append(record)
            if self.out_path is not None:
                with self.out_path.open("a") as out:
                    out.write(json.dumps(record) + "\n")
        if self.on_message is not None:
            self.on_message(record)

    def _next_failure(self) -> str | None:
        with self.state.lock:
            return self.state.planned_failures.pop(0) if self.state.planned_failures else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("ChatSinkHandler", (_SinkHandler,), {"sink": self})


class _SinkHandler(BaseHTTPRequestHandler):
    """One request to the sink (``sink`` is set on the subclass the sink creates)."""

    sink: ChatSink

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        body = text.encode()
        try:
            self.send_response(status)
            for key, value in {"Content-Type": "text/plain", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            status = 0  # the client gave up waiting (a planned timeout): nobody reads the answer
        with self.sink.state.lock:
            self.sink.state.answers.append((self.path, status))

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY_BYTES))
        if len(parts) != 2 or parts[0] not in ("slack", "teams", "slack-response"):
            self._answer(404, "no such webhook")
            return
        failure = self.sink._next_failure()
        if failure == "timeout":
            time.sleep(self.sink.hold_seconds)
            self._answer(504, "gateway timeout")
        elif failure == "429":
            self._answer(429, "rate_limited", {"Retry-After": str(self.sink.retry_after_seconds)})
        elif failure is not None:
            self._answer(int(failure), "internal error")
        else:
            self._deliver(parts[0], parts[1], raw)

    def _deliver(self, kind: str, channel: str, raw: bytes) -> None:
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        platform = "teams" if kind == "teams" else "slack"
        error = _teams_error(payload) if platform == "teams" else _slack_error(payload)
        if error is not None:
            self._answer(400, error)
            return
        self.sink._accept(platform, "response_url" if kind == "slack-response" else channel, payload)
        self._answer(202 if platform == "teams" else 200, "ok" if platform == "slack" else "")
