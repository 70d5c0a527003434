"""Production-line metrics of one episode, reported through ``info`` on every step and reset.

"Not applicable yet" is :data:`lepton_sim.envs.info.NOT_APPLICABLE`, a NaN that equals other NaNs (see there).
"""

from __future__ import annotations

from typing import Any

from lepton_sim.envs.info import NOT_APPLICABLE

# every step's and reset's info carries exactly these keys
INFO_KEYS = (
    "is_success",
    "parts_placed",
    "mis_sorted",
    "dropped",
    "missed",
    "parts_per_minute",
    "mis_sort_rate",
    "drop_rate",
    "time_to_success",
)


class TaskMetrics:
    """Counters of one episode and the rates derived from them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.placed = 0  # parts put where they belong
        self.mis_sorted = 0  # parts put into a wrong bin
        self.dropped = 0  # parts lost off the belt/table or left outside any bin
        self.missed = 0  # parts carried out of the reachable zone by the belt
        self.success = False
        self.time_to_success: float | None = None

    def mark_success(self, success: bool, time: float) -> None:
        """Record success (sticky within the episode) and when it first happened."""
        if success and not self.success:
            self.time_to_success = time
        self.success = self.success or success

    def info(self, time: float) -> dict[str, Any]:
        """The info dict at simulated ``time`` (s) since reset."""
        binned = self.placed + self.mis_sorted
        resolved = binned + self.dropped + self.missed
        return {
            "is_success": bool(self.success),
            "parts_placed": int(self.placed),
            "mis_sorted": int(self.mis_sorted),
            "dropped": int(self.dropped),
            "missed": int(self.missed),
            "parts_per_minute": float(self.placed * 60.0 / time) if time > 0 else NOT_APPLICABLE,
            "mis_sort_rate": float(self.mis_sorted / binned) if binned else NOT_APPLICABLE,
            "drop_rate": float(self.dropped / resolved) if resolved else NOT_APPLICABLE,
            "time_to_success": float(self.time_to_success) if self.time_to_success is not None else NOT_APPLICABLE,
        }
