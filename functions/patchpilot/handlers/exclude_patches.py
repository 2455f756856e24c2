"""Auto-exclusion after a failed stage: find the culprit patch(es), reject them in the baselines, record it."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.exclusion import exclude_failing_patches
from patchpilot.models.exclusion import ExclusionRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ExclusionRequest)
def handler(event: ExclusionRequest, context: LambdaContext) -> dict[str, Any]:
    decision = exclude_failing_patches(
        event,
        wiring.patch_inventory(),
        wiring.patch_baselines(),
        wiring.exclusion_ledger(),
        bisections=wiring.bisection_ledger(),
    )
    metrics.add_metric(name=f"ExclusionDecisions_{decision.outcome}", unit=MetricUnit.Count, value=1)
    if decision.outcome == "exclude" and not decision.already_recorded:
        metrics.add_metric(name="ExcludedPatches", unit=MetricUnit.Count, value=len(decision.patches))
    logger.info(
        "exclusion decided",
        extra={
            "stage": decision.stage_name,
            "outcome": decision.outcome,
            "reason": decision.reason,
            "patches": [patch.patch_id for patch in decision.patches],
            "baselines": {r.baseline_id: r.patch_ids for r in decision.baselines},
        },
    )
    return decision.model_dump(mode="json")
