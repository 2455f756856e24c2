"""Auto-register a new instance (EC2 state change to running): default patch group tag when missing, first scan."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.registration import register_instance
from patchpilot.models.registration import InstanceStateEvent
from patchpilot.models.settings import RegistrationSettings
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=InstanceStateEvent)
def handler(event: InstanceStateEvent, context: LambdaContext) -> dict[str, Any]:
    settings = RegistrationSettings.from_env()
    handled = register_instance(
        event.detail,
        event.id,
        settings.default_patch_group,
        settings.patch_group_tag_key,
        wiring.instance_inventory(),
        wiring.patch_scanner(),
        wiring.first_scan_ledger(),
    )
    if handled.tagging == "tagged":
        logger.info("instance had no patch group: default assigned", extra=handled.model_dump())
    metrics.add_metric(name=f"InstanceRegistration_{handled.tagging}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"FirstScan_{handled.scan}", unit=MetricUnit.Count, value=1)
    return handled.model_dump(mode="json")
