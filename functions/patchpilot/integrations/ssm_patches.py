"""SSM adapters of the PatchInventory and PatchBaselines ports (DescribeInstancePatches, Get/UpdatePatchBaseline)."""

import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from patchpilot.integrations.ports import PatchBaselines, PatchInventory
from patchpilot.models.patches import InstancePatch, PatchState, during_run, is_untimed

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_ssm.literals import OperatingSystemType

RUN_STATE_FILTER = ["Installed", "InstalledPendingReboot", "Failed"]
_STATES = {state.value.lower(): state for state in PatchState}


def patch_state(value: str) -> PatchState:
    """A DescribeInstancePatches `State` as a PatchState (``InstalledPendingReboot``, ``INSTALLED_PENDING_REBOOT``)."""
    return _STATES[value.replace("_", "").lower()]


def _to_patch(instance_id: str, row: Any) -> InstancePatch:
    return InstancePatch(
        instance_id=instance_id,
        patch_id=row.get("KBId") or row["Title"],
        title=row["Title"],
        classification=row.get("Classification", ""),
        severity=row.get("Severity", ""),
        state=patch_state(row["State"]),
        installed_time=row.get("InstalledTime"),
        cve_ids=tuple(cve for cve in row.get("CVEIds", "").split(",") if cve),
    )


class SsmPatchInventory(PatchInventory):
    """DescribeInstancePatches filtered to the states a run leaves behind, every page."""

    def __init__(self, client: "SSMClient") -> None:
        self._client = client

    def installed_during(self, instance_id: str, since: datetime) -> list[InstancePatch]:
        paginator = self._client.get_paginator("describe_instance_patches")
        pages = paginator.paginate(InstanceId=instance_id, Filters=[{"Key": "State", "Values": RUN_STATE_FILTER}])
        rows = [_to_patch(instance_id, row) for page in pages for row in page.get("Patches", [])]
        return [
            row.model_copy(update={"installed_time": None}) if is_untimed(row) else row
            for row in rows
            if is_untimed(row) or during_run(row, since)
        ]


class SsmPatchBaselines(PatchBaselines):
    """Baselines through the SSM API; the set-union merge, verification and retry live in the port."""

    def __init__(
        self,
        client: "SSMClient",
        max_merge_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.max_merge_attempts = max_merge_attempts
        self._sleep = sleep

    def baseline_for(self, patch_group: str, operating_system: str) -> str:
        response = self._client.get_patch_baseline_for_patch_group(
            PatchGroup=patch_group,
            OperatingSystem=cast("OperatingSystemType", operating_system),
        )
        return str(response["BaselineId"])

    def rejected_patches(self, baseline_id: str) -> list[str]:
        return list(self._client.get_patch_baseline(BaselineId=baseline_id).get("RejectedPatches", []))

    def replace_rejected_patches(self, baseline_id: str, patch_ids: list[str]) -> None:
        self._client.update_patch_baseline(
            BaselineId=baseline_id, RejectedPatches=patch_ids, RejectedPatchesAction="BLOCK"
        )

    def pause_before_retry(self, attempt: int) -> None:
        self._sleep(random.uniform(0, 0.5 * 2**attempt))
