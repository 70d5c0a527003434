"""Episode metrics from SUMO's tripinfo output, with vehicles that never entered the network charged.

Why: sumo-rl's ``system_mean_waiting_time`` sees only vehicles inside the network, so a controller that keeps an
entrance red looks good (its victims are never inserted). Here every vehicle scheduled to depart inside the
episode window counts:

- inserted vehicles (finished or still driving at the end; SUMO writes the latter with
  ``--tripinfo-output.write-unfinished``): delay = ``timeLoss + departDelay`` (RESCO's delay);
- vehicles scheduled in the window but never inserted (SUMO writes them with
  ``--tripinfo-output.write-undeparted``: ``depart="-1"``, ``departDelay`` = end of window - scheduled depart):
  delay = that wait, i.e. each is charged end of window minus its scheduled depart. (Vehicles scheduled exactly at
  or after the end have departDelay <= 0 and are not due.)

``never_inserted`` counts the vehicles still outside that were due more than ``grace`` seconds before the end (the
envs pass one decision interval, ``delta_time``). A vehicle due in the last second that finds its entry occupied
is an ordinary insertion wait, the same as an inserted vehicle's departDelay, and which controllers leave one
depends only on the signal state in that last second; blocking shows up as vehicles that waited longer. Those
last-interval vehicles are still charged their wait in ``mean_delay``.

``mean_delay`` is the mean over both groups. ``mean_delay_inserted`` drops the never-inserted vehicles, which is
what RESCO reports (comparable with its published tables, but blind to blocking). ``mean_waiting_time`` is SUMO's
``waitingTime`` (time spent below 0.1 m/s in the network) over inserted vehicles; ``mean_trip_time`` the mean
``duration`` of completed trips; ``throughput`` the number of completed trips in the window.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lepton_sim.envs.info import NOT_APPLICABLE

NOT_YET = NOT_APPLICABLE  # NaN that equals NaN: "not known yet" in info, before the window ends

METRIC_KEYS = (
    "mean_delay",
    "never_inserted",
    "mean_waiting_time",
    "mean_trip_time",
    "throughput",
    "mean_delay_inserted",
)


@dataclass(frozen=True)
class EpisodeMetrics:
    mean_delay: float  # s per vehicle, never-inserted vehicles charged
    never_inserted: float  # vehicles due in the window (more than `grace` s before its end) still outside
    mean_waiting_time: float  # s per inserted vehicle
    mean_trip_time: float  # s per completed trip
    throughput: float  # completed trips
    mean_delay_inserted: float  # s per inserted vehicle (RESCO's metric)

    def as_info(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @staticmethod
    def nan_info() -> dict[str, float]:
        """The same keys before the episode ends (values not known yet)."""
        return {k: NOT_YET for k in METRIC_KEYS}


@dataclass(frozen=True)
class Trips:
    """Per-vehicle columns of a tripinfo file."""

    time_loss: np.ndarray
    depart_delay: np.ndarray
    waiting_time: np.ndarray
    duration: np.ndarray
    arrived: np.ndarray  # bool: completed its trip
    inserted: np.ndarray  # bool: entered the network (write-undeparted rows have depart="-1")


_FIELDS = ("depart", "departDelay", "arrival", "duration", "waitingTime", "timeLoss")
_COLUMNS = [re.compile(rb' %s="([^"]*)"' % f.encode()) for f in _FIELDS]  # ~3x faster than an ElementTree


def read_tripinfo(path: str | Path) -> Trips:
    """Parse a tripinfo file (finished, and with write-unfinished / write-undeparted the other vehicles)."""
    data = Path(path).read_bytes()
    if not data.rstrip().endswith(b"</tripinfos>"):
        raise ValueError(f"tripinfo output {path} is not complete XML (no closing </tripinfos>); did SUMO stop early?")
    n = data.count(b"<tripinfo ")
    columns = [pattern.findall(data) for pattern in _COLUMNS]
    if any(len(c) != n for c in columns):  # attributes elsewhere too (extra devices): parse it properly
        rows = list(ET.fromstring(data).iter("tripinfo"))
        columns = [[r.get(f, "nan") for r in rows] for f in _FIELDS]
    depart, depart_delay, arrival, duration, waiting, time_loss = np.array(columns, dtype=float).reshape(6, n)
    return Trips(
        time_loss=time_loss,
        depart_delay=depart_delay,
        waiting_time=waiting,
        duration=duration,
        arrived=arrival >= 0,
        inserted=depart >= 0,
    )


def episode_metrics(trips: Trips, grace: float = 0.0) -> EpisodeMetrics:
    """Inserted trips' timeLoss + departDelay, plus each never-inserted vehicle's wait; ``never_inserted`` counts
    those due more than ``grace`` s before the end (see module docstring)."""
    inserted = trips.inserted
    due = ~inserted & (trips.depart_delay > 0)
    delay = trips.time_loss[inserted] + trips.depart_delay[inserted]
    charged = np.concatenate([delay, trips.depart_delay[due]])
    return EpisodeMetrics(
        mean_delay=_mean(charged),
        never_inserted=float((due & (trips.depart_delay > grace)).sum()),
        mean_waiting_time=_mean(trips.waiting_time[inserted]),
        mean_trip_time=_mean(trips.duration[trips.arrived]),
        throughput=float(trips.arrived.sum()),
        mean_delay_inserted=_mean(delay),
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan
