"""What the operator sees while a simulated cycle runs: per stage, instances reported/targeted, failures, the clocks.

On a terminal `LiveProgress` redraws one table in place (rich's Live display) and prints the narrative lines above
it; elsewhere (a pipe, a CI log) `PlainProgress` prints a plain line whenever a stage's counts move by a tenth of its
targets, so a 10,000-instance run is a few dozen lines, not a wall of text. Counts are the fleet's ground truth:
the invocations of the latest command sent to each stage's patch group (counted as they end, so a redraw costs the
same at 10 and 10,000 instances).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from patchpilot_sim.fleet import SsmAgentSimulator

PATCH_GROUP_TAG = "tag:PatchGroup"


@dataclass(frozen=True)
class StageProgress:
    """One stage's progress on the fleet."""

    name: str
    phase: str  # the latest command's operation (Install, Scan, Health) or "" before any
    targeted: int
    reported: int
    failed: int


def stage_progress(fleet: SsmAgentSimulator, stages: dict[str, str]) -> list[StageProgress]:
    """Per stage (name -> patch group): the latest command's invocations that ended, and those that did not succeed."""
    latest: dict[str, tuple[datetime, str, int, int, int]] = {}
    with fleet.hold():
        for command in fleet.commands.values():
            groups = {v for t in command.targets if t.get("Key") == PATCH_GROUP_TAG for v in t.get("Values", [])}
            for group in groups:
                if group in latest and latest[group][0] > command.requested:
                    continue
                counts = (len(command.invocations), command.completed, command.unsuccessful)
                latest[group] = (command.requested, command.operation, *counts)
    rows = []
    for name, group in stages.items():
        _, phase, targeted, reported, failed = latest.get(group, (datetime.min, "", 0, 0, 0))
        rows.append(StageProgress(name, phase, targeted, reported, failed))
    return rows


class ProgressView(Protocol):
    """Receives the narrative lines and the stages' progress of a running simulation."""

    def say(self, line: str) -> None: ...

    def update(self, stages: list[StageProgress], simulated: datetime) -> None: ...

    def close(self) -> None: ...


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else 0
    return "#" * filled + "." * (width - filled)


class PlainProgress:
    """Plain lines: every narrative line, and a stage's counts each time they move by a tenth of its targets."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.started = time.monotonic()
        self._shown: dict[str, tuple[str, int, int]] = {}

    def say(self, line: str) -> None:
        self.write(line)

    def update(self, stages: list[StageProgress], simulated: datetime) -> None:
        for stage in stages:
            if not stage.targeted:
                continue
            step = max(1, stage.targeted // 10)
            shown = self._shown.get(stage.name)
            finished = stage.reported == stage.targeted
            moved = shown is None or shown[0] != stage.phase or stage.reported - shown[1] >= step
            if not moved and not (finished and shown is not None and shown[1] != stage.reported):
                continue
            self._shown[stage.name] = (stage.phase, stage.reported, stage.failed)
            self.write(
                f"[sim {simulated:%a %d %H:%M}] {stage.name:8} {stage.phase.lower():7} "
                f"{stage.reported}/{stage.targeted} reported, {stage.failed} failed "
                f"({time.monotonic() - self.started:.0f} s real)"
            )

    def close(self) -> None:
        return None


class LiveProgress:
    """A table redrawn in place on a terminal; narrative lines scroll above it."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.started = time.monotonic()
        self._live: Live = Live(console=console, auto_refresh=False, transient=False)
        self._live.start()

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, soft_wrap=True)

    def update(self, stages: list[StageProgress], simulated: datetime) -> None:
        self._live.update(self._table(stages, simulated), refresh=True)

    def _table(self, stages: list[StageProgress], simulated: datetime) -> Table:
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        table = Table(title=f"simulated {simulated:%a %Y-%m-%d %H:%M} UTC, {elapsed:.0f} s real", title_justify="left")
        for column in ("stage", "command", "reported / targeted", "", "failed"):
            table.add_column(column)
        for stage in stages:
            table.add_row(
                stage.name,
                stage.phase.lower(),
                f"{stage.reported}/{stage.targeted}",
                _bar(stage.reported, stage.targeted),
                str(stage.failed),
            )
        return table

    def close(self) -> None:
        self._live.stop()


def progress_view(console: Console, as_json: bool) -> ProgressView:
    """The live view on a terminal; plain lines when output is not a terminal; nothing but the summary with --json."""
    if as_json:
        return PlainProgress(lambda _: None)
    if console.is_terminal:
        return LiveProgress(console)
    return PlainProgress(lambda line: console.print(line, markup=False, soft_wrap=True))
