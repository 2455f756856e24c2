"""The runs table's key scheme: every partition and sort key, and the pending-approvals index, in one place.

One table (``pk``/``sk``, template.yaml ``RunsTable``) holds:

================================  ==============================  =============================================
``pk``                            ``sk``                          what
================================  ==============================  =============================================
``RUN#<run>``                     ``FROZEN``                      the frozen patch set of the run
``RUN#<run>``                     ``EXCLUSION#<stage>#<patch>``   an excluded patch (holds it out of the set)
``RUN#<run>``                     ``EXCLUSION_REMOVED#<stage>#…`` an exclusion an operator retired (evidence)
``RUN#<run>``                     ``SNAPSHOT#<stage>#<instance>`` an instance's pre-patch snapshot set
``RUN#<run>``                     ``ROLLBACK#<instance>#<task>``  a root-volume restore started by ``rollback``
``RUN#<run>``                     ``BISECTION#<stage>#<attempt>`` a stage attempt's bisection (suspects, rounds)
``COMMAND#<id>``                  ``COMMAND`` / ``INSTANCE#<i>``  install tracking and per-instance results
``INSTANCE#<i>``                  ``FIRST_SCAN``                  the first-scan claim of a new instance
``APPROVAL#<id>``                 ``APPROVAL``                    an approval
================================  ==============================  =============================================

The global secondary index ``PendingApprovals`` (hash ``pending_approval``, range ``deadline``) is sparse: an
approval carries ``pending_approval`` only while it waits, so the index holds exactly the waiting approvals, oldest
deadline first, and listing them is a Query, never a Scan.

The global secondary index ``Exclusions`` (hash ``exclusion``, range ``sk``) is sparse too: only exclusion rows,
active and retired, carry ``exclusion``, so ``patchpilot exclusions export`` reads every run's exclusions with one
Query (rows written before the index existed lack the attribute and are not listed).
"""

RUN_PREFIX = "RUN#"
FROZEN_SORT_KEY = "FROZEN"
PASSED_STAGE_PREFIX = "STAGE#"
EXCLUSION_PREFIX = "EXCLUSION#"
RETIRED_EXCLUSION_PREFIX = "EXCLUSION_REMOVED#"
COMMAND_SORT_KEY = "COMMAND"
INSTANCE_PREFIX = "INSTANCE#"
FIRST_SCAN_SORT_KEY = "FIRST_SCAN"
APPROVAL_SORT_KEY = "APPROVAL"
SNAPSHOT_PREFIX = "SNAPSHOT#"
ROLLBACK_PREFIX = "ROLLBACK#"
BISECTION_PREFIX = "BISECTION#"

PENDING_APPROVALS_INDEX = "PendingApprovals"
PENDING_APPROVAL_ATTRIBUTE = "pending_approval"
PENDING_APPROVAL_VALUE = "PENDING"

EXCLUSIONS_INDEX = "Exclusions"
EXCLUSION_ATTRIBUTE = "exclusion"
EXCLUSION_VALUE = "EXCLUSION"


def run_key(run_id: str) -> str:
    """Partition key of everything recorded about one run."""
    return f"{RUN_PREFIX}{run_id}"


def exclusion_sort_key(stage_name: str, patch_id: str) -> str:
    """Sort key of one excluded patch of a stage."""
    return f"{EXCLUSION_PREFIX}{stage_name}#{patch_id}"


def retired_exclusion_sort_key(stage_name: str, patch_id: str, retired_at: str) -> str:
    """Sort key of an exclusion an operator retired: when, too (the run may exclude and retire the patch again)."""
    return f"{RETIRED_EXCLUSION_PREFIX}{stage_name}#{patch_id}#{retired_at}"


def patch_of_exclusion_sort_key(sort_key: str) -> str:
    """The patch id of an ``EXCLUSION#<stage>#<patch>`` sort key.

    Stage names never contain ``#`` (policy names are lowercase letters, digits and dashes); patch ids may.
    """
    return sort_key.removeprefix(EXCLUSION_PREFIX).split("#", 1)[1]


def passed_stage_sort_key(stage_name: str) -> str:
    """The sort key of a stage a run passed (read by a resumed attempt to skip it)."""
    return f"{PASSED_STAGE_PREFIX}{stage_name}"


def command_key(command_id: str) -> str:
    """Partition key of everything recorded about one command."""
    return f"COMMAND#{command_id}"


def instance_result_sort_key(instance_id: str) -> str:
    """Sort key of one instance's terminal result under its command."""
    return f"{INSTANCE_PREFIX}{instance_id}"


def instance_key(instance_id: str) -> str:
    """Partition key of what PatchPilot records about one instance."""
    return f"{INSTANCE_PREFIX}{instance_id}"


def approval_key(approval_id: str) -> str:
    """Partition key of an approval."""
    return f"APPROVAL#{approval_id}"


def snapshot_set_sort_key(stage_name: str, instance_id: str) -> str:
    """Sort key of an instance's pre-patch snapshot set in a stage of a run."""
    return f"{SNAPSHOT_PREFIX}{stage_name}#{instance_id}"


def rollback_sort_key(instance_id: str, task_id: str) -> str:
    """Sort key of a rollback of an instance: its replace-root-volume task (one row per task, however often asked)."""
    return f"{ROLLBACK_PREFIX}{instance_id}#{task_id}"


def bisection_sort_key(stage_name: str, attempt: int) -> str:
    """Sort key of the bisection of a stage attempt of a run."""
    return f"{BISECTION_PREFIX}{stage_name}#{attempt}"
