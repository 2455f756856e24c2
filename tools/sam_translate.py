"""Translate template.yaml (SAM) into plain CloudFormation JSON, offline, for scanners that do not run the transform.

Runs with the SAM venv's Python (``.venv-sam``: aws-sam-translator): ``python tools/sam_translate.py OUT.json``.
SAM policy templates expand from samtranslator's bundled data; the template names no managed policy by name, so no
IAM call is made. Template-level ``Metadata`` of SAM resources (checkov skip comments) is carried over to the
resources SAM generates from them (``<LogicalId>``, ``<LogicalId>Role``, ...), so a suppression written once in
template.yaml applies to what checkov scans.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

REPO_ROOT = Path(__file__).resolve().parents[1]


class _NoManagedPolicies(ManagedPolicyLoader):
    """Fail loudly instead of calling IAM if the template ever names an AWS managed policy."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        raise RuntimeError("template.yaml names a managed policy: the offline translation cannot resolve it")


def _carry_metadata(source: dict[str, Any], translated: dict[str, Any]) -> None:
    for logical_id, resource in source["Resources"].items():
        checkov = resource.get("Metadata", {}).get("checkov")
        if not checkov or not resource["Type"].startswith("AWS::Serverless::"):
            continue
        for generated_id, generated in translated["Resources"].items():
            if generated_id.startswith(logical_id):
                generated.setdefault("Metadata", {})["checkov"] = checkov


PLACEHOLDER_ARTIFACT = "s3://patchpilot-scan-placeholder/artifact.zip"
URI_PROPERTIES = ("CodeUri", "ContentUri")


def _offline(source: dict[str, Any]) -> dict[str, Any]:
    """Local artifacts as placeholder S3 URIs (as ``sam validate`` does); the ASL file inlined as ``Definition``."""
    function_globals = source.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = PLACEHOLDER_ARTIFACT
    for resource in source["Resources"].values():
        props = resource.get("Properties", {})
        for name in URI_PROPERTIES:
            if isinstance(props.get(name), str):
                props[name] = PLACEHOLDER_ARTIFACT
        if resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["Definition"] = json.loads((REPO_ROOT / props.pop("DefinitionUri")).read_text())
    return source


def main(out: str) -> int:
    """Write the translated template to `out`; 1 when SAM rejects the template."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # pseudo parameters only; nothing is called
    source = _offline(yaml_parse((REPO_ROOT / "template.yaml").read_text()))
    try:
        translated = transform(source, {}, _NoManagedPolicies())
    except InvalidDocumentException as error:
        print(f"SAM translation failed: {error}", file=sys.stderr)
        return 1
    _carry_metadata(source, translated)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(translated, indent=1, default=str))
    print(f"translated template.yaml -> {out} ({len(translated['Resources'])} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "out/scan/template.json"))
