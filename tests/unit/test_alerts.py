"""The alert model, its SNS subject and message (the publisher on moto: tests/functional/test_alert_adapters.py)."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from patchpilot.integrations.sns_alerts import MAX_MESSAGE_BYTES, alert_message, alert_subject
from patchpilot.models.alerts import DEFAULT_SEVERITY, Alert
from tests.fakes import sample_alert

_alert = sample_alert


def test_alert_title_and_summary_are_single_lines_clipped_not_refused() -> None:
    alert = _alert(title="Stage\nfailed", summary="  3 instances\n\tunhealthy \r\n after install ")
    assert (alert.title, alert.summary) == ("Stage failed", "3 instances unhealthy after install")
    long = _alert(title="t" * 500, summary="s " * 1000)
    assert (len(long.title), len(long.summary)) == (200, 1000)
    assert long.title.endswith("...")


@pytest.mark.parametrize(
    "change",
    [{"kind": "stage_exploded"}, {"severity": "fatal"}, {"summary": "  "}, {"occurred_at": "2026-12-10T09:00:00"}],
)
def test_alert_rejects_unknown_kind_severity_blank_summary_and_naive_time(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"1 validation error for Alert\n(kind|severity|summary|occurred_at)\n"):
        _alert(**change)


def test_alert_every_kind_has_a_default_severity() -> None:
    kinds = Alert.model_json_schema()["properties"]["kind"]["enum"]
    assert sorted(DEFAULT_SEVERITY) == sorted(kinds)
    assert len(kinds) == 15


def test_alert_subject_is_printable_ascii_of_at_most_100_chars() -> None:
    subject = alert_subject(_alert(title="Approval needed — promote run 2026-12 to prod-1 ✅ " + "x" * 200))
    assert len(subject) == 100
    assert subject.startswith("PatchPilot warning: Approval needed promote run 2026-12 to prod-1 x")
    assert subject.endswith("...")
    assert all(0x20 <= ord(c) <= 0x7E for c in subject)


def test_alert_message_replaces_oversized_evidence_with_a_note() -> None:
    huge = _alert(details={"instances": [f"i-{n:017x}" for n in range(20_000)]})
    message = json.loads(alert_message(huge))
    assert len(alert_message(huge).encode()) <= MAX_MESSAGE_BYTES
    assert message["details"]["truncated"] is True
    assert message["details"]["left_out"] == ["instances"]
    assert message["summary"] == huge.summary
