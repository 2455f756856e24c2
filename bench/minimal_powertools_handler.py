"""Cold-import yardstick of `make bench`: a minimal Powertools handler (Logger, Tracer, Metrics, parser, a client).

Each PatchPilot handler's cold import is divided by this module's, measured in the same run on the same machine.
"""

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics()
ssm = boto3.client("ssm")


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=SqsModel)
def handler(event: SqsModel, context: LambdaContext) -> dict[str, Any]:
    return {"records": len(event.Records)}
