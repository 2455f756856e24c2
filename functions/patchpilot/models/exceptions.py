"""Typed errors. Their class names are the `ErrorEquals` names the state machine's Catch and Fail states use."""


class PatchPilotError(Exception):
    """Base class of every error PatchPilot raises on purpose."""


class NoInstancesInPatchGroup(PatchPilotError):
    """A stage's patch group has no managed instance to patch."""


class StageHealthCheckFailed(PatchPilotError):
    """More instances failed the stage than its error budget allows."""


class InstallResultsIncomplete(PatchPilotError):
    """The install command never reported every instance, even after bounded reconciliation."""


class CommandNotTracked(PatchPilotError):
    """An install command that PatchPilot is asked about has no tracking record."""


class InstanceNotManaged(PatchPilotError):
    """SSM does not manage the instance (yet): its first scan cannot be sent; the invocation is retried."""


class InvalidRolloutRequest(PatchPilotError):
    """A start request names unknown stages, stages out of order, or production without a tested patch set."""


class NoTestedPatchSet(PatchPilotError):
    """A production stage has no frozen patch set from a test stage of the same run to install."""


class ApprovalRejected(PatchPilotError):
    """On-call rejected the promotion: the error name the decision API sends with SendTaskFailure."""


class ApprovalNotFound(PatchPilotError):
    """No approval has the given id."""


class ApprovalExpired(PatchPilotError):
    """The approval's deadline passed, or its execution no longer waits: it can no longer be decided."""


class ApprovalIdConflict(PatchPilotError):
    """Two different waits derived the same approval id (a hash collision): the second cannot be stored."""


class InvalidExclusionRequest(PatchPilotError):
    """An exclusion request that cannot describe a real stage (an instance both healthy and unhealthy, duplicates)."""


class RejectedPatchListFull(PatchPilotError):
    """Adding the excluded patches would take a baseline's RejectedPatches beyond the API's 50 entries."""


class BaselineUpdateConflict(PatchPilotError):
    """Concurrent writers kept removing the excluded patches from a baseline's RejectedPatches after every retry."""


class TransientAwsError(PatchPilotError):
    """An AWS call failed for a reason that passes (throttling, a 5xx, a transaction conflict, a network error).

    The adapters raise it after botocore's own retries gave up; the state machine retries every Task on it with
    backoff, and the SQS-fed command-result function reports the batch items it affected for redelivery.
    """


class NothingToResume(PatchPilotError):
    """A resume names a cycle that has no execution yet (start it instead)."""


class UnsupportedSchedule(PatchPilotError):
    """A maintenance window schedule PatchPilot cannot compute openings for (a rate, or an unsupported cron field)."""


class SnapshotsIncomplete(PatchPilotError):
    """Pre-patch snapshots could not be taken for every instance of a stage: it stops before its install."""


class RollbackRefused(PatchPilotError):
    """A rollback that cannot be done as asked (no pre-patch snapshot of the instance in the run, no root snapshot)."""
