"""Auto-registration logic (fakes): tag only when missing, never overwrite, one first scan whatever the events."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from patchpilot.logic.registration import register_instance
from patchpilot.models.exceptions import InstanceNotManaged
from patchpilot.models.registration import InstanceStateDetail, InstanceStateEvent
from tests.fakes import InMemoryFirstScanLedger, InMemoryInventory, RecordingScanner

EVENTS = Path(__file__).resolve().parents[2] / "events" / "ec2"
INSTANCE = "i-0abcd1234ef567890"


def _detail(state: str = "running", instance_id: str = INSTANCE) -> InstanceStateDetail:
    return InstanceStateDetail.model_validate({"instance-id": instance_id, "state": state})


def test_registration_tags_an_untagged_instance_and_scans_it() -> None:
    inventory, scanner, ledger = (
        InMemoryInventory({INSTANCE: {"Name": "web"}}),
        RecordingScanner(),
        InMemoryFirstScanLedger(),
    )
    handled = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (handled.tagging, handled.patch_group, handled.scan, handled.command_id) == (
        "tagged",
        "dev",
        "started",
        "command-1",
    )
    assert inventory.tags[INSTANCE] == {"Name": "web", "PatchGroup": "dev"}
    assert scanner.scans == [INSTANCE]
    assert ledger.claims[INSTANCE] == {"event_id": "event-1", "command_id": "command-1"}


def test_registration_never_overwrites_an_existing_patch_group() -> None:
    inventory = InMemoryInventory({INSTANCE: {"PatchGroup": "prod-2"}})
    scanner, ledger = RecordingScanner(), InMemoryFirstScanLedger()
    handled = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (handled.tagging, handled.patch_group, handled.scan) == ("kept_existing", "prod-2", "started")
    assert inventory.writes == []
    assert inventory.tags[INSTANCE]["PatchGroup"] == "prod-2"


def test_registration_duplicate_event_has_no_second_effect() -> None:
    inventory, scanner, ledger = InMemoryInventory({INSTANCE: {}}), RecordingScanner(), InMemoryFirstScanLedger()
    first = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    second = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (first.tagging, first.scan) == ("tagged", "started")
    assert (second.tagging, second.scan, second.command_id) == ("kept_existing", "already_started", None)
    assert inventory.writes == [(INSTANCE, "PatchGroup", "dev")]
    assert scanner.scans == [INSTANCE]


def test_registration_retry_after_a_crash_between_claim_and_scan_scans() -> None:
    inventory, scanner, ledger = InMemoryInventory({INSTANCE: {}}), RecordingScanner(), InMemoryFirstScanLedger()
    assert ledger.claim(INSTANCE, "event-1")  # the first invocation claimed, then died before sending the scan
    other = register_instance(_detail(), "event-2", "dev", "PatchGroup", inventory, scanner, ledger)
    retried = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (other.scan, retried.scan) == ("already_started", "started")
    assert scanner.scans == [INSTANCE]


def test_registration_restart_event_does_not_rescan() -> None:
    inventory, scanner, ledger = InMemoryInventory({INSTANCE: {}}), RecordingScanner(), InMemoryFirstScanLedger()
    register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    again = register_instance(_detail(), "event-2", "dev", "PatchGroup", inventory, scanner, ledger)
    assert again.scan == "already_started"
    assert scanner.scans == [INSTANCE]


def test_registration_unmanaged_instance_releases_the_claim_so_a_retry_scans() -> None:
    inventory, ledger = InMemoryInventory({INSTANCE: {}}), InMemoryFirstScanLedger()
    scanner = RecordingScanner(unmanaged={INSTANCE})
    with pytest.raises(InstanceNotManaged, match=f"^{INSTANCE}$"):
        register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert ledger.claims == {}
    scanner.unmanaged.clear()
    retried = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (retried.tagging, retried.scan) == ("kept_existing", "started")
    assert scanner.scans == [INSTANCE]
    assert inventory.writes == [(INSTANCE, "PatchGroup", "dev")]


def test_registration_gone_instance_is_skipped() -> None:
    inventory, scanner, ledger = InMemoryInventory({}), RecordingScanner(), InMemoryFirstScanLedger()
    handled = register_instance(_detail(), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (handled.tagging, handled.scan) == ("instance_gone", "skipped")
    assert scanner.scans == []
    assert ledger.claims == {}


def test_registration_ignores_states_other_than_running() -> None:
    inventory, scanner, ledger = InMemoryInventory({INSTANCE: {}}), RecordingScanner(), InMemoryFirstScanLedger()
    handled = register_instance(_detail("stopped"), "event-1", "dev", "PatchGroup", inventory, scanner, ledger)
    assert (handled.tagging, handled.scan) == ("not_running", "skipped")
    assert inventory.writes == []
    assert scanner.scans == []


def test_registration_sample_event_parses() -> None:
    event = InstanceStateEvent.model_validate(json.loads((EVENTS / "instance-running.json").read_text()))
    assert (event.detail.instance_id, event.detail.state, event.detail_type) == (
        INSTANCE,
        "running",
        "EC2 Instance State-change Notification",
    )


def test_registration_malformed_sample_event_is_rejected_naming_the_fields() -> None:
    with pytest.raises(ValidationError, match=r"2 validation errors for InstanceStateEvent\n") as caught:
        InstanceStateEvent.model_validate(json.loads((EVENTS / "instance-running-malformed.json").read_text()))
    message = str(caught.value)
    assert "detail.instance-id" in message
    assert "detail.state" in message
