"""What readers of the live mood (overlay, OBS controller, bot) see of the pipeline."""

from __future__ import annotations

from typing import Protocol

from engine.queues import Hub
from engine.types import ClassifiedMessage, MoodPoint, MoodSnapshot, TriggerEvent


class MoodFeed(Protocol):
    """The pipeline's read side: fan-out hubs plus the latest snapshot of each room."""

    @property
    def classified(self) -> Hub[ClassifiedMessage]: ...

    @property
    def snapshots(self) -> Hub[MoodSnapshot]: ...

    @property
    def events(self) -> Hub[TriggerEvent]: ...

    def latest(self, room: str) -> MoodSnapshot | None:
        """The newest snapshot of ``room``, or None if the room has not been seen."""
        ...

    def history(self, room: str, seconds: int) -> list[MoodPoint]:
        """The "now" window of ``room``'s snapshots in the last ``seconds`` (at most 300), one point per
        second, oldest first: what a chart open all along drew (engine.aggregate.SecondSeries)."""
        ...

    def rooms(self) -> list[str]:
        """Every room seen so far, sorted."""
        ...

    def stats(self) -> dict[str, object]:
        """Counters for the dashboard and doctor: queue drops, floods, rates, model and source health."""
        ...
