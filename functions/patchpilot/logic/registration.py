"""Auto-registration of new instances: default patch group tag when missing (never overwritten), one first scan."""

from typing import Literal

from patchpilot.integrations.ports import FirstScanLedger, InstanceInventory, PatchScanner
from patchpilot.models.registration import InstanceStateDetail, RegistrationHandled

SCAN_COMMENT = "PatchPilot first scan of a new instance"


def register_instance(
    detail: InstanceStateDetail,
    event_id: str,
    default_group: str,
    tag_key: str,
    inventory: InstanceInventory,
    scanner: PatchScanner,
    ledger: FirstScanLedger,
) -> RegistrationHandled:
    """Give a running instance the default patch group if it has none, then start its first scan exactly once.

    Parameters
    ----------
    detail : InstanceStateDetail
        The EC2 state change (only ``running`` is acted on).
    event_id : str
        The EventBridge event id (recorded on the first-scan claim).
    default_group : str
        The patch group given to instances without one.
    tag_key : str
        The tag that names the patch group (``PatchGroup``).
    inventory : InstanceInventory
        Reads and writes instance tags.
    scanner : PatchScanner
        Sends the Scan command.
    ledger : FirstScanLedger
        Makes the first scan happen at most once per instance, whatever the number of events.

    Returns
    -------
    RegistrationHandled
        ``tagging`` is ``kept_existing`` when the instance already had a patch group (it is never overwritten);
        ``scan`` is ``already_started`` when an earlier event claimed the first scan.

    Raises
    ------
    InstanceNotManaged
        SSM does not manage the instance yet. On this or any other failure to send, the claim is released so the
        retried invocation (Lambda async retries) can scan it.
    """
    instance_id = detail.instance_id
    if detail.state != "running":
        return RegistrationHandled(instance_id=instance_id, tagging="not_running", scan="skipped")
    try:
        current = inventory.tag_value(instance_id, tag_key)
    except LookupError:
        return RegistrationHandled(instance_id=instance_id, tagging="instance_gone", scan="skipped")
    tagging: Literal["tagged", "kept_existing"] = "kept_existing"
    group = current
    if current is None:
        inventory.set_tag(instance_id, tag_key, default_group)
        tagging, group = "tagged", default_group
    if not ledger.claim(instance_id, event_id):
        return RegistrationHandled(instance_id=instance_id, tagging=tagging, patch_group=group, scan="already_started")
    try:
        command_id = scanner.start_scan(instance_id, SCAN_COMMENT)
    except Exception:
        ledger.release(instance_id, event_id)
        raise
    ledger.record_command(instance_id, command_id)
    return RegistrationHandled(
        instance_id=instance_id, tagging=tagging, patch_group=group, scan="started", command_id=command_id
    )
