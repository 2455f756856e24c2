"""S3 + DynamoDB adapter of the PatchSetStore port."""

import json
from typing import TYPE_CHECKING, Any, get_args

from patchpilot.integrations.ports import ExclusionLedger, PatchSetStore
from patchpilot.integrations.runs_table_keys import FROZEN_SORT_KEY, run_key
from patchpilot.models.bisection import Suspect
from patchpilot.models.patches import InstancePatch
from patchpilot.models.policy import OperatingSystem
from patchpilot.models.rollout import RunContext, StageDefinition, StagePlan

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

EMERGENCY_OPERATING_SYSTEMS: tuple[str, ...] = get_args(OperatingSystem)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def install_override_yaml(patches: list[dict[str, str]]) -> str:
    """The InstallOverrideList document AWS-RunPatchBaseline reads (YAML: `patches: - id: ... title: ...`)."""
    lines = ["patches:"] if patches else ["patches: []"]
    for patch in patches:
        lines.append(f"  - id: {_quoted(patch['id'])}")
        lines.append(f"    title: {_quoted(patch['title'])}")
    return "\n".join(lines) + "\n"


def is_eligible(classification: str, severity: str, stage: StageDefinition) -> bool:
    """Whether a stage may receive a patch of this classification and severity (empty lists: any)."""
    classes, severities = stage.eligible_classifications, stage.eligible_severities
    return (not classes or classification in classes) and (not severities or severity in severities)


def _eligible(patch: dict[str, str], stage: StagePlan) -> bool:
    return is_eligible(patch["classification"], patch["severity"], stage)


class S3PatchSetStore(PatchSetStore):
    """Frozen sets in the runs table (`pk=RUN#id, sk=FROZEN`), patch lists as S3 objects under `runs/<id>/`."""

    def __init__(
        self, table_name: str, bucket: str, dynamodb: "DynamoDBClient", s3: "S3Client", exclusions: ExclusionLedger
    ) -> None:
        self._table = table_name
        self._bucket = bucket
        self._dynamodb = dynamodb
        self._s3 = s3
        self._exclusions = exclusions

    def _put(self, key: str, body: str, content_type: str) -> str:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body.encode(), ContentType=content_type)
        return f"s3://{self._bucket}/{key}"

    def freeze(self, run_id: str, stage_name: str, patches: list[InstancePatch]) -> int:
        rows = [
            {"id": p.patch_id, "title": p.title, "classification": p.classification, "severity": p.severity}
            for p in patches
        ]
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": run_key(run_id)},
                "sk": {"S": FROZEN_SORT_KEY},
                "stage_name": {"S": stage_name},
                "patches": {"S": json.dumps(rows)},
                "patch_count": {"N": str(len(rows))},
            },
        )
        return len(rows)

    def _frozen(self, run_id: str) -> list[dict[str, str]] | None:
        item = self._dynamodb.get_item(
            TableName=self._table, Key={"pk": {"S": run_key(run_id)}, "sk": {"S": FROZEN_SORT_KEY}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        rows: list[dict[str, str]] = json.loads(item["patches"]["S"])
        return rows

    def install_list_for(self, run_id: str, stage: StagePlan) -> str | None:
        """Write the stage's InstallOverrideList: the frozen set, minus every patch excluded so far, eligible for it.

        The exclusion ledger is read again for every install (a retry or a later stage), because a patch excluded
        after the set was frozen is still in it, and whether RejectedPatches (BLOCK) outranks an InstallOverrideList
        is not documented: the list itself must not name it.
        """
        frozen = self._frozen(run_id)
        if frozen is None:
            return None
        excluded = self._exclusions.excluded_patches(run_id)
        chosen = [patch for patch in frozen if patch["id"] not in excluded and _eligible(patch, stage)]
        return self._put(f"runs/{run_id}/install-{stage.name}.yaml", install_override_yaml(chosen), "application/yaml")

    def write_install_list(self, run_id: str, name: str, patches: list[Suspect]) -> str:
        rows = [{"id": patch.patch_id, "title": patch.title} for patch in patches]
        return self._put(f"runs/{run_id}/{name}.yaml", install_override_yaml(rows), "application/yaml")

    def emergency_baseline_override(self, run: RunContext) -> str:
        approved = [*run.patch_ids, *run.cve_ids]
        baselines: list[dict[str, Any]] = [
            {
                "OperatingSystem": operating_system,
                "ApprovalRules": {"PatchRules": []},
                "ApprovedPatches": approved,
                "ApprovedPatchesComplianceLevel": "CRITICAL",
                "ApprovedPatchesEnableNonSecurity": operating_system != "WINDOWS",
                "RejectedPatches": [],
                "RejectedPatchesAction": "BLOCK",
            }
            for operating_system in EMERGENCY_OPERATING_SYSTEMS
        ]
        return self._put(
            f"runs/{run.run_id}/emergency-baseline-override.json", json.dumps(baselines), "application/json"
        )
