"""`patchpilot report`: fetch a run's reports from the artifacts bucket, or have the stack build them, into a folder.

With `--run`, the run's compliance report and stage reports are fetched (the cycle wrote them); when the run has no
compliance report yet (it stopped early, or is still running), the stack's ComplianceReportFunction builds one for
it. Without `--run`, it builds an on-demand compliance report of the fleet as it is now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError

from patchpilot_cli import operator
from patchpilot_cli.errors import InputError
from patchpilot_cli.stack import DEFAULT_STACK_NAME, STACK_ENV, StackOutputs, default_stack_name, resolve_outputs

REPORT_FILES = ("report.html", "compliance.csv", "report.json")
REPORT_OUTPUTS = ("ComplianceReportFunctionName", "ArtifactsBucketName")


@dataclass(frozen=True)
class FetchedReports:
    """What `report` wrote, and the compliance numbers of the report it fetched."""

    files: list[Path]
    summary: dict[str, Any]


def _bucket_and_prefix(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.rsplit("/", 1)[0]


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return body


def _download(s3: Any, bucket: str, prefix: str, run_id: str | None, out: Path) -> list[Path]:
    written = []
    for name in REPORT_FILES:
        body = _get(s3, bucket, f"{prefix}/{name}")
        if body is None:
            raise InputError(f"s3://{bucket}/{prefix}/{name} does not exist")
        (out / name).write_bytes(body)
        written.append(out / name)
    if run_id:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"reports/{run_id}/stages/").get("Contents", [])
        for item in listed:
            name = str(item["Key"]).rsplit("/", 1)[1]
            if name.endswith(".html"):
                (out / "stages").mkdir(exist_ok=True)
                (out / "stages" / name).write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                written.append(out / "stages" / name)
    return written


def fetch_reports(outputs: StackOutputs, run_id: str | None, out: Path) -> FetchedReports:
    """Fetch (or have the stack build) the reports of a run, or an on-demand report, into `out`."""
    missing = [key for key in REPORT_OUTPUTS if key not in outputs.values]
    if missing:
        raise InputError(f"stack {outputs.stack_name!r} has no output(s) {', '.join(missing)}: redeploy template.yaml")
    bucket, s3 = outputs.values["ArtifactsBucketName"], outputs.client("s3")
    out.mkdir(parents=True, exist_ok=True)
    try:
        prefix = f"reports/{run_id}"
        if run_id is None or _get(s3, bucket, f"{prefix}/report.html") is None:
            payload = {"action": "cycle", "run_id": run_id} if run_id else {"action": "on_demand"}
            built = operator.invoke_function(outputs, outputs.values["ComplianceReportFunctionName"], payload)
            bucket, prefix = _bucket_and_prefix(str(built["report_uri"]))
        files = _download(s3, bucket, prefix, run_id, out)
    except (ClientError, BotoCoreError) as error:
        raise InputError(f"cannot read the reports in s3://{bucket}: {error}") from None
    summary = json.loads((out / "report.json").read_text())["summary"]
    return FetchedReports(files, summary)


RunId = Annotated[str | None, typer.Option("--run", help="the run id, e.g. 2026-12 (default: an on-demand report)")]
OutDir = Annotated[Path, typer.Option("--out", help="folder the report files are written to")]
StackName = Annotated[
    str | None,
    typer.Option("--stack-name", help=f"the deployed stack (default: ${STACK_ENV} or {DEFAULT_STACK_NAME!r})"),
]
Region = Annotated[str | None, typer.Option("--region", help="AWS region of the stack (default: the AWS config's)")]


def report(
    run: RunId = None, out: OutDir = Path("out/report"), stack_name: StackName = None, region: Region = None
) -> None:
    """Compliance report (HTML, CSV, JSON) and the run's stage reports, fetched or built on the deployed stack."""
    try:
        outputs = resolve_outputs(stack_name or default_stack_name(), region)
        fetched = fetch_reports(outputs, run, out)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except operator.HandlerFailed as error:
        typer.echo(f"error: {error.function} could not build the report: " + "; ".join(error.lines), err=True)
        raise typer.Exit(1) from None
    summary = fetched.summary
    counts = ", ".join(f"{status} {count}" for status, count in summary["counts"].items())
    typer.echo(f"compliance {summary['rate']} % of {summary['nodes']} nodes ({counts})")
    for path in fetched.files:
        typer.echo(f"  {path}")
