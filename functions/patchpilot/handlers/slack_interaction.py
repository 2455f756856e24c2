"""The Slack interactivity endpoint (Lambda Function URL): Approve/Reject buttons decide the approval gate."""

import base64
from datetime import UTC, datetime

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.slack_interaction import handle_interaction
from patchpilot.models.chat import InteractionRejected
from patchpilot.observability import logger, metrics, tracer

app = LambdaFunctionUrlResolver()


def _raw_body() -> str:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body).decode("utf-8", errors="replace") if event.is_base64_encoded else body


@app.post("/slack/interactions")
def slack_interactions() -> Response[dict[str, object]]:
    headers = {key: value for key, value in app.current_event.headers.items() if value is not None}
    try:
        answer = handle_interaction(
            _raw_body(),
            headers,
            wiring.interaction_settings(),
            wiring.interaction_ports(),
            datetime.now(UTC),
        )
    except InteractionRejected as rejected:
        logger.warning("slack interaction rejected", extra={"status": rejected.status, "reason": str(rejected)})
        return Response(rejected.status, content_types.APPLICATION_JSON, {"ok": False, "error": str(rejected)})
    logger.info("slack interaction decided", extra=answer)
    return Response(200, content_types.APPLICATION_JSON, {"ok": True, **answer})


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    return app.resolve(event, context)
