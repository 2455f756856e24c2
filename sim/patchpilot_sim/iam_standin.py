"""IAM SimulatePrincipalPolicy for the local runtime: moto stores roles and policies but does not simulate them.

The stand-in evaluates a role's identity-based policies (inline and attached, as stored in moto's IAM) for each
action and resource the way IAM's policy evaluation logic describes for a principal in one account
[IAM user guide, "Policy evaluation logic" (reference_policies_evaluation-logic) and "The difference between explicit
and implicit denies" (..._AccessPolicyLanguage_Interplay)]: an applicable Deny -> `explicitDeny`; else an applicable
Allow -> `allowed`; else `implicitDeny`. A statement applies when its Action/NotAction matches (case-insensitive,
`*`/`?` wildcards), its Resource/NotResource matches (case-sensitive wildcards; a requested resource "*" matches
only a policy resource "*"), and every Condition holds. Conditions: String(Not)Equals, StringLike, ArnEquals,
ArnLike, Bool, Null, with `ForAllValues:`/`ForAnyValue:` prefixes and `IfExists`; a key the request lacks makes the
condition false (true for ForAllValues) and is reported in MissingContextValues, as the API does. Operators outside
this list make the statement not apply (never a silent allow). Permission boundaries, SCPs, session and resource
policies are not simulated (SimulatePrincipalPolicy without ResourcePolicy does not include the latter either).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

_STRING_OPERATORS = {"StringEquals", "StringNotEquals", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _wildcard(pattern: str, value: str, case_sensitive: bool) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one character; nothing else is special."""
    regex = ".*".join(".".join(re.escape(part) for part in chunk.split("?")) for chunk in pattern.split("*"))
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _matches_any(patterns: list[str], value: str, case_sensitive: bool) -> bool:
    if value == "*":
        return "*" in patterns
    return any(_wildcard(pattern, value, case_sensitive) for pattern in patterns)


def _compare(operator: str, expected: list[str], actual: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual in expected
    if operator == "StringNotEquals":
        return actual not in expected
    if operator == "Bool":
        return actual.lower() in [e.lower() for e in expected]
    return any(_wildcard(pattern, actual, True) for pattern in expected)  # StringLike, ArnLike


def _condition_holds(operator: str, key: str, expected: list[str], context: dict[str, list[str]]) -> tuple[bool, bool]:
    """(holds, key missing) for one operator/key pair."""
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    values = context.get(key.lower())
    if base == "Null":  # "true": the key is absent from the request; "false": it is present (never missing)
        return (values is None) == (expected[0].lower() == "true"), False
    if base not in _STRING_OPERATORS:
        return False, False
    if values is None:
        return (qualifier == "ForAllValues" or if_exists), True
    if qualifier == "ForAllValues":
        return all(_compare(base, expected, v) for v in values), False
    return any(_compare(base, expected, v) for v in values), False


def _conditions_hold(conditions: dict[str, Any], context: dict[str, list[str]], missing: set[str]) -> bool:
    holds = True
    for operator, pairs in conditions.items():
        for key, expected in pairs.items():
            ok, absent = _condition_holds(operator, key, _listed(expected), context)
            if absent:
                missing.add(key)
            holds = holds and ok
    return holds


def _applies(
    statement: dict[str, Any], action: str, resource: str, context: dict[str, list[str]], missing: set[str]
) -> bool:
    if "Action" in statement:
        action_ok = _matches_any(_listed(statement["Action"]), action, case_sensitive=False)
    else:
        action_ok = not _matches_any(_listed(statement.get("NotAction", [])), action, case_sensitive=False)
    if "Resource" in statement:
        resource_ok = _matches_any(_listed(statement["Resource"]), resource, case_sensitive=True)
    else:
        resource_ok = not _matches_any(_listed(statement.get("NotResource", [])), resource, case_sensitive=True)
    if not (action_ok and resource_ok):
        return False
    return _conditions_hold(statement.get("Condition") or {}, context, missing)


def evaluate(
    documents: list[dict[str, Any]], action: str, resource: str, context: dict[str, list[str]] | None = None
) -> tuple[str, list[str]]:
    """The decision (`allowed`, `explicitDeny`, `implicitDeny`) for one action on one resource, and missing keys."""
    context = {key.lower(): values for key, values in (context or {}).items()}
    missing: set[str] = set()
    allowed = False
    for document in documents:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if not _applies(statement, action, resource, context, missing):
                continue
            if statement.get("Effect") == "Deny":
                return "explicitDeny", sorted(missing)
            allowed = True
    return ("allowed" if allowed else "implicitDeny"), sorted(missing)


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    return dict(json.loads(unquote(str(raw))))


def role_policies(iam: Any, role_name: str) -> list[dict[str, Any]]:
    """Every identity-based policy document of a role, read from moto's IAM (inline and attached)."""
    documents = [
        _document(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    ]
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
        documents.append(_document(version["PolicyVersion"]["Document"]))
    return documents


class PolicySimulatorStandIn:
    """Serves `iam.SimulatePrincipalPolicy` for roles in moto's IAM through the default session's hooks."""

    _PARAMS = "patchpilot_sim_iam_params"

    def __init__(self, iam_client: Any) -> None:
        self._iam = iam_client
        self.calls: list[dict[str, Any]] = []

    def install(self, events: Any) -> None:
        events.register_first("before-parameter-build.iam.SimulatePrincipalPolicy", self._remember)
        events.register_first("before-call.iam.SimulatePrincipalPolicy", self._simulate)

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[self._PARAMS] = dict(params)

    def answer(self, params: dict[str, Any]) -> dict[str, Any]:
        """The SimulatePrincipalPolicy response (one EvaluationResult per action and resource)."""
        self.calls.append(params)
        role_name = str(params["PolicySourceArn"]).rsplit("/", 1)[-1]
        documents = role_policies(self._iam, role_name)
        context = {
            str(entry["ContextKeyName"]): _listed(entry.get("ContextKeyValues", []))
            for entry in params.get("ContextEntries") or []
        }
        results = []
        for action in params["ActionNames"]:
            for resource in params.get("ResourceArns") or ["*"]:
                decision, missing = evaluate(documents, action, resource, context)
                results.append(
                    {
                        "EvalActionName": action,
                        "EvalResourceName": resource,
                        "EvalDecision": decision,
                        "MissingContextValues": missing,
                    }
                )
        return {"EvaluationResults": results, "IsTruncated": False}

    def _simulate(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse, HTTPHeaders
        from botocore.exceptions import ClientError

        params = context.get(self._PARAMS, {})
        response = AWSResponse("https://iam.local.patchpilot", 200, HTTPHeaders(), None)
        try:
            body = self.answer(params)
        except ClientError as error:  # the role does not exist: NoSuchEntity, as the service answers
            response.status_code = 404
            return response, {"Error": error.response["Error"], "ResponseMetadata": {"HTTPStatusCode": 404}}
        return response, {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}
