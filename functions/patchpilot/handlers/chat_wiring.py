"""Adapters of the chat handlers, built from env-var settings at invocation time.

The chat secret is read from Secrets Manager through Powertools Parameters (cached for CHAT_SECRET_MAX_AGE_SECONDS);
only its ARN is in the environment. Its values are SecretStr from the moment they are parsed.
"""

from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from patchpilot.handlers import approval_wiring
from patchpilot.integrations import aws_clients
from patchpilot.integrations.chat_webhooks import WebhookPoster
from patchpilot.integrations.dynamodb_chat import DynamoDBChatLedger, DynamoDBInteractionGuard
from patchpilot.integrations.sqs_dead_letters import SqsRejectedInputStore
from patchpilot.logic.slack_interaction import InteractionPorts, InteractionSettings
from patchpilot.models.chat import ChatSecret
from patchpilot.models.settings import ChatSettings, RolloutSettings, TrackingSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def chat_secret() -> ChatSecret:
    """The chat secret (channels, webhook URLs, Slack signing secret), cached by Powertools Parameters."""
    settings = ChatSettings.from_env()
    raw: Any = parameters.get_secret(
        settings.chat_secret_arn, transform="json", max_age=settings.secret_max_age_seconds
    )
    return ChatSecret.model_validate(raw)


def poster() -> WebhookPoster:
    """HTTPS webhook posts bounded by CHAT_POST_TIMEOUT_SECONDS."""
    return WebhookPoster(ChatSettings.from_env().post_timeout_seconds)


def chat_ledger() -> DynamoDBChatLedger:
    """Posted messages and held digests in the table named by RUNS_TABLE_NAME."""
    return DynamoDBChatLedger(TrackingSettings.from_env().runs_table_name, aws_clients.dynamodb())


def _sqs() -> "SQSClient":
    return boto3.client("sqs", config=_CONFIG)


def rejected_inputs() -> SqsRejectedInputStore:
    """The chat dead-letter queue (CHAT_DEAD_LETTER_QUEUE_URL)."""
    return SqsRejectedInputStore(ChatSettings.from_env().chat_dead_letter_queue_url, _sqs())


def interaction_settings() -> InteractionSettings:
    """Signing secret, approvers and stage roles (STAGE_CATALOG), and where response_url may point."""
    secret = chat_secret()
    return InteractionSettings(
        signing_secret=secret.slack_signing_secret.get_secret_value(),
        catalog=RolloutSettings.from_env().stage_catalog,
        response_url_prefix=str(secret.slack_response_url_prefix),
    )


def interaction_ports() -> InteractionPorts:
    """Approvals, the execution, alerts, replay memory and response_url posts."""
    return InteractionPorts(
        store=approval_wiring.approval_store(),
        callbacks=approval_wiring.execution_callbacks(),
        publisher=approval_wiring.alert_publisher(),
        guard=DynamoDBInteractionGuard(TrackingSettings.from_env().runs_table_name, aws_clients.dynamodb()),
        poster=poster(),
    )
