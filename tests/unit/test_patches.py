"""The one definition of "during this run" (models.patches), used by the exclusion, the frozen set and the inventory."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from patchpilot.models.patches import InstancePatch, PatchState, during_run, installed_during_run

RUN_START = datetime(2026, 12, 8, 18, 0, tzinfo=UTC)


def _patch(state: PatchState, when: datetime | None) -> InstancePatch:
    return InstancePatch(
        instance_id="i-0123456789abcdef0",
        patch_id="KB1",
        title="KB1",
        classification="Security",
        severity="Critical",
        state=state,
        installed_time=when,
    )


@pytest.mark.parametrize(
    ("state", "when", "during", "installed"),
    [
        (PatchState.INSTALLED, RUN_START, True, True),
        (PatchState.INSTALLED_PENDING_REBOOT, RUN_START + timedelta(hours=1), True, True),
        (PatchState.FAILED, RUN_START + timedelta(hours=1), True, False),
        (PatchState.INSTALLED, RUN_START - timedelta(seconds=1), False, False),
        (PatchState.FAILED, None, True, False),
        (PatchState.FAILED, datetime(1970, 1, 1, tzinfo=UTC), True, False),
        (PatchState.INSTALLED, None, False, False),
        (PatchState.INSTALLED, datetime(1970, 1, 1, tzinfo=UTC), False, False),
        (PatchState.INSTALLED_OTHER, RUN_START + timedelta(hours=1), False, False),
        (PatchState.MISSING, RUN_START + timedelta(hours=1), False, False),
    ],
)
def test_during_run_counts_what_this_run_installed_or_failed(
    state: PatchState, when: datetime | None, during: bool, installed: bool
) -> None:
    patch = _patch(state, when)
    assert (during_run(patch, RUN_START), installed_during_run(patch, RUN_START)) == (during, installed)


def test_during_run_compares_naive_and_aware_times_as_utc() -> None:
    naive_after = _patch(PatchState.INSTALLED, datetime(2026, 12, 8, 18, 30))
    naive_before = _patch(PatchState.INSTALLED, datetime(2026, 12, 8, 17, 30))
    assert during_run(naive_after, RUN_START) is True
    assert during_run(naive_before, RUN_START) is False
    assert during_run(_patch(PatchState.INSTALLED, RUN_START), RUN_START.replace(tzinfo=None)) is True


def test_during_run_normalises_other_offsets_to_utc() -> None:
    # 19:30 at UTC+2 is 17:30 UTC: before the run started at 18:00 UTC
    plus_two = timezone(timedelta(hours=2))
    assert during_run(_patch(PatchState.INSTALLED, datetime(2026, 12, 8, 19, 30, tzinfo=plus_two)), RUN_START) is False
    assert during_run(_patch(PatchState.INSTALLED, datetime(2026, 12, 8, 20, 30, tzinfo=plus_two)), RUN_START) is True
