"""Bisection: tell indistinguishable suspects apart by installing halves of them on a restored instance.

Correlation cannot separate patches that arrived together on the same instances (typically: one instance of an OS
in the stage, broken by a patch that installed cleanly). The stage then bisects, per such OS, on one of its
unhealthy instances that has a pre-patch snapshot in the run: restore the instance's root volume from that snapshot
(EC2 CreateReplaceRootVolumeTask), install a subset of the suspects through an InstallOverrideList targeted at that
instance only (a bisection tag, like the canary tag), verify its health, narrow, and again, within a bounded number
of rounds. The culprits found are then excluded by the ordinary exclusion path (``exclusion.exclude_failing_patches``
reads the concluded record) and the stage's retry goes on. Every decision is in the runs table (``BisectionRecord``);
the state machine's payload carries the next action and counts.
"""

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from patchpilot.integrations.ports import (
    BisectionLedger,
    CanaryTags,
    CommandDirectory,
    PatchInventory,
    PatchSetStore,
    SnapshotLedger,
    VolumeSnapshots,
)
from patchpilot.logic.commands import rollback_command
from patchpilot.logic.exclusion import correlate_patches
from patchpilot.logic.snapshots import snapshot_tags
from patchpilot.logic.stage_plan import bisect_round_commands
from patchpilot.models.bisection import (
    BISECT_TAG_KEY,
    MAX_SUBJECTS,
    MAX_SUSPECTS,
    BisectionRecord,
    BisectionStep,
    BisectionSubject,
    CheckRestoreRequest,
    JudgeRoundRequest,
    Observation,
    RestoreThen,
    StartBisectionRequest,
    Suspect,
)
from patchpilot.models.exceptions import TransientAwsError
from patchpilot.models.exclusion import ExclusionThresholds, PatchEvidence

RESTORE_FAILED_STATES = frozenset({"failing", "failed", "failing-detached", "failed-detached"})
MAX_RESTORE_POLLS = 60


@dataclass(frozen=True)
class Narrowing:
    """What the observations so far say: test these suspects next, the culprits are found, or stop (why).

    ``culprits`` holds the culprits singled out so far, whatever the kind.
    """

    kind: Literal["test", "found", "stop"]
    tested: tuple[str, ...] = ()
    culprits: tuple[str, ...] = ()
    reason: str = ""


def rounds_needed(suspects: int) -> int:
    """Rounds halving needs to single out one culprit among ``suspects`` (ceil(log2)), without the confirmation."""
    return math.ceil(math.log2(suspects)) if suspects > 1 else 0


def _identified(broken: list[list[str]]) -> list[str]:
    """Culprits: the lone remaining member of a set that broke the instance, in the order they are singled out."""
    culprits: list[str] = []
    for remaining in broken:
        if len(remaining) == 1 and remaining[0] not in culprits:
            culprits.append(remaining[0])
    return culprits


def narrow_suspects(suspects: Sequence[str], observations: Sequence[Observation], max_rounds: int) -> Narrowing:
    """The next subset to install, or the culprits, from what the rounds so far observed.

    Method. The failed stage observed that installing every suspect together broke the instance. A round installs a
    subset on the restored instance: a healthy round clears every patch of the subset (assumption: a patch breaks the
    instance on its own, not only together with another one); an unhealthy round says the subset holds a culprit.
    Each set that broke the instance, minus the cleared patches, still holds a culprit; one that is down to a single
    patch names it. A broken set that holds no culprit found so far is unexplained: the next round installs the first
    half (rounded up) of the smallest unexplained set (the earliest, on a tie), in the suspects' order. With one
    culprit that takes ceil(log2(suspects)) rounds. Once every broken set is explained, one more round installs every
    suspect neither cleared nor found: healthy, the culprits were alone (and the instance ends with every good patch);
    unhealthy, that set is unexplained and halving goes on (several culprits).

    Parameters
    ----------
    suspects : Sequence[str]
        The indistinguishable patches, in a stable order (duplicates ignored).
    observations : Sequence[Observation]
        The rounds so far, in order.
    max_rounds : int
        The policy's cap on rounds for these suspects.

    Returns
    -------
    Narrowing
        ``test`` (the subset of the next round), ``found`` (the culprits; when the cap stopped the confirmation
        round, the reason says so) or ``stop``: the cap is reached with a set still unexplained, or a set that broke
        the instance holds only patches that installed cleanly in other rounds (patches that break only together,
        or an instance that breaks by itself).
    """
    order = list(dict.fromkeys(suspects))
    cleared = {patch for o in observations if o.healthy for patch in o.installed}
    broken = [[p for p in order if p not in cleared]]
    broken += [[p for p in dict.fromkeys(o.installed) if p not in cleared] for o in observations if not o.healthy]
    emptied = next((i for i, remaining in enumerate(broken) if not remaining), None)
    if emptied is not None:
        what = "all the suspects together" if emptied == 0 else f"round {_round_of(observations, emptied)}'s subset"
        return Narrowing(
            "stop",
            reason=f"{what} broke the instance, yet each of those patches installed cleanly in another round: "
            "patches that break it only together, or an instance that breaks by itself",
        )
    culprits = _identified(broken)
    unexplained = [remaining for remaining in broken if not set(remaining) & set(culprits)]
    rounds = len(observations)
    if unexplained:
        if rounds >= max_rounds:
            return Narrowing(
                "stop",
                culprits=tuple(culprits),
                reason=f"{rounds} round(s), the policy's cap, left {min(len(u) for u in unexplained)} suspects "
                "that cannot be told apart",
            )
        target = min(unexplained, key=len)
        return Narrowing("test", tuple(target[: (len(target) + 1) // 2]), tuple(culprits))
    rest = [p for p in order if p not in cleared and p not in culprits]
    if rest and rounds < max_rounds:
        return Narrowing("test", tuple(rest), tuple(culprits))
    note = f"; {len(rest)} other suspect(s) not confirmed (the policy's cap of {max_rounds} rounds)" if rest else ""
    return Narrowing("found", culprits=tuple(culprits), reason=f"{', '.join(culprits)} after {rounds} round(s){note}")


def _round_of(observations: Sequence[Observation], broken_index: int) -> int:
    unhealthy = [o for o in observations if not o.healthy]
    return unhealthy[broken_index - 1].round


def restore_client_token(run_id: str, stage_name: str, attempt: int, instance_id: str, round_number: int) -> str:
    """CreateReplaceRootVolumeTask's idempotency token of one bisection restore (a retried call starts one task)."""
    digest = hashlib.sha256(f"{run_id}/{stage_name}/{attempt}/{instance_id}/{round_number}".encode()).hexdigest()
    return f"patchpilot-bisect-{digest[:40]}"


def bisect_tag_value(run_id: str, stage_name: str) -> str:
    """The bisection tag's value on the instance a stage bisects on (one per run and stage: no stale tag matches)."""
    return f"{run_id}/{stage_name}"


@dataclass(frozen=True)
class BisectionPorts:
    """What bisection talks to: patch states, snapshots, restores, tags, install lists and its record."""

    inventory: PatchInventory
    snapshots: SnapshotLedger
    volumes: VolumeSnapshots
    tags: CanaryTags
    directory: CommandDirectory
    patch_sets: PatchSetStore
    ledger: BisectionLedger
    health_check_document: str  # the stack's health-check document: each round's health command
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def _subjects(request: StartBisectionRequest, ports: BisectionPorts) -> tuple[list[BisectionSubject], list[str]]:
    """Per inconclusive OS: the unhealthy instance to bisect on (one with a pre-patch root snapshot), its suspects.

    Returns the subjects and, for the OSes that cannot be bisected, why.
    """
    unhealthy = {i.instance_id: i.platform for i in request.unhealthy}
    healthy = {i.instance_id: i.platform for i in request.healthy}
    patches = {i: ports.inventory.installed_during(i, request.run.started_at) for i in [*unhealthy, *healthy]}
    correlation = correlate_patches(unhealthy, healthy, patches, request.run.started_at, ExclusionThresholds())
    roots = {
        s.instance_id: s.root_snapshot.snapshot_id
        for s in ports.snapshots.sets_of(request.run.run_id)
        if s.stage_name == request.stage.name and s.root_snapshot is not None
    }
    subjects: list[BisectionSubject] = []
    refusals: list[str] = []
    for system, group in sorted(correlation.undecided.items()):
        candidates = sorted(correlation.failing_instances.get(group[0].patch_id, []))
        chosen = next((i for i in candidates if i in roots), None)
        if chosen is None:
            shown = ", ".join(candidates[:5]) or "none sampled"
            refusals.append(f"{system}: no pre-patch snapshot of its unhealthy instance(s) ({shown}) in this stage")
            continue
        if len(group) > MAX_SUSPECTS:
            refusals.append(f"{system}: {len(group)} suspects, more than the {MAX_SUSPECTS} bisection handles")
            continue
        suspects = [Suspect(patch_id=p.patch_id, title=p.title) for p in sorted(group, key=_by_id)]
        subject = BisectionSubject(
            operating_system=system, instance_id=chosen, root_snapshot_id=roots[chosen], suspects=suspects
        )
        subjects.append(subject)
    if not correlation.undecided:
        refusals.append("the correlation has no group of indistinguishable suspects to bisect")
    return subjects[:MAX_SUBJECTS], refusals


def _by_id(patch: PatchEvidence) -> str:
    return patch.patch_id


def _stop(record: BisectionRecord, reason: str, ports: BisectionPorts) -> BisectionStep:
    subject = record.subjects[record.current] if record.subjects else None
    hint = (
        f" The instance may be left with a subset installed: {rollback_command(record.run_id, subject.instance_id)}"
        if subject is not None and subject.observations
        else ""
    )
    ports.ledger.save(record.model_copy(update={"status": "stopped", "reason": reason, "updated_at": ports.now()}))
    _untag(record, ports)
    return BisectionStep(action="stop", reason=f"bisection stopped: {reason}.{hint}", round=record.rounds)


def _untag(record: BisectionRecord, ports: BisectionPorts) -> None:
    ids = [subject.instance_id for subject in record.subjects]
    if ids:
        ports.tags.untag(ids, BISECT_TAG_KEY)


def _restore(record: BisectionRecord, then: RestoreThen, ports: BisectionPorts, poll_seconds: int) -> BisectionStep:
    """Start restoring the current subject's instance from its pre-patch root snapshot; wait for it next."""
    subject = record.subjects[record.current]
    round_number = record.rounds + 1
    task_id = ports.volumes.replace_root_volume(
        subject.instance_id,
        subject.root_snapshot_id,
        restore_client_token(record.run_id, record.stage_name, record.attempt, subject.instance_id, round_number),
        snapshot_tags(record.run_id, record.stage_name, subject.instance_id),
    )
    updated = record.model_copy(
        update={
            "status": "restoring",
            "restore_task_id": task_id,
            "restore_polls": 0,
            "then": then,
            "updated_at": ports.now(),
        }
    )
    ports.ledger.save(updated)
    return BisectionStep(
        action="wait_restore", round=record.rounds, suspects=len(subject.suspects), poll_seconds=poll_seconds
    )


def _with_subject(record: BisectionRecord, subject: BisectionSubject) -> BisectionRecord:
    subjects = list(record.subjects)
    subjects[record.current] = subject
    return record.model_copy(update={"subjects": subjects})


def _advance(record: BisectionRecord, ports: BisectionPorts, poll_seconds: int) -> BisectionStep:
    """Decide the current subject's next round (restore first), move on to the next subject, or conclude."""
    subject = record.subjects[record.current]
    narrowing = narrow_suspects([s.patch_id for s in subject.suspects], subject.observations, record.max_rounds)
    if narrowing.kind == "stop":
        return _stop(record, f"{subject.operating_system} on {subject.instance_id}: {narrowing.reason}", ports)
    if narrowing.kind == "test":
        record = _with_subject(record, subject.model_copy(update={"testing": list(narrowing.tested)}))
        return _restore(record, "run_round", ports, poll_seconds)
    found = subject.model_copy(update={"culprits": list(narrowing.culprits), "testing": None, "done": True})
    record = _with_subject(record, found).model_copy(update={"reason": narrowing.reason})
    last_broke = bool(found.observations) and not found.observations[-1].healthy
    last_subject = record.current + 1 >= len(record.subjects)
    if last_broke:  # leave the instance healthy for the stage's retry: restore it once more
        return _restore(record, "exclude" if last_subject else "next_subject", ports, poll_seconds)
    return _next_subject(record, ports, poll_seconds)


def _next_subject(record: BisectionRecord, ports: BisectionPorts, poll_seconds: int) -> BisectionStep:
    if record.current + 1 < len(record.subjects):
        return _advance(record.model_copy(update={"current": record.current + 1}), ports, poll_seconds)
    return _conclude(record, ports)


def _conclude(record: BisectionRecord, ports: BisectionPorts) -> BisectionStep:
    concluded = record.model_copy(update={"status": "concluded", "restore_task_id": None, "updated_at": ports.now()})
    ports.ledger.save(concluded)
    _untag(record, ports)
    culprits = [c.patch_id for found in concluded.culprits_by_system().values() for c in found]
    summary = "; ".join(
        f"{s.operating_system} on {s.instance_id}: {', '.join(s.culprits)} among {len(s.suspects)} suspects in "
        f"{len(s.observations)} round(s)"
        for s in concluded.subjects
    )
    return BisectionStep(action="exclude", reason=summary, round=concluded.rounds, culprits=culprits)


def start_bisection(request: StartBisectionRequest, ports: BisectionPorts) -> BisectionStep:
    """Choose what to bisect on, tag the instances, and start the first restore (or say why it cannot bisect).

    A second start of the same stage attempt (a retried task) resumes the recorded bisection instead.
    """
    run, stage = request.run, request.stage
    poll_seconds = run.limits.restore_poll_seconds
    existing = ports.ledger.bisection(run.run_id, stage.name, request.attempt)
    if existing is not None and existing.status in ("concluded", "stopped"):
        reason = f"bisection of this stage attempt already {existing.status}: {existing.reason or 'it ended before'}"
        return BisectionStep(action="stop", reason=reason)
    if existing is not None:
        return BisectionStep(action="wait_restore", round=existing.rounds, poll_seconds=poll_seconds)
    if stage.bisect is None:
        return BisectionStep(action="stop", reason=f"stage {stage.name} does not bisect (its policy has no bisect)")
    subjects, refusals = _subjects(request, ports)
    now = ports.now()
    record = BisectionRecord(
        run_id=run.run_id,
        stage_name=stage.name,
        attempt=request.attempt,
        phase_set=request.phase_set,
        max_rounds=stage.bisect.max_rounds,
        subjects=subjects,
        status="restoring",
        started_at=now,
        updated_at=now,
    )
    if refusals:
        return _stop(record, "; ".join(refusals), ports)
    value = bisect_tag_value(run.run_id, stage.name)
    ids = [subject.instance_id for subject in subjects]
    ports.tags.tag(ids, BISECT_TAG_KEY, value)
    visible = len(ports.directory.managed_instances(BISECT_TAG_KEY, value))
    if visible != len(ids):  # tags are eventually consistent: the round's commands must reach the instance
        raise TransientAwsError(f"stage {stage.name}: {visible} of {len(ids)} bisection tags visible to SSM yet")
    return _advance(record, ports, poll_seconds)


def _recorded(run_id: str, stage_name: str, attempt: int, ports: BisectionPorts) -> BisectionRecord:
    record = ports.ledger.bisection(run_id, stage_name, attempt)
    if record is None:
        raise TransientAwsError(f"stage {stage_name}: no bisection recorded for attempt {attempt} yet")
    return record


def check_restore(request: CheckRestoreRequest, ports: BisectionPorts) -> BisectionStep:
    """After a poll interval: wait again, run the round, go on with the next subject, conclude, or stop.

    EC2 emits no event when a replace-root-volume task ends: its state is polled (DescribeReplaceRootVolumeTasks),
    at most ``MAX_RESTORE_POLLS`` times. ``succeeded`` means "the replacement volume has been successfully attached
    to the instance and the instance is available"; ``failing``/``failed`` keep the original volume,
    ``failing-detached``/``failed-detached`` leave none (EC2 API reference, ReplaceRootVolumeTask ``taskState``).
    """
    run, stage = request.run, request.stage
    poll_seconds = run.limits.restore_poll_seconds
    record = _recorded(run.run_id, stage.name, request.attempt, ports)
    if record.status != "restoring" or record.restore_task_id is None:
        return BisectionStep(action="stop", reason=f"bisection is {record.status}, not restoring: {record.reason}")
    subject = record.subjects[record.current]
    state = ports.volumes.replace_root_volume_state(record.restore_task_id)
    if state in RESTORE_FAILED_STATES:
        return _stop(record, f"restoring {subject.instance_id} ({record.restore_task_id}) ended {state}", ports)
    if state != "succeeded":
        polls = record.restore_polls + 1
        if polls >= MAX_RESTORE_POLLS:
            return _stop(
                record,
                f"restoring {subject.instance_id} ({record.restore_task_id}) still {state} after {polls} polls",
                ports,
            )
        ports.ledger.save(record.model_copy(update={"restore_polls": polls, "updated_at": ports.now()}))
        return BisectionStep(action="wait_restore", round=record.rounds, poll_seconds=poll_seconds)
    if record.then == "exclude":
        return _conclude(record, ports)
    if record.then == "next_subject":
        return _next_subject(record, ports, poll_seconds)
    return _start_round(record, request, ports)


def _start_round(record: BisectionRecord, request: CheckRestoreRequest, ports: BisectionPorts) -> BisectionStep:
    subject = record.subjects[record.current]
    testing = subject.testing or []
    titles = {s.patch_id: s for s in subject.suspects}
    round_number = record.rounds + 1
    name = f"bisect-{record.stage_name}-{record.attempt}-{round_number}"
    install_list = ports.patch_sets.write_install_list(record.run_id, name, [titles[p] for p in testing])
    step = bisect_round_commands(
        request.run,
        request.stage,
        request.attempt,
        round_number,
        install_list,
        BISECT_TAG_KEY,
        bisect_tag_value(record.run_id, record.stage_name),
        ports.health_check_document,
    )
    testing_now = {"status": "testing", "restore_task_id": None, "updated_at": ports.now()}
    ports.ledger.save(record.model_copy(update=testing_now))
    return BisectionStep(
        action="run_round",
        reason=f"round {round_number}: {len(testing)} of {len(subject.suspects)} suspects on {subject.instance_id}",
        round=round_number,
        suspects=len(testing),
        step=step,
        poll_seconds=request.run.limits.restore_poll_seconds,
    )


def judge_round(request: JudgeRoundRequest, ports: BisectionPorts) -> BisectionStep:
    """Record a round's verdict (once: a retried call finds it recorded) and decide the next step."""
    run, stage = request.run, request.stage
    record = _recorded(run.run_id, stage.name, request.attempt, ports)
    subject = record.subjects[record.current]
    if record.status == "testing" and subject.testing is not None:
        observed = Observation(round=record.rounds + 1, installed=subject.testing, healthy=request.healthy)
        subject = subject.model_copy(update={"observations": [*subject.observations, observed], "testing": None})
        record = _with_subject(record, subject)
        ports.ledger.save(record.model_copy(update={"updated_at": ports.now()}))
    return _advance(record, ports, run.limits.restore_poll_seconds)


def advance_bisection(
    request: StartBisectionRequest | CheckRestoreRequest | JudgeRoundRequest, ports: BisectionPorts
) -> BisectionStep:
    """One step of a stage's bisection (start, check the restore, judge a round): what the state machine does next."""
    if isinstance(request, StartBisectionRequest):
        return start_bisection(request, ports)
    if isinstance(request, CheckRestoreRequest):
        return check_restore(request, ports)
    return judge_round(request, ports)
