"""Stand-in for the SSM patch-baseline APIs moto lacks, serving the baselines template.yaml declares.

moto 5.2.5 has no GetPatchBaseline, UpdatePatchBaseline, DescribePatchGroups or GetDefaultPatchBaseline. This class
holds the template's AWS::SSM::PatchBaseline resources (rendered from policy/patch-policy.yaml) and answers those
calls - plus the baseline/patch-group calls moto does have, so every answer comes from one consistent store - with
the request and response shapes of the real API. Wire it into the runtime's botocore hook like the fleet:

    baselines = PatchBaselineStandIn(template, stack_name=STACK_NAME, region=region, now=clock.now)
    if service == "ssm" and operation in baselines.operations: return ..., baselines.handle(operation, params)

Errors are raised as ``SimulatedApiError`` (code + message), which the hook turns into a botocore ClientError.
UpdatePatchBaseline, like AWS, REPLACES every list it is given (RejectedPatches included): a caller that adds an
exclusion must read the baseline, merge its patches into the current list as a set, and write the union back.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from patchpilot_sim.fleet import SimulatedApiError
from patchpilot_sim.template import SamTemplate

MAX_PATCH_LIST = 50
_PATCH_LIST_KEYS = ("ApprovedPatches", "RejectedPatches")
_UPDATABLE = (
    "Name",
    "Description",
    "GlobalFilters",
    "ApprovalRules",
    "ApprovedPatches",
    "ApprovedPatchesComplianceLevel",
    "ApprovedPatchesEnableNonSecurity",
    "RejectedPatches",
    "RejectedPatchesAction",
    "Sources",
    "AvailableSecurityUpdatesComplianceStatus",
)
_REJECTED_ACTIONS = ("ALLOW_AS_DEPENDENCY", "BLOCK")
_OPERATING_SYSTEMS = (
    "WINDOWS",
    "AMAZON_LINUX",
    "AMAZON_LINUX_2",
    "AMAZON_LINUX_2022",
    "AMAZON_LINUX_2023",
    "UBUNTU",
    "REDHAT_ENTERPRISE_LINUX",
    "SUSE",
    "CENTOS",
    "ORACLE_LINUX",
    "DEBIAN",
    "MACOS",
    "RASPBIAN",
    "ROCKY_LINUX",
    "ALMA_LINUX",
)
# AWS's predefined default baselines (what an unregistered patch group gets), by OS.
_PREDEFINED_DEFAULTS = {
    "WINDOWS": "AWS-DefaultPatchBaseline",
    "AMAZON_LINUX": "AWS-AmazonLinuxDefaultPatchBaseline",
    "AMAZON_LINUX_2": "AWS-AmazonLinux2DefaultPatchBaseline",
    "AMAZON_LINUX_2022": "AWS-AmazonLinux2022DefaultPatchBaseline",
    "AMAZON_LINUX_2023": "AWS-AmazonLinux2023DefaultPatchBaseline",
    "UBUNTU": "AWS-UbuntuDefaultPatchBaseline",
    "REDHAT_ENTERPRISE_LINUX": "AWS-RedHatDefaultPatchBaseline",
    "SUSE": "AWS-SuseDefaultPatchBaseline",
    "CENTOS": "AWS-CentOSDefaultPatchBaseline",
    "ORACLE_LINUX": "AWS-OracleLinuxDefaultPatchBaseline",
    "DEBIAN": "AWS-DebianDefaultPatchBaseline",
    "MACOS": "AWS-MacOSDefaultPatchBaseline",
    "RASPBIAN": "AWS-DefaultRaspbianPatchBaseline",
    "ROCKY_LINUX": "AWS-RockyLinuxDefaultPatchBaseline",
    "ALMA_LINUX": "AWS-AlmaLinuxDefaultPatchBaseline",
}


def baseline_id_for(name: str) -> str:
    """A stable, AWS-shaped baseline id (`pb-` + 17 hex digits) for a baseline name."""
    return "pb-" + hashlib.sha256(name.encode()).hexdigest()[:17]


def _resolve_name(value: Any, stack_name: str) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        return str(text if isinstance(text, str) else text[0]).replace("${AWS::StackName}", stack_name)
    return str(value)


class PatchBaselineStandIn:
    """The template's patch baselines and patch-group registrations, served through the SSM API shapes."""

    operations: frozenset[str] = frozenset(
        {
            "GetPatchBaseline",
            "UpdatePatchBaseline",
            "DescribePatchBaselines",
            "DescribePatchGroups",
            "GetPatchBaselineForPatchGroup",
            "GetDefaultPatchBaseline",
            "RegisterPatchBaselineForPatchGroup",
            "DeregisterPatchBaselineForPatchGroup",
        }
    )

    def __init__(
        self,
        template: SamTemplate | None = None,
        stack_name: str = "patchpilot",
        region: str = "us-east-1",
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.region = region
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self.baselines: dict[str, dict[str, Any]] = {}
        # (patch group, operating system) -> baseline id; one baseline per group per OS, as in Patch Manager.
        self.registrations: dict[tuple[str, str], str] = {}
        self.update_calls: list[dict[str, Any]] = []
        self.stack_name = stack_name
        self._deployed: dict[str, dict[str, Any]] = {}  # baseline id -> the template properties last deployed
        template = template or SamTemplate()
        for resource in template.of_type("AWS::SSM::PatchBaseline").values():
            self._add(resource.get("Properties", {}), stack_name)

    def apply_stack_update(self, template: SamTemplate) -> list[str]:
        """Deploy a new template version the way CloudFormation updates AWS::SSM::PatchBaseline resources.

        A baseline whose template properties changed is updated to exactly the template's properties: whatever was
        changed outside CloudFormation (an UpdatePatchBaseline at run time: drift) is overwritten, RejectedPatches
        included. A baseline whose properties did not change is not touched (its drift stays). New baselines are
        created. Returns the names of the baselines the update reset.
        """
        reset = []
        with self._lock:
            for resource in template.of_type("AWS::SSM::PatchBaseline").values():
                props = resource.get("Properties", {})
                baseline_id = baseline_id_for(_resolve_name(props["Name"], self.stack_name))
                if baseline_id not in self.baselines:
                    self._add(props, self.stack_name)
                elif props != self._deployed[baseline_id]:
                    created = self.baselines[baseline_id]["CreatedDate"]
                    for key, registered in list(self.registrations.items()):
                        if registered == baseline_id:
                            del self.registrations[key]
                    self._add(props, self.stack_name)
                    self.baselines[baseline_id]["CreatedDate"] = created
                    reset.append(self.baselines[baseline_id]["Name"])
        return reset

    def _add(self, props: dict[str, Any], stack_name: str) -> None:
        name = _resolve_name(props["Name"], stack_name)
        baseline_id = baseline_id_for(name)
        created = self._now()
        self._deployed[baseline_id] = copy.deepcopy(props)
        self.baselines[baseline_id] = {
            "BaselineId": baseline_id,
            "Name": name,
            "OperatingSystem": props.get("OperatingSystem", "WINDOWS"),
            "Description": props.get("Description", ""),
            "GlobalFilters": copy.deepcopy(props.get("GlobalFilters", {"PatchFilters": []})),
            "ApprovalRules": copy.deepcopy(props.get("ApprovalRules", {"PatchRules": []})),
            "ApprovedPatches": list(props.get("ApprovedPatches", [])),
            "ApprovedPatchesComplianceLevel": props.get("ApprovedPatchesComplianceLevel", "UNSPECIFIED"),
            "ApprovedPatchesEnableNonSecurity": bool(props.get("ApprovedPatchesEnableNonSecurity", False)),
            "RejectedPatches": list(props.get("RejectedPatches", [])),
            "RejectedPatchesAction": props.get("RejectedPatchesAction", "ALLOW_AS_DEPENDENCY"),
            "Sources": copy.deepcopy(props.get("Sources", [])),
            "CreatedDate": created,
            "ModifiedDate": created,
        }
        for group in props.get("PatchGroups", []):
            self._register(baseline_id, str(group))

    # -- API -----------------------------------------------------------------------------------------------------
    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Serve one SSM operation (a name in `operations`); raise SimulatedApiError like the service would."""
        if operation not in self.operations:
            raise NotImplementedError(operation)
        with self._lock:
            result: dict[str, Any] = getattr(self, f"_op_{operation}")(params)
            return copy.deepcopy(result)

    def _baseline(self, params: dict[str, Any]) -> dict[str, Any]:
        baseline_id = str(params.get("BaselineId", ""))
        if not 20 <= len(baseline_id) <= 128:
            raise SimulatedApiError("ValidationException", f"BaselineId {baseline_id!r}: length must be 20 to 128.")
        if baseline_id not in self.baselines:
            raise SimulatedApiError("DoesNotExistException", f"Baseline {baseline_id} does not exist.")
        return self.baselines[baseline_id]

    def _predefined_default(self, baseline_id: str) -> dict[str, Any] | None:
        """AWS's predefined default baseline behind a default-baseline ARN: GetPatchBaseline serves these too.

        Their rules, per "Predefined baselines" (SSM user guide, patch-manager-predefined-and-custom-patch-baselines):
        security classifications approved 7 days after release, no rule enabling non-security updates, no approved
        or rejected patches (bugfix approvals on Amazon Linux are not modelled).
        """
        for os_name, name in _PREDEFINED_DEFAULTS.items():
            if baseline_id == self.default_baseline_id(os_name):
                classes = ["CriticalUpdates", "SecurityUpdates"] if os_name == "WINDOWS" else ["Security"]
                rule = {
                    "PatchFilterGroup": {"PatchFilters": [{"Key": "CLASSIFICATION", "Values": classes}]},
                    "ApproveAfterDays": 7,
                    "ComplianceLevel": "UNSPECIFIED",
                    "EnableNonSecurity": False,
                }
                return {
                    "BaselineId": baseline_id,
                    "Name": name,
                    "OperatingSystem": os_name,
                    "Description": f"Default Patch Baseline for {os_name} Provided by AWS.",
                    "GlobalFilters": {"PatchFilters": []},
                    "ApprovalRules": {"PatchRules": [rule]},
                    "ApprovedPatches": [],
                    "ApprovedPatchesComplianceLevel": "UNSPECIFIED",
                    "ApprovedPatchesEnableNonSecurity": False,
                    "RejectedPatches": [],
                    "RejectedPatchesAction": "ALLOW_AS_DEPENDENCY",
                    "Sources": [],
                }
        return None

    def _patch_groups_of(self, baseline_id: str) -> list[str]:
        return sorted(group for (group, _), registered in self.registrations.items() if registered == baseline_id)

    def _op_GetPatchBaseline(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        predefined = self._predefined_default(str(params.get("BaselineId", "")))
        if predefined is not None:
            return predefined | {"PatchGroups": []}
        baseline = self._baseline(params)
        return {**baseline, "PatchGroups": self._patch_groups_of(baseline["BaselineId"])}

    def _op_UpdatePatchBaseline(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        baseline = self._baseline(params)
        replace = bool(params.get("Replace", False))
        changes: dict[str, Any] = {}
        for key in _UPDATABLE:
            if key in params:
                changes[key] = copy.deepcopy(params[key])
            elif replace and key in _PATCH_LIST_KEYS:
                changes[key] = []
        for key in _PATCH_LIST_KEYS:
            if key in changes:
                changes[key] = self._patch_list(key, changes[key])
        action = changes.get("RejectedPatchesAction")
        if action is not None and action not in _REJECTED_ACTIONS:
            raise SimulatedApiError(
                "ValidationException",
                f"RejectedPatchesAction {action!r}: allowed values {', '.join(_REJECTED_ACTIONS)}.",
            )
        baseline.update(changes)
        baseline["ModifiedDate"] = self._now()
        self.update_calls.append({"BaselineId": baseline["BaselineId"], **copy.deepcopy(changes)})
        return {key: value for key, value in baseline.items() if key != "PatchGroups"}

    @staticmethod
    def _patch_list(key: str, values: Any) -> list[str]:
        if not isinstance(values, list) or not all(isinstance(v, str) and 1 <= len(v) <= 100 for v in values):
            raise SimulatedApiError("ValidationException", f"{key} must be a list of 1-100 character strings.")
        if len(values) > MAX_PATCH_LIST:
            raise SimulatedApiError("ValidationException", f"{key} has at most {MAX_PATCH_LIST} items.")
        return list(dict.fromkeys(values))

    def _identity(self, baseline_id: str) -> dict[str, Any]:
        baseline = self.baselines[baseline_id]
        return {
            "BaselineId": baseline_id,
            "BaselineName": baseline["Name"],
            "OperatingSystem": baseline["OperatingSystem"],
            "BaselineDescription": baseline["Description"],
            "DefaultBaseline": False,
        }

    @staticmethod
    def _filter_values(params: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for item in params.get("Filters") or []:
            key = item.get("Key")
            if key not in allowed:
                raise SimulatedApiError(
                    "ValidationException", f"Filter key {key!r}: allowed keys {', '.join(allowed)}."
                )
            found[str(key)] = [str(value) for value in item.get("Values", [])]
        return found

    @staticmethod
    def _page(items: list[dict[str, Any]], params: dict[str, Any], key: str) -> dict[str, Any]:
        size = int(params.get("MaxResults") or 100)
        if not 1 <= size <= 100:
            raise SimulatedApiError("ValidationException", "MaxResults must be between 1 and 100.")
        token = params.get("NextToken")
        start = int(token) if token else 0
        page: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            page["NextToken"] = str(start + size)
        return page

    def _op_DescribePatchBaselines(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        filters = self._filter_values(params, ("NAME_PREFIX", "OWNER", "OPERATING_SYSTEM"))
        identities = []
        for baseline_id, baseline in sorted(self.baselines.items(), key=lambda item: item[1]["Name"]):
            if "OWNER" in filters and "Self" not in filters["OWNER"]:
                continue
            if "NAME_PREFIX" in filters and not any(baseline["Name"].startswith(p) for p in filters["NAME_PREFIX"]):
                continue
            if "OPERATING_SYSTEM" in filters and baseline["OperatingSystem"] not in filters["OPERATING_SYSTEM"]:
                continue
            identities.append(self._identity(baseline_id))
        return self._page(identities, params, "BaselineIdentities")

    def _op_DescribePatchGroups(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        filters = self._filter_values(params, ("NAME_PREFIX", "OPERATING_SYSTEM"))
        mappings = []
        for (group, os_name), baseline_id in sorted(self.registrations.items()):
            if "NAME_PREFIX" in filters and not any(group.startswith(p) for p in filters["NAME_PREFIX"]):
                continue
            if "OPERATING_SYSTEM" in filters and os_name not in filters["OPERATING_SYSTEM"]:
                continue
            mappings.append({"PatchGroup": group, "BaselineIdentity": self._identity(baseline_id)})
        return self._page(mappings, params, "Mappings")

    def _operating_system(self, params: dict[str, Any]) -> str:
        os_name = str(params.get("OperatingSystem") or "WINDOWS")
        if os_name not in _OPERATING_SYSTEMS:
            raise SimulatedApiError(
                "ValidationException", f"OperatingSystem {os_name!r}: allowed values {', '.join(_OPERATING_SYSTEMS)}."
            )
        return os_name

    def default_baseline_id(self, os_name: str) -> str:
        """The id of AWS's predefined default baseline for an OS (what an unregistered group uses)."""
        return f"arn:aws:ssm:{self.region}:aws:patchbaseline/{baseline_id_for(_PREDEFINED_DEFAULTS[os_name])}"

    def _op_GetDefaultPatchBaseline(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        os_name = self._operating_system(params)
        return {"BaselineId": self.default_baseline_id(os_name), "OperatingSystem": os_name}

    def _op_GetPatchBaselineForPatchGroup(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        group = str(params.get("PatchGroup") or "")
        if not 1 <= len(group) <= 256:
            raise SimulatedApiError("ValidationException", "PatchGroup must be 1 to 256 characters.")
        os_name = self._operating_system(params)
        baseline_id = self.registrations.get((group, os_name)) or self.default_baseline_id(os_name)
        return {"BaselineId": baseline_id, "PatchGroup": group, "OperatingSystem": os_name}

    def _register(self, baseline_id: str, group: str) -> None:
        os_name = self.baselines[baseline_id]["OperatingSystem"]
        current = self.registrations.get((group, os_name))
        if current is not None and current != baseline_id:
            raise SimulatedApiError(
                "AlreadyExistsException",
                f"Patch group {group} is already registered with baseline {current} for {os_name}.",
            )
        self.registrations[(group, os_name)] = baseline_id

    def _op_RegisterPatchBaselineForPatchGroup(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        baseline = self._baseline(params)
        group = str(params.get("PatchGroup") or "")
        if (group, baseline["OperatingSystem"]) in self.registrations:
            raise SimulatedApiError(
                "AlreadyExistsException", f"Patch group {group} already has a {baseline['OperatingSystem']} baseline."
            )
        self._register(baseline["BaselineId"], group)
        return {"BaselineId": baseline["BaselineId"], "PatchGroup": group}

    def _op_DeregisterPatchBaselineForPatchGroup(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        baseline = self._baseline(params)
        group = str(params.get("PatchGroup") or "")
        key = (group, baseline["OperatingSystem"])
        if self.registrations.get(key) != baseline["BaselineId"]:
            raise SimulatedApiError(
                "DoesNotExistException", f"Patch group {group} is not registered with {baseline['BaselineId']}."
            )
        del self.registrations[key]
        return {"BaselineId": baseline["BaselineId"], "PatchGroup": group}

    # -- for the demo output ---------------------------------------------------------------------------------------
    def baselines_by_group(self) -> dict[str, dict[str, str]]:
        """Patch group -> operating system -> baseline name (what `make demo` prints)."""
        with self._lock:
            table: dict[str, dict[str, str]] = {}
            for (group, os_name), baseline_id in sorted(self.registrations.items()):
                table.setdefault(group, {})[os_name] = self.baselines[baseline_id]["Name"]
            return table

    def baseline_named(self, name: str) -> dict[str, Any]:
        """A baseline by name, as GetPatchBaseline returns it (SimulatedApiError DoesNotExistException if none)."""
        return self.handle("GetPatchBaseline", {"BaselineId": baseline_id_for(name)})
