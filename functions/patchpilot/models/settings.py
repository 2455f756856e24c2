"""Environment-variable models, read at the handler edge (never at import time)."""

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, Json, field_validator

from patchpilot.models.rollout import StageCatalog
from patchpilot.models.state import WaitLimits


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_env(cls) -> Self:
        """Validate the process environment against this model (a missing variable is a clear ValidationError)."""
        return cls.model_validate(dict(os.environ))


class TrackingSettings(_EnvSettings):
    """Settings of every function that reads or writes install tracking records."""

    runs_table_name: str = Field(alias="RUNS_TABLE_NAME", min_length=3)
    record_ttl_days: int = Field(default=90, alias="RECORD_TTL_DAYS", ge=1, le=3650)


SSM_DOCUMENT_NAME = r"^[A-Za-z0-9_.-]{3,128}$"


class PlanSettings(_EnvSettings):
    """Settings of the stage planner."""

    patch_group_tag_key: str = Field(default="PatchGroup", alias="PATCH_GROUP_TAG_KEY", min_length=1)


class HealthCheckSettings(_EnvSettings):
    """The functions that plan health commands (stage steps, bisection rounds): which document they send.

    The stack's cross-platform health-check document (template.yaml HealthCheckDocument, named by the stack through
    `!Ref`): every stage's health check is one command of it.
    """

    health_check_document: str = Field(alias="HEALTH_CHECK_DOCUMENT", pattern=SSM_DOCUMENT_NAME)


class RegistrationSettings(_EnvSettings):
    """Settings of instance auto-registration."""

    patch_group_tag_key: str = Field(default="PatchGroup", alias="PATCH_GROUP_TAG_KEY", min_length=1)
    default_patch_group: str = Field(alias="DEFAULT_PATCH_GROUP", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,255}$")


class RolloutSettings(_EnvSettings):
    """Settings of the rollout planner: the stage catalog rendered from the policy."""

    stage_catalog: Json[StageCatalog] = Field(alias="STAGE_CATALOG")


class ArtifactSettings(_EnvSettings):
    """Where patch lists for AWS-RunPatchBaseline are written."""

    artifacts_bucket_name: str = Field(alias="ARTIFACTS_BUCKET_NAME", min_length=3)


class StarterSettings(_EnvSettings):
    """Settings of the rollout starter."""

    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", pattern=r"^arn:aws[a-z-]*:states:")
    # The wait limits of a run whose start request names none (JSON of WaitLimits; empty: the model's defaults).
    default_wait_limits: Json[WaitLimits] | None = Field(default=None, alias="DEFAULT_WAIT_LIMITS")

    @field_validator("default_wait_limits", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class AlertSettings(_EnvSettings):
    """Where structured alerts are published."""

    alert_topic_arn: str = Field(alias="ALERT_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")


class ChatLeaseSettings(_EnvSettings):
    """How long a chat post's claim keeps other deliveries of the alert away (a crashed poster's claim lapses then)."""

    posting_lease_seconds: float = Field(default=120.0, alias="CHAT_POSTING_LEASE_SECONDS", gt=0, le=900)


class ChatSettings(_EnvSettings):
    """Where the chat secret is (its ARN, never its value) and where undeliverable input is kept."""

    chat_secret_arn: str = Field(alias="CHAT_SECRET_ARN", pattern=r"^arn:aws[a-z-]*:secretsmanager:")
    chat_dead_letter_queue_url: str = Field(default="", alias="CHAT_DEAD_LETTER_QUEUE_URL")
    post_timeout_seconds: float = Field(default=5.0, alias="CHAT_POST_TIMEOUT_SECONDS", gt=0, le=20)
    secret_max_age_seconds: int = Field(default=300, alias="CHAT_SECRET_MAX_AGE_SECONDS", ge=0, le=3600)
