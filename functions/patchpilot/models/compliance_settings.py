"""Environment of the compliance and report functions (read at the handler edge)."""

from pydantic import Field, Json

from patchpilot.models.compliance import ComplianceRules
from patchpilot.models.settings import _EnvSettings


class ComplianceSettings(_EnvSettings):
    """The runs table, the artifacts bucket, the alert topic and the policy's compliance rules."""

    runs_table_name: str = Field(alias="RUNS_TABLE_NAME", min_length=3)
    artifacts_bucket_name: str = Field(alias="ARTIFACTS_BUCKET_NAME", min_length=3)
    alert_topic_arn: str = Field(alias="ALERT_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    rules: Json[ComplianceRules] = Field(alias="COMPLIANCE_RULES")
