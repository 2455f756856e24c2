"""Every checkov suppression in template.yaml carries a written reason (`make scan` runs checkov itself)."""

import re
from typing import Any

import pytest

from patchpilot_sim.template import TEMPLATE_PATH, SamTemplate

CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
INLINE_SKIP = re.compile(r"checkov:skip=([^\s:]+)(?::(.*))?")
MIN_REASON_CHARS = 40


def suppression_problems(resources: dict[str, Any], text: str) -> list[str]:
    """Suppressions without a valid check id or without a reason, as `<where>: <problem>` lines."""
    problems = []
    for logical_id, resource in resources.items():
        skips = ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
        for skip in skips:
            check, reason = str(skip.get("id", "")), str(skip.get("comment", "") or "").strip()
            if not CHECK_ID.match(check):
                problems.append(f"{logical_id}: checkov skip {check!r} is not a check id")
            if len(reason) < MIN_REASON_CHARS:
                problems.append(
                    f"{logical_id}: checkov skip {check} has no reason: write why in its `comment` "
                    f"(at least {MIN_REASON_CHARS} characters)"
                )
    for number, line in enumerate(text.splitlines(), start=1):
        for check, reason in INLINE_SKIP.findall(line):
            if len((reason or "").strip()) < MIN_REASON_CHARS:
                problems.append(f"template.yaml:{number}: inline checkov:skip={check} has no reason (`:<why>`)")
    return problems


def test_scan_every_template_suppression_has_a_reason() -> None:
    template = SamTemplate()
    suppressed = [lid for lid, res in template.resources.items() if (res.get("Metadata") or {}).get("checkov")]
    assert suppressed
    assert suppression_problems(template.resources, TEMPLATE_PATH.read_text()) == []


@pytest.mark.parametrize(
    ("resources", "text", "expected"),
    [
        ({"Fn": {"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_117"}]}}}}, "", "Fn: checkov skip CKV_AWS_117 has"),
        ({"Fn": {"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_1", "comment": " ok "}]}}}}, "", "no reason"),
        ({"Fn": {"Metadata": {"checkov": {"skip": [{"id": "AWS_1", "comment": "x" * 50}]}}}}, "", "not a check id"),
        ({}, "  # checkov:skip=CKV_AWS_18\n", "template.yaml:1: inline checkov:skip=CKV_AWS_18 has no reason"),
        ({}, "# checkov:skip=CKV_AWS_18:todo\n", "inline checkov:skip=CKV_AWS_18 has no reason"),
    ],
)
def test_scan_suppression_without_a_reason_is_reported(resources: dict[str, Any], text: str, expected: str) -> None:
    problems = suppression_problems(resources, text)
    assert len(problems) == 1
    assert expected in problems[0]
