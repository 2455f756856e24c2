"""The committed exclusion ledger (policy/exclusions.yaml): exclusions that must survive the next deploy.

Why. PatchPilot rejects a bad patch at run time with UpdatePatchBaseline. The baselines are CloudFormation resources,
so that change is drift: the next stack update that touches a baseline sets RejectedPatches back to the template's
value and the exclusion is silently gone. The ledger makes exclusions part of the template: `patchpilot exclusions
export` writes the runs table's active exclusions into this file (merged with what it already holds, minus what an
operator removed), `make baselines` renders every entry into the RejectedPatches of the baselines it names, and the
template sync check (`make baselines --check`, tests/unit/test_baselines_template.py) fails while template and ledger
differ. Commit the file with the template.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patchpilot.logic.exclusion import blocks_every_version, rejection_entry
from patchpilot.models.exclusion import ExclusionRecord
from patchpilot.models.policy import KERNEL_PACKAGES, OperatingSystem, PatchName, PatchPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]
EXCLUSIONS_PATH = REPO_ROOT / "policy" / "exclusions.yaml"
MAX_REJECTED_PATCHES = 50  # UpdatePatchBaseline / AWS::SSM::PatchBaseline RejectedPatches limit
HEADER = (
    "# PatchPilot exclusion ledger: patches PatchPilot excluded, rendered into the baselines' RejectedPatches by\n"
    "# `make baselines`. Written by `patchpilot exclusions export` (do not edit by hand; commit with template.yaml).\n"
)


class LedgerError(ValueError):
    """The ledger file is not valid, or does not fit the policy."""


class LedgerEntry(BaseModel):
    """One RejectedPatches entry for one OS, in the baselines of some environments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    patch_id: str = Field(min_length=1, max_length=100)
    reject: PatchName = Field(description="The RejectedPatches entry (Patch Manager package-name format).")
    operating_system: OperatingSystem
    environments: list[str] = Field(min_length=1)
    run_id: str
    stage_name: str
    decided_at: datetime
    blocks_every_version: bool = Field(
        description="True where the OS's list format cannot name a version (APT: bare package names): a fixed "
        "version stays blocked until an operator removes the exclusion."
    )

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes an entry unique: the OS, the rejected entry and the patch."""
        return self.operating_system, self.reject, self.patch_id


class ExclusionLedgerFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    exclusions: list[LedgerEntry] = Field(default_factory=list)


def load_ledger(path: Path = EXCLUSIONS_PATH) -> ExclusionLedgerFile:
    """Read the ledger (a missing file is an empty ledger); LedgerError when it is not valid."""
    if not path.exists():
        return ExclusionLedgerFile()
    try:
        return ExclusionLedgerFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as error:
        raise LedgerError(f"{path} is not a valid exclusion ledger:\n{error}") from error


def dump_ledger(ledger: ExclusionLedgerFile) -> str:
    """The file's text: a header, then the entries sorted by OS, entry and patch (stable diffs)."""
    entries = sorted(ledger.exclusions, key=lambda entry: entry.key)
    body = {"version": 1, "exclusions": [entry.model_dump(mode="json") for entry in entries]}
    return HEADER + yaml.safe_dump(body, sort_keys=False, width=120)


def _environments(record: ExclusionRecord, policy: PatchPolicy) -> list[str]:
    groups = record.patch_groups or [
        name for name, group in policy.patch_groups.items() if group.stage == record.stage_name
    ]
    return sorted({policy.patch_groups[g].environment for g in groups if g in policy.patch_groups})


def entries_of(record: ExclusionRecord, policy: PatchPolicy) -> list[LedgerEntry]:
    """The ledger entries of one runs-table exclusion: one per OS it was rejected for that the policy manages."""
    environments = _environments(record, policy)
    if not environments:
        return []
    entries = []
    for os_name in record.evidence.operating_systems:
        if os_name not in policy.operating_systems:
            continue
        entry = rejection_entry(record.patch_id, record.evidence.title, os_name)
        if record.rejected_as and entry not in record.rejected_as:
            continue
        entries.append(
            LedgerEntry.model_validate(
                {
                    "patch_id": record.patch_id,
                    "reject": entry,
                    "operating_system": os_name,
                    "environments": environments,
                    "run_id": record.run_id,
                    "stage_name": record.stage_name,
                    "decided_at": record.decided_at,
                    "blocks_every_version": blocks_every_version(entry, record.patch_id, os_name),
                }
            )
        )
    return entries


def merge_ledger(
    existing: ExclusionLedgerFile,
    active: Iterable[ExclusionRecord],
    removed: Iterable[ExclusionRecord],
    policy: PatchPolicy,
) -> ExclusionLedgerFile:
    """The ledger after an export: what it held plus the active exclusions, minus those an operator removed.

    The runs table forgets exclusions (its rows expire), the file does not: an entry stays until an operator removes
    the exclusion (`patchpilot exclusions remove`, which moves the row to `EXCLUSION_REMOVED#`). Environments of the
    same entry are merged.
    """
    dropped = {entry.key for record in removed for entry in entries_of(record, policy)}
    merged: dict[tuple[str, str, str], LedgerEntry] = {}
    for entry in [*existing.exclusions, *(e for record in active for e in entries_of(record, policy))]:
        if entry.key in dropped:
            continue
        known = merged.get(entry.key)
        if known is not None:
            entry = known.model_copy(update={"environments": sorted({*known.environments, *entry.environments})})
        merged[entry.key] = entry
    return ExclusionLedgerFile(exclusions=list(merged.values()))


def rejected_by_baseline(
    ledger: ExclusionLedgerFile, policy: PatchPolicy
) -> dict[tuple[str, OperatingSystem], list[str]]:
    """(environment, OS) -> the ledger's RejectedPatches entries; LedgerError when an entry does not fit the policy."""
    rejected: dict[tuple[str, OperatingSystem], list[str]] = {}
    for entry in ledger.exclusions:
        if entry.operating_system not in policy.operating_systems:
            raise LedgerError(f"exclusion of {entry.patch_id}: {entry.operating_system} is not in the policy's OSes")
        for environment in entry.environments:
            if environment not in policy.environments:
                raise LedgerError(f"exclusion of {entry.patch_id}: environment {environment!r} is not in the policy")
            names = rejected.setdefault((environment, entry.operating_system), [])
            if entry.reject not in names:
                names.append(entry.reject)
    return rejected


def apply_ledger(policy: PatchPolicy, ledger: ExclusionLedgerFile) -> PatchPolicy:
    """The policy with every ledger entry added to its environments' rejected_patches (at most 50 per baseline)."""
    additions: Mapping[tuple[str, OperatingSystem], list[str]] = rejected_by_baseline(ledger, policy)
    if not additions:
        return policy
    environments = {}
    for env_name, env in policy.environments.items():
        rejected: dict[OperatingSystem, list[str]] = {os: list(names) for os, names in env.rejected_patches.items()}
        for (environment, os_name), names in additions.items():
            if environment != env_name:
                continue
            current = rejected.setdefault(os_name, [])
            current.extend(name for name in names if name not in current)
            held = [name for name in KERNEL_PACKAGES[os_name] if env.hold_kernel and name not in current]
            if len(current) + len(held) > MAX_REJECTED_PATCHES:
                raise LedgerError(
                    f"the {env_name} baseline for {os_name} would reject {len(current) + len(held)} entries; "
                    f"Patch Manager allows {MAX_REJECTED_PATCHES}: remove fixed ones (`patchpilot exclusions remove`)"
                )
        environments[env_name] = env.model_copy(update={"rejected_patches": rejected})
    return policy.model_copy(update={"environments": environments})
