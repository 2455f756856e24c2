"""SSM adapter of the PatchScanner port."""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.ports import PatchScanner
from patchpilot.models.exceptions import InstanceNotManaged

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

SCAN_DOCUMENT = "AWS-RunPatchBaseline"
SCAN_TIMEOUT_SECONDS = 1800


class SsmPatchScanner(PatchScanner):
    """AWS-RunPatchBaseline ``Operation=Scan`` through Run Command."""

    def __init__(self, client: "SSMClient") -> None:
        self._client = client

    def start_scan(self, instance_id: str, comment: str) -> str:
        try:
            response = self._client.send_command(
                InstanceIds=[instance_id],
                DocumentName=SCAN_DOCUMENT,
                Parameters={"Operation": ["Scan"]},
                Comment=comment[:100],
                TimeoutSeconds=SCAN_TIMEOUT_SECONDS,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "InvalidInstanceId":
                raise InstanceNotManaged(f"{instance_id} is not managed by SSM (yet)") from error
            raise
        return response["Command"]["CommandId"]
