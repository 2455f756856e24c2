"""Simulated fleets and what each scenario does to them."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from patchpilot_sim.faults import CHAOS, NO_FAULTS, FaultPlan
from patchpilot_sim.fleet import SimulatedInstance
from patchpilot_sim.patches import (
    MISSING,
    SECURITY_CLASSIFICATIONS,
    CatalogPatch,
    catalog_for,
    initial_patch_states,
    release_fixed_version,
)

GROUP_SHARES = {"dev": 0.1, "staging": 0.15, "prod-1": 0.25, "prod-2": 0.25, "prod-3": 0.25}
OS_MIX = ["AMAZON_LINUX_2023", "WINDOWS", "UBUNTU", "REDHAT_ENTERPRISE_LINUX", "AMAZON_LINUX_2"]
PREINSTALLED_SHARE = 0.1  # of the month's early Linux advisories, already installed when the cycle starts


@dataclass(frozen=True)
class Scenario:
    """A fleet behaviour, how the cycle is started, and what PatchPilot must do about it."""

    name: str
    description: str
    expected_status: str
    expected_error: str | None = None
    stage_group: str = "dev"  # the patch group the scenario acts on
    mode: str = "scheduled"
    stages: tuple[str, ...] | None = None
    patch_ids: tuple[str, ...] = ()
    approves: bool = True  # the simulated on-call answers approval requests
    must_enter: tuple[str, ...] = ()  # states the execution must pass through
    faults: FaultPlan = NO_FAULTS  # what AWS does wrong during the run (faults.py)
    malformed_events: int = 0  # malformed status events put on the bus: they must end in the dead-letter queue
    min_group_sizes: tuple[tuple[str, int], ...] = ()  # patch groups the scenario needs at least this big
    change_freeze_hours: float = 0.0  # a change calendar closed this long from stage_group's window opening
    health_checks: bool = False  # every stage runs health commands (shell on Linux, PowerShell on Windows)
    snapshot_stages: tuple[str, ...] = ()  # stages whose policy turns pre-patch snapshots on (production: already on)
    bisect_stages: tuple[str, ...] = ()  # stages whose policy bisects (production: already, with their snapshots)


EMERGENCY_PATCHES = ("KB5071546", "openssh-server.x86_64")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "healthy",
            "every instance installs its patches and stays healthy (health commands on Linux and Windows confirm it "
            "after each install and bake): all stages pass",
            "SUCCEEDED",
            health_checks=True,
        ),
        Scenario(
            "failing-instance",
            "one dev instance fails every install: dev fails its health check, nothing is excluded, the cycle stops",
            "FAILED",
            "StageHealthCheckFailed",
        ),
        Scenario(
            "lost-events",
            "EventBridge loses the final status event of some dev instances: reconciliation recovers them",
            "SUCCEEDED",
            must_enter=("Reconcile Command Results",),
        ),
        Scenario(
            "bad-patch",
            "one patch of the month fails on every instance of its OS in staging and prod (dev does not run it): "
            "staging must catch it, exclude it (RejectedPatches, BLOCK, staging and prod baselines), patch again "
            "without it and go on; prod must never get it",
            "SUCCEEDED",
            stage_group="staging",
            must_enter=("Find Failing Patches", "Start Retry Without Excluded Patches"),
        ),
        Scenario(
            "flaky-instance",
            "one dev instance fails its first install, then succeeds: the stage is retried once and passes",
            "SUCCEEDED",
            must_enter=("Start Retry Without Excluded Patches",),
        ),
        Scenario(
            "duplicate-start",
            "the monthly schedule fires twice for the same cycle: the second start is a no-op",
            "SUCCEEDED",
        ),
        Scenario(
            "emergency",
            f"an emergency run installs only {', '.join(EMERGENCY_PATCHES)} on dev then prod-1 (approval, short bakes)",
            "SUCCEEDED",
            mode="emergency",
            stages=("dev", "prod-1"),
            patch_ids=EMERGENCY_PATCHES,
        ),
        Scenario(
            "next-month",
            "a patch of a YUM/DNF OS fails in staging: its exact version is excluded (name-version-release.arch); "
            "next month the fixed version ships and installs everywhere, while the bad version never reached prod",
            "SUCCEEDED",
            stage_group="staging",
            must_enter=("Find Failing Patches",),
        ),
        Scenario(
            "silent-os",
            "the RHEL instances' repositories publish no updateinfo.xml, so their baseline approves nothing and every "
            "install succeeds installing nothing: dev must report it (approves_nothing), not pass",
            "FAILED",
            "StageHealthCheckFailed",
        ),
        Scenario(
            "chaos",
            "AWS under load, all at once: 30 % of SSM status events lost, every other one delivered 3 times out of "
            "order, DynamoDB transaction conflicts and throttling, SSM and Step Functions throttling and 5xx, Lambda "
            "crashes mid-handler, and malformed events on the bus; the cycle still succeeds, every instance counted "
            "once, only the malformed events dead-lettered",
            "SUCCEEDED",
            faults=CHAOS,
            malformed_events=2,
        ),
        Scenario(
            "webhook-outage",
            "Slack and Teams answer 500/429 and time out for a while: the cycle completes; every alert is posted "
            "after the outage (Lambda's retries) or waits in the chat dead-letter queue until the redrive posts it",
            "SUCCEEDED",
        ),
        Scenario(
            "large-stage",
            "prod-1 is big enough for many waves at its MaxConcurrency (10 %): every wave must start before the "
            "install's TimeoutSeconds (sized from the stage), nothing ends DeliveryTimedOut, all stages pass",
            "SUCCEEDED",
            stage_group="prod-1",
            stages=("dev", "prod-1"),
            min_group_sizes=(("prod-1", 30),),
        ),
        Scenario(
            "windows",
            "every install starts inside its patch group's maintenance window, before the cutoff; a change freeze "
            "(SSM Change Calendar CLOSED) over the opening of staging's window delays staging's install until it ends",
            "SUCCEEDED",
            stage_group="staging",
            stages=("dev", "staging", "prod-1"),
            change_freeze_hours=1.5,
            must_enter=("Wait For Install Window",),
        ),
        Scenario(
            "two-bad-patches",
            "two patches of the month, on two different OSes, fail on every instance of their OS in staging and prod: "
            "staging's exclusion decides every OS in one pass, rejects both, patches again once without them and goes "
            "on; exactly those two are excluded and no later stage receives either",
            "SUCCEEDED",
            stage_group="staging",
            must_enter=("Find Failing Patches", "Start Retry Without Excluded Patches"),
        ),
        Scenario(
            "health-breaking-patch",
            "a patch of the month installs cleanly and then breaks every instance of its OS in staging and prod; "
            "staging has ONE instance of that OS, so correlation cannot tell the patch from the others it arrived "
            "with: staging (snapshots and bisect on in its policy) restores that instance from its pre-patch snapshot, "
            "installs halves of the suspects, narrows to the culprit, excludes exactly it, retries and goes on; no "
            "prod instance ever installs it and the instance ends healthy",
            "SUCCEEDED",
            stage_group="staging",
            must_enter=(
                "Snapshot Stage Volumes",
                "Start Bisection",
                "Wait For Restore",
                "Judge Bisection Round",
                "Exclude Bisected Culprits",
                "Start Retry Without Excluded Patches",
            ),
            snapshot_stages=("staging",),
            bisect_stages=("staging",),
        ),
        Scenario(
            "canary-catches",
            "a patch of the month breaks only the production build of one OS (dev and staging install it cleanly, so "
            "the frozen set holds it): prod-1's canary step catches it, it is excluded before the rest of prod-1 is "
            "touched, and at most prod-1's canary instances of that OS ever receive it",
            "SUCCEEDED",
            stage_group="prod-1",
            must_enter=(
                "Start Canary Step",
                "Find Failing Patches",
                "Start Retry Without Excluded Patches",
                "Start Rest Of Group",
            ),
            min_group_sizes=(("prod-1", 10),),  # every OS has instances beyond its canary
        ),
        Scenario(
            "rollback",
            "a Critical security patch installs cleanly on one dev instance and leaves it unhealthy for good (dev's "
            "policy takes pre-patch snapshots): dev fails, its retry cannot heal it, the cycle stops; then the "
            "operator's rollback restores the instance's root volume from its snapshot: it is healthy again, at its "
            "pre-patch patch level",
            "FAILED",
            "StageHealthCheckFailed",
            stages=("dev",),
            snapshot_stages=("dev",),
            must_enter=("Snapshot Stage Volumes",),
        ),
        Scenario(
            "approval-timeout",
            "nobody answers the approval request before prod-1: the timeout rejects the promotion",
            "FAILED",
            "ApprovalTimedOut",
            approves=False,
            must_enter=("Notify Approval Timed Out",),
        ),
    )
}


def build_fleet(
    instances: int, seed: int, min_per_group: int = 1, min_group_sizes: tuple[tuple[str, int], ...] = ()
) -> list[SimulatedInstance]:
    """A mixed fleet over the dev, staging and prod groups and the supported OSes, each with its patch level."""
    rng = random.Random(seed)
    patch_rng = random.Random(f"patches:{seed}")  # a stream of its own: install times stay as they were
    counts = {group: max(min_per_group, size) for group, size in group_sizes(instances).items()}
    for group, size in min_group_sizes:
        counts[group] = max(counts.get(group, 0), size)
    fleet: list[SimulatedInstance] = []
    for group, count in counts.items():
        for index in range(count):
            platform = OS_MIX[(index + len(fleet)) % len(OS_MIX)]
            fleet.append(
                SimulatedInstance(
                    instance_id="",
                    patch_group=group,
                    platform=platform,
                    tags={"PatchGroup": group, "Name": f"{group}-{index + 1:04d}", "OS": platform},
                    install_minutes=rng.uniform(8, 40),
                    patches=initial_patch_states(platform, patch_rng, PREINSTALLED_SHARE),
                )
            )
    return fleet


def group_sizes(instances: int) -> dict[str, int]:
    """Split `instances` over the patch groups by their shares, summing to exactly `instances`.

    Largest remainder: rounding each share alone gave a 10-instance fleet 9 instances.
    """
    exact = {group: instances * share for group, share in GROUP_SHARES.items()}
    sizes = {group: int(size) for group, size in exact.items()}
    by_remainder = sorted(exact, key=lambda group: exact[group] - sizes[group], reverse=True)
    for group in by_remainder[: instances - sum(sizes.values())]:
        sizes[group] += 1
    return sizes


def groups_from(stage_group: str) -> list[str]:
    """The stage's group and every group rolled out after it (only the group itself if it is not a known one)."""
    order = list(GROUP_SHARES)
    return order[order.index(stage_group) :] if stage_group in order else [stage_group]


def _installed_by_every_stage(platform: str) -> list[CatalogPatch]:
    """The patches of an OS that every stage's baseline approves, on every instance of the OS.

    Production approves only Critical/Important security updates (an Enhancement or a Medium update is never
    installed there, nor an Enhancement in staging), staging holds kernels, and a patch that applies to only some
    instances of the OS could miss a stage's instances.
    """
    return [
        p
        for p in catalog_for(platform)
        if not p.kernel
        and p.applicability >= 1.0
        and p.severity in ("Critical", "Important")
        and p.classification in SECURITY_CLASSIFICATIONS
    ]


def bad_patch_for(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> tuple[str, CatalogPatch]:
    """(OS, patch) the bad-patch scenario breaks: a patch every stage installs, of an OS with instances in the stage."""
    platforms = sorted({i.platform for i in fleet if i.patch_group == stage_group})
    if not platforms:
        raise ValueError(f"no instance in patch group {stage_group!r}")
    platform = rng.choice(platforms)
    return platform, rng.choice(_installed_by_every_stage(platform))


def _break_patch(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> list[str]:
    platform, patch = bad_patch_for(fleet, stage_group, rng)
    groups = groups_from(stage_group)
    victims = [i for i in fleet if i.platform == platform and i.patch_group in groups]
    for victim in victims:
        record = victim.patches[patch.patch_id]
        record.fails_install = True
        record.state, record.installed_time = MISSING, None  # nobody installed it early
    return [
        f"{patch.patch_id} ({platform}, {patch.classification}/{patch.severity}) fails to install on "
        f"{len(victims)} instance{'s' if len(victims) != 1 else ''} in {', '.join(groups)}"
    ]


YUM_PLATFORMS = (
    "AMAZON_LINUX_2023",
    "AMAZON_LINUX_2",
    "REDHAT_ENTERPRISE_LINUX",
    "CENTOS",
    "ROCKY_LINUX",
    "ALMA_LINUX",
)
SILENT_PLATFORM = "REDHAT_ENTERPRISE_LINUX"


def _break_versioned_patch(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> list[str]:
    """next-month: break one version of a YUM/DNF package (their RejectedPatches can name an exact version)."""
    platforms = sorted({i.platform for i in fleet if i.patch_group == stage_group and i.platform in YUM_PLATFORMS})
    if not platforms:
        raise ValueError(f"no YUM/DNF instance in patch group {stage_group!r}")
    platform = rng.choice(platforms)
    patch = rng.choice(  # one every stage installs: prod takes only Critical/Important security updates
        [
            p
            for p in catalog_for(platform)
            if not p.kernel and p.applicability >= 1.0 and p.severity in ("Critical", "Important")
        ]
    )
    groups = groups_from(stage_group)
    victims = [i for i in fleet if i.platform == platform and i.patch_group in groups]
    for victim in victims:
        record = victim.patches[patch.patch_id]
        record.fails_install = True
        record.state, record.installed_time = MISSING, None
    return [f"{patch.title} ({platform}) fails to install on {len(victims)} instance(s) in {', '.join(groups)}"]


def _break_two_patches(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> list[str]:
    """two-bad-patches: one patch each on two different OSes of the stage fails on every instance of that OS."""
    platforms = sorted({i.platform for i in fleet if i.patch_group == stage_group})
    if len(platforms) < 2:
        raise ValueError(f"patch group {stage_group!r} needs instances of two OSes, has {platforms}")
    groups = groups_from(stage_group)
    changes = []
    for platform in rng.sample(platforms, k=2):
        patch = rng.choice(_installed_by_every_stage(platform))
        victims = [i for i in fleet if i.platform == platform and i.patch_group in groups]
        for victim in victims:
            record = victim.patches[patch.patch_id]
            record.fails_install = True
            record.state, record.installed_time = MISSING, None
        changes.append(
            f"{patch.patch_id} ({platform}) fails to install on {len(victims)} instance(s) in {', '.join(groups)}"
        )
    return changes


PRODUCTION_GROUPS = ("prod-1", "prod-2", "prod-3")


def _break_health_of_lone_os(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> list[str]:
    """health-breaking-patch: a patch every stage installs breaks (after a clean install) an OS the stage has once."""
    counts = Counter(i.platform for i in fleet if i.patch_group == stage_group)
    platforms = sorted(platform for platform, count in counts.items() if count == 1)
    if not platforms:
        raise ValueError(f"patch group {stage_group!r} has no OS with exactly one instance: {dict(counts)}")
    platform = rng.choice(platforms)
    patch = rng.choice(_installed_by_every_stage(platform))
    groups = groups_from(stage_group)
    victims = [i for i in fleet if i.platform == platform and i.patch_group in groups]
    for victim in victims:
        record = victim.patches[patch.patch_id]
        record.breaks_health = True
        record.state, record.installed_time = MISSING, None
    return [
        f"{patch.title} ({platform}) installs cleanly and then breaks {len(victims)} instance(s) in "
        f"{', '.join(groups)} ({stage_group} has one {platform} instance)"
    ]


def _break_production_build(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> list[str]:
    """canary-catches: a patch every stage installs fails only on the production instances of one YUM/DNF OS."""
    frozen_by = "staging"  # the last test stage: production installs the set it verified
    platforms = sorted(
        {i.platform for i in fleet if i.patch_group == stage_group and i.platform in YUM_PLATFORMS}
        & {i.platform for i in fleet if i.patch_group == frozen_by}
    )
    if not platforms:
        raise ValueError(f"no YUM/DNF OS has instances in both {frozen_by!r} and {stage_group!r}")
    platform = rng.choice(platforms)
    patch = rng.choice(  # prod installs only Critical/Important security updates of the frozen set
        [
            p
            for p in catalog_for(platform)
            if not p.kernel and p.applicability >= 1.0 and p.severity in ("Critical", "Important")
        ]
    )
    victims = []
    for instance in (i for i in fleet if i.platform == platform):
        record = instance.patches[patch.patch_id]
        record.state, record.installed_time = MISSING, None  # nobody installed it early: the test stages do
        if instance.patch_group in PRODUCTION_GROUPS:
            record.fails_install = True
            victims.append(instance)
    return [
        f"{patch.title} ({platform}) installs cleanly in dev and staging but fails on the {len(victims)} production "
        f"instance(s) of {platform}"
    ]


def fixed_version(version: str) -> str:
    """The next release of a package version: its last number plus one (`0:2.34-117.amzn2023.0.1` -> `...0.2`)."""
    match = re.match(r"^(.*?)(\d+)$", version)
    if match is None:
        raise ValueError(f"no release number to bump in {version!r}")
    return f"{match.group(1)}{int(match.group(2)) + 1}"


def release_next_month(fleet: list[SimulatedInstance]) -> list[str]:
    """Next month's catalog: every package with a broken version ships a fixed one, on every instance of its OS."""
    broken = {
        (i.platform, patch_id, record.patch.version)
        for i in fleet
        for patch_id, record in i.patches.items()
        if record.fails_install or record.breaks_health
    }
    changes = []
    for platform, patch_id, version in sorted(broken):
        fixed = fixed_version(version)
        released = [
            i
            for i in fleet
            if i.platform == platform and release_fixed_version(i.patches, patch_id, fixed, date(2027, 1, 5))
        ]
        changes.append(f"{patch_id}:{fixed} ({platform}) fixes {version}: missing on {len(released)} instance(s)")
    return changes


def _silence_os(fleet: list[SimulatedInstance], stage_group: str, rng: random.Random) -> list[str]:
    """silent-os: every RHEL instance's repositories lack updateinfo.xml; the stage gets one if it has none."""
    if not any(i.platform == SILENT_PLATFORM and i.patch_group == stage_group for i in fleet):
        convert = rng.choice([i for i in fleet if i.patch_group == stage_group])
        convert.platform = SILENT_PLATFORM
        convert.tags["OS"] = SILENT_PLATFORM
        convert.patches = initial_patch_states(SILENT_PLATFORM)
    silent = [i for i in fleet if i.platform == SILENT_PLATFORM]
    for instance in silent:
        instance.updateinfo = False
    return [f"{len(silent)} {SILENT_PLATFORM} instance(s) use repositories without updateinfo.xml"]


FLEET_BREAKERS: dict[str, Callable[[list[SimulatedInstance], str, random.Random], list[str]]] = {
    "bad-patch": _break_patch,
    "two-bad-patches": _break_two_patches,
    "health-breaking-patch": _break_health_of_lone_os,
    "canary-catches": _break_production_build,
    "next-month": _break_versioned_patch,
    "silent-os": _silence_os,
}
"""Scenarios that change the fleet's patches or repositories (the others change how instances behave)."""


def apply_scenario(scenario: Scenario, fleet: list[SimulatedInstance], seed: int) -> list[str]:
    """Give the scenario's behaviour to the fleet; returns a line per change, for the operator."""
    stage_group = scenario.stage_group
    rng = random.Random(seed)
    in_stage = [instance for instance in fleet if instance.patch_group == stage_group]
    changes: list[str] = []
    if scenario.name in FLEET_BREAKERS:
        changes.extend(FLEET_BREAKERS[scenario.name](fleet, stage_group, rng))
    elif scenario.name == "failing-instance":
        victim = rng.choice(in_stage)
        victim.install_outcome = "Failed"
        victim.flaky_failures_left = 0
        changes.append(f"{victim.tags['Name']} ({victim.platform}) will fail the install")
    elif scenario.name == "lost-events":
        for victim in rng.sample(in_stage, k=max(1, len(in_stage) // 3)):
            victim.drop_terminal_event = True
            changes.append(f"the final status event of {victim.tags['Name']} will be lost")
    elif scenario.name == "flaky-instance":
        victim = rng.choice(in_stage)
        victim.flaky_failures_left = 1
        victim.flaky_outcome = "Failed"
        changes.append(f"{victim.tags['Name']} ({victim.platform}) will fail its first install, then succeed")
    return changes
