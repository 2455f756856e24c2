"""Shared set-up for adapter tests on moto."""

from typing import Any

from patchpilot_sim.template import SamTemplate

RUNS_TABLE = "runs"


def create_runs_table(client: Any, name: str = RUNS_TABLE) -> None:
    """Create the runs table in moto exactly as template.yaml declares it (keys and billing)."""
    props = SamTemplate().resources["RunsTable"]["Properties"]
    client.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode="PAY_PER_REQUEST",
    )
