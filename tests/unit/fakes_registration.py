"""In-memory fakes of the auto-registration ports."""

from patchpilot.integrations.ports import FirstScanLedger, InstanceInventory, PatchScanner
from patchpilot.models.exceptions import InstanceNotManaged


class InMemoryInventory(InstanceInventory):
    def __init__(self, tags: dict[str, dict[str, str]]) -> None:
        self.tags = tags
        self.writes: list[tuple[str, str, str]] = []

    def tag_value(self, instance_id: str, key: str) -> str | None:
        if instance_id not in self.tags:
            raise LookupError(instance_id)
        return self.tags[instance_id].get(key)

    def set_tag(self, instance_id: str, key: str, value: str) -> None:
        self.writes.append((instance_id, key, value))
        self.tags[instance_id][key] = value


class RecordingScanner(PatchScanner):
    def __init__(self, unmanaged: set[str] | None = None) -> None:
        self.unmanaged = unmanaged or set()
        self.scans: list[str] = []

    def start_scan(self, instance_id: str, comment: str) -> str:
        if instance_id in self.unmanaged:
            raise InstanceNotManaged(instance_id)
        self.scans.append(instance_id)
        return f"command-{len(self.scans)}"


class InMemoryLedger(FirstScanLedger):
    def __init__(self) -> None:
        self.claims: dict[str, dict[str, str]] = {}

    def claim(self, instance_id: str, event_id: str) -> bool:
        if instance_id in self.claims:
            return False
        self.claims[instance_id] = {"event_id": event_id}
        return True

    def record_command(self, instance_id: str, command_id: str) -> None:
        self.claims[instance_id]["command_id"] = command_id

    def release(self, instance_id: str, event_id: str) -> None:
        claim = self.claims.get(instance_id)
        if claim and claim["event_id"] == event_id and "command_id" not in claim:
            del self.claims[instance_id]
