"""What one patch cycle costs to orchestrate on AWS, from the counts a local run measured, at list prices.

Prices are US East (N. Virginia) list prices as the pricing pages publish them (checked 2026-11-29); no free tier is
applied (a monthly cycle shares the account's free tier with everything else the account runs):

- Step Functions Standard: $0.025 per 1,000 state transitions (retries included).
  https://aws.amazon.com/step-functions/pricing/
- Lambda: $0.20 per 1M requests; duration per GB-second, $0.0000133334 on arm64 and $0.0000166667 on x86_64
  (first pricing tier), billed per 1 ms of each invocation at the function's configured memory.
  https://aws.amazon.com/lambda/pricing/
- DynamoDB on-demand: $0.625 per 1M write request units, $0.125 per 1M read request units (units per metering.py).
  https://aws.amazon.com/dynamodb/pricing/on-demand/
- SNS standard topics: $0.50 per 1M publish requests; deliveries to SQS and Lambda are free.
  https://aws.amazon.com/sns/pricing/
- SQS standard queues: $0.40 per 1M requests. Besides the product's own calls, every event EventBridge delivers to a
  queue is a SendMessage, and every batch the Lambda event source mapping takes is at least one ReceiveMessage and
  one DeleteMessageBatch (each carries at most 10 messages). https://aws.amazon.com/sqs/pricing/ ,
  https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
- Systems Manager: Run Command, Patch Manager on EC2 and standard-throughput API calls (Parameter Store standard
  parameters included) carry no charge. https://aws.amazon.com/systems-manager/pricing/
- EventBridge: events from AWS services (SSM's status changes) are free; custom PutEvents $1.00 per 1M entries.
  https://aws.amazon.com/eventbridge/pricing/
- Secrets Manager: $0.05 per 10,000 API calls. https://aws.amazon.com/secrets-manager/pricing/
- S3 Standard: $0.005 per 1,000 PUT/COPY/POST/LIST requests, $0.0004 per 1,000 GET and other requests.
  https://aws.amazon.com/s3/pricing/
- CloudWatch API: $0.01 per 1,000 requests (GetMetricData per 1,000 metrics requested).
  https://aws.amazon.com/cloudwatch/pricing/

Not counted here (say so wherever the total is shown): CloudWatch Logs ingestion and the embedded metrics, X-Ray traces,
the SQS event source mappings' idle long polling, DynamoDB storage, S3 storage, KMS and data transfer. Durations are
the in-process durations measured on the local machine, not Lambda's (a 256 MB function gets a fraction of a vCPU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from patchpilot_sim.template import SamTemplate

PRICING_REGION = "us-east-1"
STEP_FUNCTIONS_PER_TRANSITION = 0.025 / 1_000
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
DYNAMODB_PER_WRITE_UNIT = 0.625 / 1_000_000
DYNAMODB_PER_READ_UNIT = 0.125 / 1_000_000
SNS_PER_PUBLISH = 0.50 / 1_000_000
SQS_PER_REQUEST = 0.40 / 1_000_000
EVENTBRIDGE_PER_CUSTOM_EVENT = 1.00 / 1_000_000
SECRETS_MANAGER_PER_CALL = 0.05 / 10_000
S3_PER_WRITE_REQUEST = 0.005 / 1_000
S3_PER_READ_REQUEST = 0.0004 / 1_000
CLOUDWATCH_PER_REQUEST = 0.01 / 1_000
SQS_MESSAGES_PER_CALL = 10  # ReceiveMessage's MaxNumberOfMessages and DeleteMessageBatch's entries
S3_WRITE_OPERATIONS = frozenset(
    {"PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2", "CreateMultipartUpload", "UploadPart"}
)
# Calls whose price is elsewhere or nil: Step Functions bills transitions, not its API; lambda.Invoke is a Lambda
# request (counted from the invocations); SSM standard APIs, EC2 Describe*, IAM and STS carry no charge.
FREE_SERVICES = frozenset({"sfn", "lambda", "ssm", "ec2", "iam", "sts"})
NOT_COUNTED = (
    "CloudWatch Logs ingestion and embedded metrics",
    "X-Ray traces",
    "SQS event source mappings' idle long polling",
    "DynamoDB and S3 storage",
    "KMS and data transfer",
)


@dataclass(frozen=True)
class FunctionUse:
    """How much one function ran in a cycle."""

    invocations: int
    billed_ms: int
    memory_mb: int = 256
    architecture: str = "arm64"

    @property
    def gb_seconds(self) -> float:
        return self.memory_mb / 1024 * self.billed_ms / 1000


@dataclass(frozen=True)
class CycleCounts:
    """The measured counts of one cycle that carry a price."""

    state_transitions: int
    aws_calls: Mapping[str, int]
    functions: Mapping[str, FunctionUse] = field(default_factory=dict)
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    sqs_event_messages: int = 0  # events an EventBridge rule delivered to a queue (one SendMessage each)
    sqs_batches: int = 0  # batches an SQS event source mapping took (ReceiveMessage + DeleteMessageBatch, 10 each)


@dataclass(frozen=True)
class CostLine:
    """One priced item of the breakdown."""

    item: str
    quantity: float
    unit: str
    unit_price_usd: float
    source: str

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_price_usd


@dataclass(frozen=True)
class CycleCost:
    """The priced breakdown of one cycle and the calls no price applies to."""

    lines: list[CostLine]
    unpriced_calls: dict[str, int]

    @property
    def total_usd(self) -> float:
        return sum(line.usd for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        """The breakdown for bench.json."""
        return {
            "total_usd": round(self.total_usd, 6),
            "region": PRICING_REGION,
            "lines": [
                {
                    "item": line.item,
                    "quantity": round(line.quantity, 3),
                    "unit": line.unit,
                    "unit_price_usd": line.unit_price_usd,
                    "usd": round(line.usd, 6),
                    "source": line.source,
                }
                for line in self.lines
            ],
            "unpriced_calls": self.unpriced_calls,
            "not_counted": list(NOT_COUNTED),
        }

    def render(self) -> list[str]:
        """Printable lines: item, quantity, unit price, dollars; then what is not counted."""
        rows = [f"orchestration cost ({PRICING_REGION} list prices, no free tier):"]
        for line in self.lines:
            rows.append(
                f"  {line.item:44} {line.quantity:>14,.1f} {line.unit:16} x ${line.unit_price_usd:.10f}"
                f" = ${line.usd:.6f}"
            )
        rows.append(f"  {'total':44} {'':>14} {'':16}   {'':12} = ${self.total_usd:.6f}")
        if self.unpriced_calls:
            rows.append("  no price known for: " + ", ".join(f"{k} x{v}" for k, v in self.unpriced_calls.items()))
        rows.append("  not counted: " + "; ".join(NOT_COUNTED))
        return rows


def _calls(counts: CycleCounts, service: str, operations: frozenset[str] | None = None) -> int:
    total = 0
    for name, n in counts.aws_calls.items():
        call_service, operation = name.split(".", 1)
        if call_service == service and (operations is None or operation in operations):
            total += n
    return total


def _mapping_round_trips(counts: CycleCounts) -> int:
    """ReceiveMessage/DeleteMessageBatch pairs of the event source mappings: one per batch, at most 10 messages each."""
    return max(counts.sqs_batches, math.ceil(counts.sqs_event_messages / SQS_MESSAGES_PER_CALL))


def _lambda_lines(counts: CycleCounts) -> list[CostLine]:
    source = "https://aws.amazon.com/lambda/pricing/"
    requests = sum(use.invocations for use in counts.functions.values())
    lines = [CostLine("Lambda requests", requests, "requests", LAMBDA_PER_REQUEST, source)]
    for architecture in sorted({use.architecture for use in counts.functions.values()}):
        gb_seconds = sum(use.gb_seconds for use in counts.functions.values() if use.architecture == architecture)
        price = LAMBDA_PER_GB_SECOND[architecture]
        lines.append(CostLine(f"Lambda duration ({architecture})", gb_seconds, "GB-seconds", price, source))
    return lines


def cycle_cost(counts: CycleCounts) -> CycleCost:
    """Price one cycle's counts (see the module docstring for every price and its page)."""
    s3_writes = _calls(counts, "s3", S3_WRITE_OPERATIONS)
    lines = [
        CostLine(
            "Step Functions Standard state transitions",
            counts.state_transitions,
            "transitions",
            STEP_FUNCTIONS_PER_TRANSITION,
            "https://aws.amazon.com/step-functions/pricing/",
        ),
        *_lambda_lines(counts),
        CostLine(
            "DynamoDB on-demand write request units",
            counts.dynamodb_write_units,
            "WRU",
            DYNAMODB_PER_WRITE_UNIT,
            "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        ),
        CostLine(
            "DynamoDB on-demand read request units",
            counts.dynamodb_read_units,
            "RRU",
            DYNAMODB_PER_READ_UNIT,
            "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        ),
        CostLine(
            "SNS publishes", _calls(counts, "sns"), "requests", SNS_PER_PUBLISH, "https://aws.amazon.com/sns/pricing/"
        ),
        CostLine(
            "SQS requests",
            _calls(counts, "sqs") + counts.sqs_event_messages + 2 * _mapping_round_trips(counts),
            "requests",
            SQS_PER_REQUEST,
            "https://aws.amazon.com/sqs/pricing/",
        ),
        CostLine(
            "EventBridge custom events (PutEvents)",
            _calls(counts, "eventbridge", frozenset({"PutEvents"})),
            "events",
            EVENTBRIDGE_PER_CUSTOM_EVENT,
            "https://aws.amazon.com/eventbridge/pricing/",
        ),
        CostLine(
            "SSM API calls (standard throughput)",
            _calls(counts, "ssm"),
            "calls",
            0.0,
            "https://aws.amazon.com/systems-manager/pricing/",
        ),
        CostLine(
            "Secrets Manager API calls",
            _calls(counts, "secrets-manager"),
            "calls",
            SECRETS_MANAGER_PER_CALL,
            "https://aws.amazon.com/secrets-manager/pricing/",
        ),
        CostLine(
            "S3 PUT/LIST requests", s3_writes, "requests", S3_PER_WRITE_REQUEST, "https://aws.amazon.com/s3/pricing/"
        ),
        CostLine(
            "S3 GET and other requests",
            _calls(counts, "s3") - s3_writes,
            "requests",
            S3_PER_READ_REQUEST,
            "https://aws.amazon.com/s3/pricing/",
        ),
        CostLine(
            "CloudWatch API requests",
            _calls(counts, "cloudwatch"),
            "requests",
            CLOUDWATCH_PER_REQUEST,
            "https://aws.amazon.com/cloudwatch/pricing/",
        ),
    ]
    priced = FREE_SERVICES | {"dynamodb", "sns", "sqs", "eventbridge", "secrets-manager", "s3", "cloudwatch"}
    unpriced = {name: n for name, n in sorted(counts.aws_calls.items()) if name.split(".", 1)[0] not in priced}
    unpriced |= {
        name: n
        for name, n in sorted(counts.aws_calls.items())
        if name.startswith("eventbridge.") and name != "eventbridge.PutEvents"
    }
    return CycleCost(lines, unpriced)


def function_configuration(template: SamTemplate) -> dict[str, tuple[int, str]]:
    """Each function's configured memory (MB) and architecture, Globals applied."""
    default_memory = int(template.globals.get("MemorySize", 128))
    default_architecture = str((template.globals.get("Architectures") or ["x86_64"])[0])
    configuration = {}
    for logical_id, resource in template.of_type("AWS::Serverless::Function").items():
        props = resource.get("Properties", {})
        memory = int(props.get("MemorySize", default_memory))
        architecture = str((props.get("Architectures") or [default_architecture])[0])
        configuration[logical_id] = (memory, architecture)
    return configuration


def counts_from_run(run: Mapping[str, Any], configuration: Mapping[str, tuple[int, str]]) -> CycleCounts:
    """The priced counts of one benchmark run (a simulation summary with its `metering` section)."""
    metering = run["metering"]
    functions = {
        name: FunctionUse(int(row["count"]), int(row["billed_ms"]), *configuration.get(name, (128, "x86_64")))
        for name, row in metering["invocations"].items()
    }
    return CycleCounts(
        state_transitions=int(run["state_transitions"]),
        aws_calls=dict(run["aws_calls"]),
        functions=functions,
        dynamodb_read_units=float(metering["dynamodb_request_units"]["read"]),
        dynamodb_write_units=float(metering["dynamodb_request_units"]["write"]),
        sqs_event_messages=int(run.get("sqs_messages", 0)),
        sqs_batches=int(run.get("sqs_batches", 0)),
    )


def _line(x0: float, y0: float, x1: float, y1: float, x: float) -> float:
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def extrapolate(small: CycleCounts, small_size: int, large: CycleCounts, large_size: int, size: int) -> CycleCounts:
    """Counts at another fleet size, on the line through two measured sizes (each count: fixed + per instance)."""

    def at(a: float, b: float) -> float:
        return _line(small_size, a, large_size, b, size)

    calls = {
        name: math.ceil(at(small.aws_calls.get(name, 0), large.aws_calls.get(name, 0)))
        for name in sorted(set(small.aws_calls) | set(large.aws_calls))
    }
    functions = {}
    for name in sorted(set(small.functions) | set(large.functions)):
        a = small.functions.get(name) or replace(large.functions[name], invocations=0, billed_ms=0)
        b = large.functions.get(name) or replace(a, invocations=0, billed_ms=0)
        functions[name] = replace(
            b,
            invocations=math.ceil(at(a.invocations, b.invocations)),
            billed_ms=math.ceil(at(a.billed_ms, b.billed_ms)),
        )
    return CycleCounts(
        state_transitions=math.ceil(at(small.state_transitions, large.state_transitions)),
        aws_calls=calls,
        functions=functions,
        dynamodb_read_units=at(small.dynamodb_read_units, large.dynamodb_read_units),
        dynamodb_write_units=at(small.dynamodb_write_units, large.dynamodb_write_units),
        sqs_event_messages=math.ceil(at(small.sqs_event_messages, large.sqs_event_messages)),
        sqs_batches=math.ceil(at(small.sqs_batches, large.sqs_batches)),
    )
