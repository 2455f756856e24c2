"""Bisect the suspects correlation could not tell apart: start, check a restore, judge a round (one step per call)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import RootModel

from patchpilot.handlers import wiring
from patchpilot.logic.bisection import advance_bisection
from patchpilot.models.bisection import BisectionRequest
from patchpilot.observability import logger, metrics, tracer


class BisectionEvent(RootModel[BisectionRequest]):
    """The state machine's input: one of the bisection's steps, told apart by ``action``."""


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=BisectionEvent)
def handler(event: BisectionEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.root
    step = advance_bisection(request, wiring.bisection_ports())
    metrics.add_metric(name=f"BisectionSteps_{step.action}", unit=MetricUnit.Count, value=1)
    logger.info(
        "bisection step",
        extra={
            "stage": request.stage.name,
            "request": request.action,
            "action": step.action,
            "round": step.round,
            "reason": step.reason,
            "culprits": step.culprits,
        },
    )
    return step.model_dump(mode="json")
