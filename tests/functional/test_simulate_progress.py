"""The progress lines `patchpilot simulate` prints when its output is not a terminal (or with --json: none)."""

import io
from datetime import UTC, datetime

from rich.console import Console

from patchpilot_sim.progress import LiveProgress, PlainProgress, StageProgress, progress_view

MOMENT = datetime(2026, 12, 8, 21, 5, tzinfo=UTC)


def test_plain_progress_prints_a_stage_each_tenth_of_its_targets_and_when_it_ends() -> None:
    lines: list[str] = []
    view = PlainProgress(lines.append)
    for reported in range(0, 1001, 7):
        view.update([StageProgress("prod-1", "Install", 1000, reported, reported // 100)], MOMENT)
    view.update([StageProgress("prod-1", "Install", 1000, 1000, 10)], MOMENT)
    view.update([StageProgress("prod-1", "Install", 1000, 1000, 10)], MOMENT)
    assert 10 <= len(lines) <= 12
    assert lines[0].startswith("[sim Tue 08 21:05] prod-1   install 0/1000 reported, 0 failed")
    assert "1000/1000 reported, 10 failed" in lines[-1]


def test_plain_progress_starts_over_when_the_stage_sends_its_next_command() -> None:
    lines: list[str] = []
    view = PlainProgress(lines.append)
    view.update([StageProgress("dev", "Install", 4, 4, 0), StageProgress("staging", "", 0, 0, 0)], MOMENT)
    view.update([StageProgress("dev", "Scan", 4, 0, 0)], MOMENT)
    assert [line.split("] ")[1].split(" (")[0] for line in lines] == [
        "dev      install 4/4 reported, 0 failed",
        "dev      scan    0/4 reported, 0 failed",
    ]


def test_progress_view_is_live_only_on_a_terminal_and_silent_with_json() -> None:
    screen = io.StringIO()
    terminal = Console(force_terminal=True, width=100, file=screen)
    live = progress_view(terminal, as_json=False)
    try:
        assert isinstance(live, LiveProgress)
        live.say("dev planning")
        live.update([StageProgress("dev", "Install", 4, 2, 1)], MOMENT)
    finally:
        live.close()
    assert "dev planning" in screen.getvalue()
    assert "2/4" in screen.getvalue()
    assert "simulated Tue 2026-12-08 21:05 UTC" in screen.getvalue()
    piped = Console(force_terminal=False, file=io.StringIO())
    assert isinstance(progress_view(piped, as_json=False), PlainProgress)
    quiet = progress_view(terminal, as_json=True)
    before = screen.getvalue()
    quiet.say("not shown")
    quiet.update([StageProgress("dev", "Install", 4, 4, 0)], MOMENT)
    assert screen.getvalue() == before
