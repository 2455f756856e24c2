"""In-memory fakes of the auto-exclusion ports (the baselines fake can simulate a concurrent writer)."""

from datetime import datetime

from patchpilot.integrations.ports import ExclusionLedger, PatchBaselines, PatchInventory
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot.models.patches import InstancePatch


class FakePatchInventory(PatchInventory):
    """Serves every row it holds (the logic itself ignores rows older than the run)."""

    def __init__(self, patches: dict[str, list[InstancePatch]]) -> None:
        self.patches = patches
        self.calls: list[tuple[str, datetime]] = []

    def installed_during(self, instance_id: str, since: datetime) -> list[InstancePatch]:
        self.calls.append((instance_id, since))
        return list(self.patches.get(instance_id, []))


class InMemoryPatchBaselines(PatchBaselines):
    """Baselines by (patch group, OS); `concurrent_writes` entries each clobber one of our next writes.

    A concurrent writer read the list before our write and writes its own copy (plus its own id) right after it:
    our ids vanish, its id appears - exactly the lost update a plain read-modify-write suffers.
    """

    def __init__(
        self,
        groups: dict[tuple[str, str], str],
        rejected: dict[str, list[str]] | None = None,
        concurrent_writes: list[str] | None = None,
    ) -> None:
        self.groups = groups
        self.rejected: dict[str, list[str]] = {baseline_id: [] for baseline_id in groups.values()} | (rejected or {})
        self.concurrent_writes = list(concurrent_writes or [])
        self.writes: list[tuple[str, list[str]]] = []
        self.pauses: list[int] = []

    def baseline_for(self, patch_group: str, operating_system: str) -> str:
        return self.groups[(patch_group, operating_system)]

    def rejected_patches(self, baseline_id: str) -> list[str]:
        return list(self.rejected[baseline_id])

    def replace_rejected_patches(self, baseline_id: str, patch_ids: list[str]) -> None:
        before = list(self.rejected[baseline_id])
        self.writes.append((baseline_id, list(patch_ids)))
        self.rejected[baseline_id] = list(patch_ids)
        if self.concurrent_writes:
            theirs = self.concurrent_writes.pop(0)
            self.rejected[baseline_id] = [*before, theirs]

    def pause_before_retry(self, attempt: int) -> None:
        self.pauses.append(attempt)


class InMemoryExclusionLedger(ExclusionLedger):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], ExclusionRecord] = {}

    def record(self, record: ExclusionRecord) -> bool:
        key = (record.run_id, record.stage_name, record.patch_id)
        if key in self.records:
            return False
        self.records[key] = record
        return True

    def exclusions_of(self, run_id: str) -> list[ExclusionRecord]:
        return [record for (run, _, _), record in sorted(self.records.items()) if run == run_id]
