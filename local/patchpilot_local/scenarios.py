"""Simulated fleets and what each scenario does to them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from patchpilot_local.fleet import SimulatedInstance

GROUP_SHARES = {"dev": 0.1, "staging": 0.15, "prod-1": 0.25, "prod-2": 0.25, "prod-3": 0.25}
OS_MIX = ["AMAZON_LINUX_2023", "WINDOWS", "UBUNTU", "REDHAT_ENTERPRISE_LINUX", "AMAZON_LINUX_2"]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    expected_status: str
    expected_error: str | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "every instance installs its patches and stays healthy", "SUCCEEDED"),
        Scenario(
            "failing-instance",
            "one instance of the stage fails the install: the stage must fail its health check and stop",
            "FAILED",
            "StageHealthCheckFailed",
        ),
        Scenario(
            "lost-events",
            "EventBridge loses the final status event of some instances: reconciliation must recover them",
            "SUCCEEDED",
        ),
    )
}


def build_fleet(instances: int, seed: int, min_per_group: int = 1) -> list[SimulatedInstance]:
    """A mixed fleet over the dev, staging and prod groups and the supported OSes."""
    rng = random.Random(seed)
    counts = {group: max(min_per_group, round(instances * share)) for group, share in GROUP_SHARES.items()}
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
                )
            )
    return fleet


def apply_scenario(scenario: Scenario, fleet: list[SimulatedInstance], stage_group: str, seed: int) -> list[str]:
    """Give the scenario's behaviour to the fleet; returns a line per change, for the operator."""
    rng = random.Random(seed)
    in_stage = [instance for instance in fleet if instance.patch_group == stage_group]
    changes: list[str] = []
    if scenario.name == "failing-instance":
        victim = rng.choice(in_stage)
        victim.install_outcome = "Failed"
        changes.append(f"{victim.tags['Name']} ({victim.platform}) will fail the install")
    elif scenario.name == "lost-events":
        for victim in rng.sample(in_stage, k=max(1, len(in_stage) // 3)):
            victim.drop_terminal_event = True
            changes.append(f"the final status event of {victim.tags['Name']} will be lost")
    return changes
