"""The cost model of `make bench`: known counts give known dollars at the published list prices."""

import pytest

from patchpilot_sim.costs import (
    CycleCounts,
    FunctionUse,
    counts_from_run,
    cycle_cost,
    extrapolate,
    function_configuration,
)
from patchpilot_sim.template import SamTemplate


def _usd(counts: CycleCounts, item: str) -> float:
    return next(line.usd for line in cycle_cost(counts).lines if line.item == item)


def test_cost_state_transitions_at_0_025_per_thousand() -> None:
    counts = CycleCounts(state_transitions=4_000, aws_calls={})
    assert _usd(counts, "Step Functions Standard state transitions") == pytest.approx(0.10)


def test_cost_lambda_requests_and_arm_gb_seconds() -> None:
    # 1M requests = $0.20; 256 MB for 4,000 ms = 1 GB-s at $0.0000133334 (arm64); 512 MB x86 for 2,000 ms = 1 GB-s.
    functions = {
        "A": FunctionUse(invocations=600_000, billed_ms=4_000, memory_mb=256, architecture="arm64"),
        "B": FunctionUse(invocations=400_000, billed_ms=2_000, memory_mb=512, architecture="x86_64"),
    }
    counts = CycleCounts(state_transitions=0, aws_calls={}, functions=functions)
    assert _usd(counts, "Lambda requests") == pytest.approx(0.20)
    assert _usd(counts, "Lambda duration (arm64)") == pytest.approx(0.0000133334)
    assert _usd(counts, "Lambda duration (x86_64)") == pytest.approx(0.0000166667)


def test_cost_dynamodb_request_units_on_demand() -> None:
    counts = CycleCounts(state_transitions=0, aws_calls={}, dynamodb_read_units=2e6, dynamodb_write_units=1e6)
    assert _usd(counts, "DynamoDB on-demand write request units") == pytest.approx(0.625)
    assert _usd(counts, "DynamoDB on-demand read request units") == pytest.approx(0.25)


def test_cost_sqs_counts_event_deliveries_and_mapping_batches() -> None:
    # 10 product calls + 1,000 events delivered by EventBridge + 100 batches x (receive + delete) = 1,210 requests.
    counts = CycleCounts(
        state_transitions=0, aws_calls={"sqs.SendMessage": 10}, sqs_event_messages=1_000, sqs_batches=100
    )
    [line] = [line for line in cycle_cost(counts).lines if line.item == "SQS requests"]
    assert line.quantity == 1_210
    assert line.usd == pytest.approx(1_210 * 0.40 / 1e6)


def test_cost_sqs_batches_larger_than_ten_take_several_receives() -> None:
    # 1,000 messages in 10 batches of 100: ReceiveMessage and DeleteMessageBatch carry 10 each, so 100 of each.
    counts = CycleCounts(state_transitions=0, aws_calls={}, sqs_event_messages=1_000, sqs_batches=10)
    [line] = [line for line in cycle_cost(counts).lines if line.item == "SQS requests"]
    assert line.quantity == 1_000 + 2 * 100


def test_cost_total_of_a_known_cycle() -> None:
    counts = CycleCounts(
        state_transitions=200,  # $0.005
        aws_calls={
            "sns.Publish": 10,  # $0.000005
            "ssm.SendCommand": 5,  # free
            "ssm.GetCommandInvocation": 1_000,  # free
            "secrets-manager.GetSecretValue": 20,  # $0.0001
            "s3.PutObject": 4,  # $0.00002
            "s3.GetObject": 10,  # $0.000004
            "cloudwatch.DescribeAlarms": 100,  # $0.001
            "eventbridge.PutEvents": 1_000,  # $0.001
            "sfn.SendTaskSuccess": 50,  # free (transitions are the price)
        },
        functions={"F": FunctionUse(invocations=1_000, billed_ms=400_000)},  # $0.0002 + 100 GB-s x $0.0000133334
        dynamodb_read_units=8_000,  # $0.001
        dynamodb_write_units=40_000,  # $0.025
    )
    expected = 0.005 + 0.000005 + 0.0001 + 0.00002 + 0.000004 + 0.001 + 0.001 + 0.0002 + 100 * 0.0000133334
    expected += 0.001 + 0.025
    cost = cycle_cost(counts)
    assert cost.total_usd == pytest.approx(expected)
    assert cost.unpriced_calls == {}
    assert cost.as_dict()["total_usd"] == pytest.approx(expected, abs=1e-6)


def test_cost_lists_calls_it_has_no_price_for() -> None:
    counts = CycleCounts(state_transitions=0, aws_calls={"kms.Decrypt": 3, "eventbridge.ListRules": 2})
    cost = cycle_cost(counts)
    assert cost.unpriced_calls == {"eventbridge.ListRules": 2, "kms.Decrypt": 3}
    assert any("kms.Decrypt x3" in row for row in cost.render())


def test_cost_render_shows_each_line_and_the_total() -> None:
    rows = cycle_cost(CycleCounts(state_transitions=1_000, aws_calls={})).render()
    assert any(
        row.strip().startswith("Step Functions Standard state transitions") and "$0.025000" in row for row in rows
    )
    assert any(row.strip().startswith("total") and row.endswith("$0.025000") for row in rows)
    assert rows[-1].startswith("  not counted: CloudWatch Logs")


def test_cost_extrapolate_separates_fixed_from_per_instance_counts() -> None:
    # transitions are fixed (200 at both sizes); calls grow by 3 per instance; units by 4 per instance.
    small = CycleCounts(
        state_transitions=200,
        aws_calls={"ssm.SendCommand": 5, "dynamodb.GetItem": 30},
        functions={"F": FunctionUse(invocations=20, billed_ms=1_000)},
        dynamodb_write_units=40,
        sqs_event_messages=10,
        sqs_batches=2,
    )
    large = CycleCounts(
        state_transitions=200,
        aws_calls={"ssm.SendCommand": 5, "dynamodb.GetItem": 3_000, "sns.Publish": 1},
        functions={"F": FunctionUse(invocations=1_010, billed_ms=100_000)},
        dynamodb_write_units=4_000,
        sqs_event_messages=1_000,
        sqs_batches=101,
    )
    at = extrapolate(small, 10, large, 1_000, 10_000)
    assert at.state_transitions == 200
    assert at.aws_calls == {"dynamodb.GetItem": 30_000, "sns.Publish": 11, "ssm.SendCommand": 5}
    assert at.functions["F"].invocations == 10_010
    assert at.functions["F"].billed_ms == 1_000_000
    assert at.dynamodb_write_units == pytest.approx(40_000)
    assert (at.sqs_event_messages, at.sqs_batches) == (10_000, 1_001)


def test_cost_function_configuration_from_the_template() -> None:
    configuration = function_configuration(SamTemplate())
    assert configuration["CommandResultFunction"] == (256, "arm64")
    assert configuration["ComplianceReportFunction"] == (512, "arm64")


def test_cost_counts_from_a_benchmark_run() -> None:
    run = {
        "state_transitions": 260,
        "aws_calls": {"dynamodb.GetItem": 4},
        "sqs_messages": 12,
        "sqs_batches": 3,
        "metering": {
            "invocations": {"CommandResultFunction": {"count": 3, "billed_ms": 300, "seconds": 0.3}},
            "dynamodb_request_units": {"read": 4.0, "write": 6.0},
        },
    }
    counts = counts_from_run(run, {"CommandResultFunction": (256, "arm64")})
    assert counts.functions["CommandResultFunction"] == FunctionUse(3, 300, 256, "arm64")
    assert (counts.dynamodb_read_units, counts.dynamodb_write_units) == (4.0, 6.0)
    assert (counts.state_transitions, counts.sqs_event_messages, counts.sqs_batches) == (260, 12, 3)
