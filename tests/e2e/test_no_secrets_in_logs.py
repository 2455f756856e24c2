"""No secret in any log line or output file of a whole simulated cycle.

Secrets: every raw task token the state machine hands a function (approval and install waits), chat webhook URLs
(Slack ``hooks.slack.com``, Teams Workflows URLs carry ``sig=``), Slack tokens, and the value of every environment
variable whose name says it is a secret (signing secrets, webhook URLs) - so the test keeps guarding when chat
integrations add theirs.
"""

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patchpilot_sim import lambdas
from patchpilot_sim.simulate import SimulationOptions, run_simulation
from patchpilot_sim.template import SamTemplate

# One worker runs the whole module: its module-scoped local stack (or cycle) is set up once, not once per worker.
pytestmark = [pytest.mark.runtime, pytest.mark.full_cycle, pytest.mark.xdist_group("test_no_secrets_in_logs")]

SECRET_PATTERNS = [
    re.compile(r"hooks\.slack\.com/(services|workflows|triggers)/", re.IGNORECASE),
    re.compile(r"[?&]sig=[A-Za-z0-9%_-]{8,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{8,}"),
]
SECRET_ENV_NAME = re.compile(r"SECRET|WEBHOOK|SIGNING|PASSWORD|TOKEN", re.IGNORECASE)
TOKEN_KEYS = {"task_token", "taskToken", "TaskToken"}


class CapturingHandler(logging.Handler):
    """Every record any logger emits, with its extra fields, as production's JSON logs would carry them."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {json.dumps(vars(record), default=str)}")


def _tokens_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in TOKEN_KEYS and isinstance(item, str) and item:
                yield item
            else:
                yield from _tokens_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tokens_in(item)


def _secret_env_values() -> set[str]:
    values = {value for key, value in os.environ.items() if SECRET_ENV_NAME.search(key) and len(value) >= 8}
    for spec in SamTemplate().functions().values():
        values |= {
            value
            for key, value in spec.environment.items()
            if SECRET_ENV_NAME.search(key) and isinstance(value, str) and len(value) >= 8
        }
    return values


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], set[str]]:
    out = tmp_path_factory.mktemp("cycle")
    tokens: set[str] = set()
    original = lambdas.InProcessLambda.invoke

    def invoke(self: lambdas.InProcessLambda, name_or_arn: str, event: Any) -> lambdas.InvocationResult:
        tokens.update(_tokens_in(event))
        return original(self, name_or_arn, event)

    capture = CapturingHandler()
    original_handle = logging.Logger.handle

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        # Every record of every logger reaches the capture, whatever handlers and propagation a library configured
        # (Powertools sets up the "patchpilot" logger when the handlers are first imported, mid-run).
        if self.isEnabledFor(record.levelno):
            capture.handle(record)
        original_handle(self, record)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lambdas.InProcessLambda, "invoke", invoke)
        patch.setattr(logging.Logger, "handle", handle)
        summary = run_simulation(SimulationOptions(instances=8, out_dir=out))
    assert summary["status"] == "SUCCEEDED"
    return out, capture.lines, tokens


def _offenders(text: str, secrets: set[str]) -> list[str]:
    found = [f"raw secret {secret[:6]}..." for secret in secrets if secret in text]
    return found + [f"pattern {pattern.pattern}" for pattern in SECRET_PATTERNS if pattern.search(text)]


def test_no_secrets_in_logs_the_cycle_handed_out_task_tokens(cycle: tuple[Path, list[str], set[str]]) -> None:
    out, lines, tokens = cycle
    assert len(tokens) >= 2  # the install waits and the production approval
    assert (out / "lambda.log").read_text().strip()
    assert lines


def test_no_secrets_in_logs_no_log_line_holds_a_secret(cycle: tuple[Path, list[str], set[str]]) -> None:
    _, lines, tokens = cycle
    secrets = tokens | _secret_env_values()
    leaks = [(line[:160], _offenders(line, secrets)) for line in lines if _offenders(line, secrets)]
    assert leaks == []


def test_no_secrets_in_logs_no_output_file_holds_a_secret(cycle: tuple[Path, list[str], set[str]]) -> None:
    out, _, tokens = cycle
    secrets = tokens | _secret_env_values()
    files = [path for path in out.rglob("*") if path.is_file()]
    assert files
    leaks = {
        str(path.relative_to(out)): _offenders(path.read_text(errors="replace"), secrets)
        for path in files
        if _offenders(path.read_text(errors="replace"), secrets)
    }
    assert leaks == {}


@pytest.mark.parametrize(
    "line",
    [
        "posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        "teams https://prod.westeurope.logic.azure.com/workflows/abc/triggers/manual?api-version=1&sig=AbCdEf123456",
        "bot token xoxb-123456789012-abcdefgh",
    ],
)
def test_no_secrets_in_logs_patterns_catch_chat_secrets(line: str) -> None:
    assert _offenders(line, set())
