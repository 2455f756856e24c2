"""The simulated fleet's patch level: a monthly patch catalog per OS and the per-instance patch state.

What Patch Manager reports is modelled on the real API: a patch is identified by its `KBId` (Windows: the KB article,
`KB5071546`; Linux: the package `name.arch`, `openssl-libs.x86_64`), its `Title` carries the full version on Linux
(`{name}.{arch}:{epoch}:{version}-{release}` for YUM/DNF, `{name}.{arch}:{version}` for APT), and an
`InstallOverrideList` YAML (`patches: [{id, title}]`) selects patches by id (wildcards allowed) and, on Linux, an
optional title/version pattern.
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse

import yaml

# Per-patch states exactly as DescribeInstancePatches reports them.
INSTALLED = "Installed"
INSTALLED_OTHER = "InstalledOther"
INSTALLED_PENDING_REBOOT = "InstalledPendingReboot"
INSTALLED_REJECTED = "InstalledRejected"
MISSING = "Missing"
FAILED = "Failed"
NOT_APPLICABLE = "NotApplicable"
PATCH_STATES = (
    INSTALLED,
    INSTALLED_OTHER,
    INSTALLED_PENDING_REBOOT,
    INSTALLED_REJECTED,
    MISSING,
    FAILED,
    NOT_APPLICABLE,
)
ON_DISK = frozenset({INSTALLED, INSTALLED_OTHER, INSTALLED_PENDING_REBOOT})
INSTALLABLE = frozenset({MISSING, FAILED})
SECURITY_CLASSIFICATIONS = frozenset({"Security", "SecurityUpdates", "CriticalUpdates"})
NOT_INSTALLED_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # what the API reports as InstalledTime of a missing patch
CYCLE = "2026-12"


@dataclass(frozen=True)
class CatalogPatch:
    """One patch of the month for one OS (what DescribeAvailablePatches would list)."""

    patch_id: str
    title: str
    classification: str
    severity: str
    released: date
    cve_ids: tuple[str, ...] = ()
    kernel: bool = False
    applicability: float = 1.0  # share of the OS's instances the patch applies to (the rest: NotApplicable)

    @property
    def priority(self) -> str:
        """APT systems: the package's Priority field (what a PRIORITY filter matches), derived from the severity.

        Debian/Ubuntu packages carry a Priority (Required, Important, Standard, Optional, Extra) in the repository
        index; the catalog keeps one severity per patch, so the simulator maps Critical to Required, Important to
        Important, Medium to Standard and everything else to Optional.
        """
        return _APT_PRIORITY.get(self.severity, "Optional")

    @property
    def package_name(self) -> str:
        """Linux: the package name without its architecture; Windows: the KB id."""
        name, dot, arch = self.patch_id.rpartition(".")
        return name if dot and arch in {"x86_64", "noarch", "amd64", "i686", "aarch64", "all"} else self.patch_id

    @property
    def version(self) -> str:
        """Linux: what follows `name.arch:` in the title (`epoch:version-release` or the APT version)."""
        prefix = f"{self.patch_id}:"
        return self.title[len(prefix) :] if self.title.startswith(prefix) else ""

    def matches_override(self, entry: OverrideEntry) -> bool:
        """Whether an InstallOverrideList entry selects this patch (id wildcards; title filters Linux versions)."""
        if not fnmatch.fnmatchcase(self.patch_id, entry.patch_id):
            return False
        if not entry.title or self.patch_id.startswith("KB"):
            return True  # Windows ignores every field but id
        return fnmatch.fnmatchcase(self.title, entry.title) or fnmatch.fnmatchcase(self.version, entry.title)

    def matches_name(self, pattern: str) -> bool:
        """Whether an ApprovedPatches entry (a BaselineOverride's) names this patch: KB id, CVE, name or full name."""
        if pattern in self.cve_ids:
            return True
        return any(fnmatch.fnmatchcase(candidate, pattern) for candidate in self.package_names())

    def package_names(self) -> tuple[str, ...]:
        """The names a patch list entry can match: the id, the package name, and on YUM/DNF the full package name.

        Full package names are `name-version-release.arch` (and yum's `name-epoch:version-release.arch`); a bare
        `name` or `name.arch` names every version of the package.
        """
        if self.patch_id.startswith("KB") or self.package_name == self.patch_id:
            return (self.patch_id,)
        arch = self.patch_id.rpartition(".")[2]
        epoch, colon, version_release = self.version.partition(":")
        if not colon:  # APT titles carry no epoch; APT lists take the bare package name only
            return (self.patch_id, self.package_name)
        return (
            self.patch_id,
            self.package_name,
            f"{self.package_name}-{version_release}.{arch}",
            f"{self.package_name}-{epoch}:{version_release}.{arch}",
        )

    def rejected_by(self, pattern: str, operating_system: str) -> bool:
        """Whether a RejectedPatches entry rejects this version of the patch, in the formats AWS documents.

        SSM user guide, "About package name formats for approved and rejected patch lists": Windows takes KB ids;
        YUM/DNF systems (Amazon Linux, RHEL, CentOS, Oracle, Rocky, Alma) full package names
        (`name-version-release.arch`) or names with a wildcard, so `glibc-2.34-117.amzn2023.0.1.x86_64` rejects that
        version only while `glibc.x86_64` (or `glibc*`) rejects every version; APT systems (Ubuntu, Debian) take the
        bare package name only, without architecture or version, which covers every version. CVE ids are not
        accepted in rejected lists.
        """
        if self.patch_id.startswith("KB"):
            return fnmatch.fnmatchcase(self.patch_id, pattern)
        if operating_system in APT_OPERATING_SYSTEMS:
            return fnmatch.fnmatchcase(self.package_name, pattern)
        return any(fnmatch.fnmatchcase(candidate, pattern) for candidate in self.package_names())

    def fixed_as(self, version: str, released: date) -> CatalogPatch:
        """The same package in a later, fixed version (next month's catalog): same id, a new title/version."""
        return replace(self, title=f"{self.patch_id}:{version}", released=released)


APT_OPERATING_SYSTEMS = frozenset({"UBUNTU", "DEBIAN", "RASPBIAN"})
_APT_PRIORITY = {"Critical": "Required", "Important": "Important", "Medium": "Standard"}


def _released(day: int, month: int = 12) -> date:
    return date(2026, month, day)


def _windows(
    kb: str,
    title: str,
    classification: str,
    severity: str,
    cves: tuple[str, ...] = (),
    *,
    kernel: bool = False,
    applicability: float = 1.0,
) -> CatalogPatch:
    return CatalogPatch(kb, f"{title} ({kb})", classification, severity, _released(8), cves, kernel, applicability)


def _linux(
    package: str,
    version: str,
    classification: str,
    severity: str,
    released: date,
    cves: tuple[str, ...] = (),
    *,
    kernel: bool = False,
    applicability: float = 1.0,
) -> CatalogPatch:
    return CatalogPatch(
        package, f"{package}:{version}", classification, severity, released, cves, kernel, applicability
    )


CATALOG: dict[str, tuple[CatalogPatch, ...]] = {
    "WINDOWS": (
        _windows(
            "KB5071546",
            "2026-12 Cumulative Update for Windows Server 2022 for x64-based Systems",
            "SecurityUpdates",
            "Critical",
            ("CVE-2026-49112", "CVE-2026-49127", "CVE-2026-49140"),
            kernel=True,
        ),
        _windows(
            "KB5071595",
            "2026-12 Cumulative Update for .NET Framework 3.5, 4.8 and 4.8.1 for Windows Server 2022 for x64",
            "SecurityUpdates",
            "Important",
            ("CVE-2026-49301",),
        ),
        _windows(
            "KB5071987",
            "2026-12 Servicing Stack Update for Windows Server 2022 for x64-based Systems",
            "CriticalUpdates",
            "Important",
        ),
        _windows(
            "KB5071703",
            "2026-12 Security Update for Windows Server 2022 Remote Desktop Services for x64-based Systems",
            "SecurityUpdates",
            "Moderate",
            ("CVE-2026-49188",),
        ),
        _windows(
            "KB5071744",
            "2026-12 Security Update for Microsoft Visual C++ 2015-2022 Redistributable for x64",
            "SecurityUpdates",
            "Low",
            ("CVE-2026-49233",),
        ),
        _windows(
            "KB5071871",
            "Security Update for SQL Server 2022 RTM CU16",
            "SecurityUpdates",
            "Important",
            ("CVE-2026-49402", "CVE-2026-49405"),
            applicability=0.3,
        ),
        _windows("KB5071812", "2026-12 Update for Windows Server 2022 for x64-based Systems", "Updates", "Unspecified"),
        _windows("KB890830", "Windows Malicious Software Removal Tool x64 - v5.135", "UpdateRollups", "Unspecified"),
    ),
    "AMAZON_LINUX_2023": (
        _linux(
            "kernel.x86_64",
            "0:6.1.119-129.201.amzn2023",
            "Security",
            "Important",
            _released(3),
            ("CVE-2026-38211", "CVE-2026-38240"),
            kernel=True,
        ),
        _linux(
            "openssl-libs.x86_64",
            "1:3.0.8-1.amzn2023.0.18",
            "Security",
            "Important",
            _released(24, 11),
            ("CVE-2026-31790",),
        ),
        _linux("glibc.x86_64", "0:2.34-117.amzn2023.0.1", "Security", "Medium", _released(2), ("CVE-2026-33601",)),
        _linux("curl.x86_64", "0:8.5.0-1.amzn2023.0.5", "Security", "Medium", _released(5), ("CVE-2026-35117",)),
        _linux("python3.x86_64", "0:3.9.20-1.amzn2023.0.6", "Security", "Low", _released(6), ("CVE-2026-36008",)),
        _linux("systemd.x86_64", "0:252.23-2.amzn2023", "Bugfix", "Medium", _released(1)),
        _linux("amazon-ssm-agent.x86_64", "0:3.3.1142.0-1.amzn2023", "Enhancement", "Low", _released(4)),
        _linux(
            "nginx.x86_64",
            "1:1.24.0-1.amzn2023.0.4",
            "Security",
            "Important",
            _released(7),
            ("CVE-2026-37415",),
            applicability=0.4,
        ),
    ),
    "AMAZON_LINUX_2": (
        _linux(
            "kernel.x86_64",
            "0:5.10.228-219.884.amzn2",
            "Security",
            "Important",
            _released(3),
            ("CVE-2026-38211",),
            kernel=True,
        ),
        _linux(
            "openssl.x86_64", "1:1.0.2k-24.amzn2.0.14", "Security", "Important", _released(25, 11), ("CVE-2026-31790",)
        ),
        _linux("glibc.x86_64", "0:2.26-64.amzn2.0.3", "Security", "Medium", _released(2), ("CVE-2026-33601",)),
        _linux("sudo.x86_64", "0:1.8.23-10.amzn2.3.6", "Security", "Critical", _released(4), ("CVE-2026-34502",)),
        _linux(
            "bind-libs.x86_64", "32:9.11.4-26.P2.amzn2.13.5", "Security", "Important", _released(1), ("CVE-2026-30522",)
        ),
        _linux("tzdata.noarch", "0:2026b-1.amzn2.0.1", "Bugfix", "Low", _released(28, 11)),
        _linux("aws-cfn-bootstrap.noarch", "0:2.0-30.amzn2", "Enhancement", "Low", _released(20, 11)),
        _linux(
            "httpd.x86_64",
            "0:2.4.62-1.amzn2.0.2",
            "Security",
            "Important",
            _released(6),
            ("CVE-2026-37720",),
            applicability=0.4,
        ),
    ),
    "UBUNTU": (
        _linux(
            "linux-image-6.8.0-49-generic.amd64",
            "6.8.0-49.49~22.04.1",
            "Security",
            "Important",
            _released(2),
            ("CVE-2026-38211", "CVE-2026-38377"),
            kernel=True,
        ),
        _linux("libssl3.amd64", "3.0.2-0ubuntu1.18", "Security", "Important", _released(26, 11), ("CVE-2026-31790",)),
        _linux("openssl.amd64", "3.0.2-0ubuntu1.18", "Security", "Important", _released(26, 11), ("CVE-2026-31790",)),
        _linux("libc6.amd64", "2.35-0ubuntu3.8", "Security", "Medium", _released(3), ("CVE-2026-33601",)),
        _linux("sudo.amd64", "1.9.9-1ubuntu2.4", "Security", "Critical", _released(4), ("CVE-2026-34502",)),
        _linux("curl.amd64", "7.81.0-1ubuntu1.18", "Security", "Medium", _released(5), ("CVE-2026-35117",)),
        _linux("snapd.amd64", "2.63+22.04ubuntu0.1", "Bugfix", "Low", _released(30, 11)),
        _linux(
            "apache2.amd64",
            "2.4.52-1ubuntu4.12",
            "Security",
            "Important",
            _released(6),
            ("CVE-2026-37720",),
            applicability=0.4,
        ),
    ),
    "REDHAT_ENTERPRISE_LINUX": (
        _linux(
            "kernel.x86_64",
            "0:5.14.0-427.42.1.el9_4",
            "Security",
            "Important",
            _released(3),
            ("CVE-2026-38211", "CVE-2026-38240"),
            kernel=True,
        ),
        _linux(
            "openssl-libs.x86_64", "1:3.0.7-28.el9_4", "Security", "Important", _released(24, 11), ("CVE-2026-31790",)
        ),
        _linux("glibc.x86_64", "0:2.34-100.el9_4.4", "Security", "Medium", _released(2), ("CVE-2026-33601",)),
        _linux("sudo.x86_64", "0:1.9.5p2-10.el9_4.1", "Security", "Critical", _released(4), ("CVE-2026-34502",)),
        _linux("libxml2.x86_64", "0:2.9.13-6.el9_4", "Security", "Medium", _released(5), ("CVE-2026-35990",)),
        _linux("NetworkManager.x86_64", "1:1.46.0-19.el9_4", "Bugfix", "Low", _released(1)),
        _linux("tuned.noarch", "0:2.22.1-1.el9", "Enhancement", "Low", _released(27, 11)),
        _linux(
            "postgresql.x86_64",
            "0:13.16-1.el9_4",
            "Security",
            "Important",
            _released(6),
            ("CVE-2026-37002",),
            applicability=0.4,
        ),
    ),
    "CENTOS": (
        _linux(
            "kernel.x86_64", "0:5.14.0-533.el9", "Security", "Important", _released(3), ("CVE-2026-38211",), kernel=True
        ),
        _linux("openssl-libs.x86_64", "1:3.2.2-6.el9", "Security", "Important", _released(24, 11), ("CVE-2026-31790",)),
        _linux("glibc.x86_64", "0:2.34-125.el9", "Security", "Medium", _released(2), ("CVE-2026-33601",)),
        _linux("openssh-server.x86_64", "0:8.7p1-44.el9", "Security", "Critical", _released(4), ("CVE-2026-34991",)),
        _linux("bash.x86_64", "0:5.1.8-9.el9", "Bugfix", "Low", _released(1)),
        _linux("dnf.noarch", "0:4.14.0-17.el9", "Enhancement", "Low", _released(28, 11)),
        _linux(
            "podman.x86_64",
            "5:5.2.2-1.el9",
            "Security",
            "Medium",
            _released(6),
            ("CVE-2026-36650",),
            applicability=0.5,
        ),
    ),
}


# Rocky Linux and AlmaLinux rebuild RHEL 9: the same packages, the same el9 versions (Patch Manager: ROCKY_LINUX,
# ALMA_LINUX, the usual successors of end-of-life CentOS 7).
CATALOG["ROCKY_LINUX"] = CATALOG["REDHAT_ENTERPRISE_LINUX"]
CATALOG["ALMA_LINUX"] = CATALOG["REDHAT_ENTERPRISE_LINUX"]


def catalog_for(platform: str) -> tuple[CatalogPatch, ...]:
    """The patches of the month for one PatchPilot OS name (a key of fleet.PLATFORMS)."""
    try:
        return CATALOG[platform]
    except KeyError:
        raise ValueError(f"no patch catalog for platform {platform!r}") from None


def find_patch(platform: str, patch_id: str) -> CatalogPatch:
    """One catalog patch by OS and id."""
    for patch in catalog_for(platform):
        if patch.patch_id == patch_id:
            return patch
    raise KeyError(f"{patch_id} is not in the {platform} catalog")


# -- per-instance state ----------------------------------------------------------------------------------------------
@dataclass
class InstancePatchRecord:
    """One catalog patch on one instance: its state and how the simulated agent behaves when installing it."""

    patch: CatalogPatch
    state: str = MISSING
    installed_time: datetime | None = None
    fails_install: bool = False  # the install of this patch fails (invocation Failed, patch Failed)
    breaks_health: bool = False  # installs fine, then the instance is unhealthy


def initial_patch_states(
    platform: str, rng: random.Random | None = None, preinstalled_share: float = 0.1
) -> dict[str, InstancePatchRecord]:
    """Every applicable catalog patch Missing; with an rng, a few already Installed and partial applicability drawn.

    Without an rng the result is fixed: patches that apply to at least half of the OS's instances are Missing,
    the others NotApplicable, nothing is installed yet.
    """
    records: dict[str, InstancePatchRecord] = {}
    for patch in catalog_for(platform):
        applies = patch.applicability >= 0.5 if rng is None else rng.random() < patch.applicability
        record = InstancePatchRecord(patch, MISSING if applies else NOT_APPLICABLE)
        early = patch.released < _released(7)  # installed early, before the cycle starts (Linux advisories only)
        if applies and rng is not None and early and rng.random() < preinstalled_share:
            record.state = INSTALLED
            record.installed_time = datetime.combine(patch.released, time(3, 0), tzinfo=UTC)
        records[patch.patch_id] = record
    return records


@dataclass(frozen=True)
class OverrideEntry:
    """One entry of an InstallOverrideList document."""

    patch_id: str
    title: str = ""


def parse_install_override_list(text: str) -> list[OverrideEntry]:
    """The entries of an InstallOverrideList YAML document (`patches: [{id: ..., title: ...}]`); ValueError if bad."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"InstallOverrideList is not valid YAML: {error}") from error
    if not isinstance(document, dict) or "patches" not in document:
        raise ValueError("InstallOverrideList must be a mapping with a 'patches' list")
    patches = document["patches"] or []
    if not isinstance(patches, list):
        raise ValueError("InstallOverrideList 'patches' must be a list")
    entries = []
    for item in patches:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise ValueError(f"every InstallOverrideList entry needs a string 'id', got {item!r}")
        title = item.get("title")
        entries.append(OverrideEntry(item["id"], title if isinstance(title, str) else ""))
    return entries


_VIRTUAL_HOSTED = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")
_PATH_STYLE = re.compile(r"^s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`, `https://bucket.s3[.region].amazonaws.com/key` or path-style https."""
    parsed = urlparse(url)
    key = parsed.path.lstrip("/")
    if parsed.scheme == "s3" and parsed.netloc and key:
        return parsed.netloc, key
    if parsed.scheme == "https":
        hosted = _VIRTUAL_HOSTED.match(parsed.netloc)
        if hosted and key:
            return hosted.group("bucket"), key
        if _PATH_STYLE.match(parsed.netloc) and "/" in key:
            bucket, _, rest = key.partition("/")
            return bucket, rest
    raise ValueError(f"not an S3 URL AWS-RunPatchBaseline can read: {url!r}")


@dataclass(frozen=True)
class InstallPlan:
    """What one Install invocation does on one instance, decided when it starts."""

    install: tuple[str, ...] = ()
    fail: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return bool(self.fail)


def plan_install(
    records: Mapping[str, InstancePatchRecord],
    rejected: set[str],
    override: list[OverrideEntry] | None = None,
    fail_all: bool = False,
    unapproved: frozenset[str] = frozenset(),
) -> InstallPlan:
    """Missing/Failed patches the baseline does not reject or, with an override list, exactly those it selects.

    An InstallOverrideList "overrides the patches specified by the current default patch baseline" (SSM user guide,
    AWS-RunPatchBaseline parameters). Whether RejectedPatches with BLOCK still wins over the list is not documented,
    so the simulated agent takes the pessimistic reading: it installs what the list names even when the baseline
    rejects it. Whoever writes the list must leave excluded patches out.
    """
    chosen = [
        record
        for patch_id, record in records.items()
        if record.state in INSTALLABLE
        and (
            patch_id not in rejected and patch_id not in unapproved
            if override is None
            else any(record.patch.matches_override(entry) for entry in override)
        )
    ]
    if fail_all:
        return InstallPlan(fail=tuple(r.patch.patch_id for r in chosen))
    return InstallPlan(
        install=tuple(r.patch.patch_id for r in chosen if not r.fails_install),
        fail=tuple(r.patch.patch_id for r in chosen if r.fails_install),
    )


def apply_install(records: Mapping[str, InstancePatchRecord], plan: InstallPlan, now: datetime, reboot: bool) -> bool:
    """Carry out a plan at the end of its invocation; True if a patch that breaks health got installed."""
    for patch_id in plan.install:
        record = records[patch_id]
        record.state = INSTALLED if reboot else INSTALLED_PENDING_REBOOT
        record.installed_time = now
    for patch_id in plan.fail:
        records[patch_id].state = FAILED
    if reboot:  # RebootIfNeeded reboots when it installed something or finds patches pending a reboot
        for record in records.values():
            if record.state == INSTALLED_PENDING_REBOOT:
                record.state = INSTALLED
    return any(records[patch_id].breaks_health for patch_id in plan.install)


def reported_state(record: InstancePatchRecord, rejected: Iterable[str], unapproved: Iterable[str] = ()) -> str | None:
    """The state Patch Manager reports for a record under a baseline's rejections and approvals (None: not reported).

    A patch the baseline does not approve is reported only when it is on disk anyway (InstalledOther); one it rejects
    is InstalledRejected on disk and not reported otherwise.
    """
    if record.patch.patch_id in unapproved and record.patch.patch_id not in rejected:
        return INSTALLED_OTHER if record.state in ON_DISK else None
    if record.patch.patch_id not in rejected:
        return record.state
    if record.state in ON_DISK:
        return INSTALLED_REJECTED
    return NOT_APPLICABLE if record.state == NOT_APPLICABLE else None  # a rejected, absent patch is not approved


@dataclass
class PatchCounts:
    """The counts of one DescribeInstancePatchStates row."""

    by_state: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATCH_STATES, 0))
    critical_non_compliant: int = 0
    security_non_compliant: int = 0
    other_non_compliant: int = 0


NON_COMPLIANT = frozenset({MISSING, FAILED, INSTALLED_PENDING_REBOOT, INSTALLED_REJECTED})


def count_states(
    records: Mapping[str, InstancePatchRecord], rejected: Iterable[str], unapproved: Iterable[str] = ()
) -> PatchCounts:
    """Count the reported states of an instance's records."""
    rejected, unapproved = set(rejected), set(unapproved)
    counts = PatchCounts()
    for record in records.values():
        state = reported_state(record, rejected, unapproved)
        if state is None:
            continue
        counts.by_state[state] += 1
        if state not in NON_COMPLIANT:
            continue
        if record.patch.severity == "Critical":
            counts.critical_non_compliant += 1
        if record.patch.classification in SECURITY_CLASSIFICATIONS:
            counts.security_non_compliant += 1
        else:
            counts.other_non_compliant += 1
    return counts


def rejected_ids(
    platform: str, rejected_names: Iterable[str], records: Mapping[str, InstancePatchRecord] | None = None
) -> set[str]:
    """The ids of the patches whose current version a baseline's RejectedPatches rejects (for the fleet's wiring).

    With an instance's records, each record's own version is judged (next month's fixed version is not rejected by
    an entry naming this month's); without, the month's catalog.
    """
    names = list(rejected_names)
    patches = [record.patch for record in records.values()] if records is not None else catalog_for(platform)
    return {patch.patch_id for patch in patches if any(patch.rejected_by(name, platform) for name in names)}


def release_fixed_version(
    records: Mapping[str, InstancePatchRecord], patch_id: str, version: str, released: date
) -> CatalogPatch | None:
    """Next month: the package ships a fixed version; the instance now misses it (None if the patch is not there).

    The broken version's behaviour (failing install, broken health) stays with that version: the fix installs
    cleanly.
    """
    record = records.get(patch_id)
    if record is None or record.state == NOT_APPLICABLE:
        return None
    record.patch = record.patch.fixed_as(version, released)
    record.state, record.installed_time = MISSING, None
    record.fails_install = record.breaks_health = False
    return record.patch


# -- approval: the documented cases where a baseline silently approves nothing ---------------------------------------
YUM_WITHOUT_UPDATEINFO_APPROVES_NOTHING = frozenset({"REDHAT_ENTERPRISE_LINUX", "ROCKY_LINUX", "ALMA_LINUX"})


def _enables_non_security(baseline: Mapping[str, Any]) -> bool:
    rules = (baseline.get("ApprovalRules") or {}).get("PatchRules") or []
    return any(bool(rule.get("EnableNonSecurity")) for rule in rules)


def _filter_value(patch: CatalogPatch, platform: str, key: str) -> str | None:
    """The patch's value for a patch filter key (None: the simulator does not model that key)."""
    if key == "CLASSIFICATION":
        return patch.classification
    if key in ("SEVERITY", "MSRC_SEVERITY"):
        return patch.severity
    if key == "PRIORITY" and platform in APT_OPERATING_SYSTEMS:
        return patch.priority
    return None


def _matches_filters(filters: Iterable[Mapping[str, Any]], patch: CatalogPatch, platform: str) -> bool:
    """Every filter of a group matches (filters are ANDed, a filter's values ORed; ``*`` matches any value).

    Keys the simulator has no value for (PRODUCT, SECTION, PATCH_SET, ...) match only through ``*``: a rule that
    names a specific product approves nothing here rather than everything.
    """
    for patch_filter in filters:
        values = [str(value) for value in patch_filter.get("Values") or []]
        if "*" in values:
            continue
        value = _filter_value(patch, platform, str(patch_filter.get("Key")))
        if value is None or not any(fnmatch.fnmatchcase(value, wanted) for wanted in values):
            return False
    return True


def _approved_at(rule: Mapping[str, Any], patch: CatalogPatch) -> datetime | None:
    """When a matching rule approves the patch: release + ApproveAfterDays, or at once up to ApproveUntilDate."""
    released = datetime.combine(patch.released, time(0, 0), tzinfo=UTC)
    until = rule.get("ApproveUntilDate")
    if until:
        return released if patch.released <= date.fromisoformat(str(until)) else None
    return released + timedelta(days=int(rule.get("ApproveAfterDays") or 0))


def approved_by_rules(platform: str, baseline: Mapping[str, Any], patch: CatalogPatch, now: datetime | None) -> bool:
    """Whether a baseline's GlobalFilters and one of its ApprovalRules approve a patch at ``now``.

    SSM user guide, "Patch baseline rules" (patch-manager-approval-rules / "How patch baseline rules work on
    Linux-based systems") and the PatchRule API reference: a patch is approved when it passes the global filters and
    every filter of at least one rule's PatchFilterGroup, ApproveAfterDays after its release date (or, with
    ApproveUntilDate, when released on or before that date). A baseline without rules approves only its
    ApprovedPatches. Ubuntu rules carry no delay (ApproveAfterDays is not supported there): approval is immediate.
    With ``now`` None the approval delay is not judged (only whether a rule matches; see ``unapproved_ids``).
    """
    global_filters = (baseline.get("GlobalFilters") or {}).get("PatchFilters") or []
    if not _matches_filters(global_filters, patch, platform):
        return False
    for rule in (baseline.get("ApprovalRules") or {}).get("PatchRules") or []:
        filters = (rule.get("PatchFilterGroup") or {}).get("PatchFilters") or []
        if not _matches_filters(filters, patch, platform):
            continue
        approved_at = _approved_at(rule, patch)
        if approved_at is not None and (now is None or approved_at <= now):
            return True
    return False


def unapproved_ids(
    platform: str,
    baseline: Mapping[str, Any],
    records: Mapping[str, InstancePatchRecord],
    updateinfo: bool,
    now: datetime | None,
) -> set[str]:
    """The ids of the patches a baseline does NOT approve on an instance at ``now``.

    A patch named in ApprovedPatches is approved. Any other patch must be approved by the baseline's rules
    (``approved_by_rules``: classification, severity/priority, ApproveAfterDays/ApproveUntilDate), and on top of that
    the documented silent cases apply (SSM user guide, "How security patches are selected" / "How patch baseline
    rules work on Linux-based systems"):

    - Ubuntu: unless a rule sets EnableNonSecurity, an implicit rule keeps only packages whose candidate version is in
      the `*-security` pocket: non-security updates are never approved.
    - Repositories without `updateinfo.xml` carry no classification or severity: on RHEL (and Rocky/Alma, which use
      the same selection) no patch is applied; on Amazon Linux and CentOS patches are approved only when the
      baseline permits non-security updates, so a Security-only baseline approves nothing.

    Without updateinfo (YUM), patches carry no classification or severity for rules to match: the silent case alone
    decides. ``now`` is the moment approval delays are judged at; None judges no delay (the local runtime, for now:
    its fleet has no history of earlier months' approved patches, so a baseline still inside its delay would approve
    nothing at all, which in AWS the Installed older patches never show).
    """
    explicit = list(baseline.get("ApprovedPatches") or [])
    non_security = _enables_non_security(baseline)
    unapproved = set()
    for patch_id, record in records.items():
        patch = record.patch
        if any(patch.matches_name(name) for name in explicit):
            continue
        if not updateinfo and platform != "WINDOWS" and platform not in APT_OPERATING_SYSTEMS:
            if platform in YUM_WITHOUT_UPDATEINFO_APPROVES_NOTHING or not non_security:
                unapproved.add(patch_id)
            continue
        security_pocket_only = platform in APT_OPERATING_SYSTEMS and not non_security
        if (security_pocket_only and patch.classification != "Security") or not approved_by_rules(
            platform, baseline, patch, now
        ):
            unapproved.add(patch_id)
    return unapproved
