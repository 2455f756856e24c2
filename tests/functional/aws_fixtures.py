"""Shared set-up for adapter tests on moto (the fixtures themselves are in conftest.py)."""

from typing import Any

from patchpilot_sim.template import SamTemplate, table_definition

REGION = "us-east-1"
RUNS_TABLE = "runs"
ACCOUNT = "123456789012"


def create_runs_table(client: Any, name: str = RUNS_TABLE) -> None:
    """Create the runs table in moto exactly as template.yaml declares it (keys, billing, indexes)."""
    client.create_table(**table_definition(name, SamTemplate().resources["RunsTable"]["Properties"]))


class LambdaContext:
    """The parts of a Lambda context the Powertools decorators read."""

    memory_limit_in_mb = 256
    aws_request_id = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
