"""S3 adapter of the ReportStore port: rendered reports in the artifacts bucket under `reports/`."""

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from patchpilot.integrations.compliance_ports import ReportStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3ReportStore(ReportStore):
    """Reports in the artifacts bucket (server-side encrypted by the bucket's default)."""

    def __init__(self, bucket: str, client: "S3Client") -> None:
        self._bucket = bucket
        self._client = client

    def put(self, key: str, body: str, content_type: str) -> str:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=body.encode("utf-8"), ContentType=content_type)
        return f"s3://{self._bucket}/{key}"

    def get(self, key: str) -> str | None:
        try:
            body: bytes = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return body.decode("utf-8")

    def keys(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
