"""TrafficParams: every knob of ``lepton/TrafficSignal-v0`` and ``lepton/TrafficNetwork-v0`` (and the PettingZoo
env), validated once, so a wrong scenario field is reported before SUMO starts.

Network and route files are paths, or ``package:relative/path`` for files shipped inside an installed Python
package (``sumo_rl:nets/RESCO/cologne1/cologne1.net.xml``): the RESCO nets are licensed for non-commercial use
only, so lepton-sim references sumo-rl's copies at run time instead of shipping them. Resolution uses
``importlib.util.find_spec`` and never imports the package (importing sumo_rl needs SUMO_HOME).
"""

from __future__ import annotations

import bisect
import functools
import gzip
import importlib.util
import math
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lepton_sim.envs.camera_params import CameraParams
from lepton_sim.envs.params import Range

OBSERVATIONS = ("density-queue",)
REWARDS = ("diff-waiting-time", "queue", "pressure", "average-speed", "queue-entry")
CONTROLS = ("agent", "fixed-time", "actuated")
BACKENDS = ("libsumo", "traci")
MAX_BEGIN = 7 * 86400  # s: a week of simulated time is far beyond any demand file's window
ROUTE_ROOTS = ("routes", "additional")  # SUMO reads demand from either
DEPARTING = ("vehicle", "trip", "person", "container")  # elements with one scheduled ``depart``
FLOWS = ("flow", "routeFlow", "personFlow", "containerFlow")  # elements departing over [begin, end)
EDGE_ATTRS = ("edges", "from", "to", "via")  # attributes that name network edges (space-separated lists)


def resolve_sumo_file(spec: str) -> Path:
    """``pkg:rel/path`` -> the file inside the installed package ``pkg``; anything else -> a filesystem path.

    Raises ValueError naming the file (and the package) when it does not exist.
    """
    text = str(spec)
    package, sep, rel = text.partition(":")
    if sep and package.isidentifier() and not Path(text).exists():
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ValueError(f"{text!r}: Python package {package!r} is not installed")
        path = Path(list(found.submodule_search_locations)[0]) / rel
        if not path.is_file():
            raise ValueError(f"{text!r}: no file {rel!r} in package {package} (looked at {path})")
        return path
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"SUMO file not found: {path}")
    return path.resolve()


# ------------------------------------------------------------------------------------ SUMO file contents
# Read once per file version (path, mtime, size) when a scenario is checked, so a garbage, truncated or wrong
# file, a network without signals, a route to a missing edge or a window without demand is reported before any
# SUMO process starts (there it would be a traceback from a worker process).


@dataclass(frozen=True)
class NetSummary:
    edges: frozenset[str]
    signals: int  # <tlLogic> programs: the signals an agent can control


@dataclass(frozen=True)
class RouteSummary:
    departs: tuple[float, ...]  # sorted scheduled departures of single vehicles/trips/persons
    flows: tuple[tuple[float, float], ...]  # (begin, end) of flows
    untimed: int  # departures that are not plain seconds ("triggered", "now", "1:00:00"): not checked
    edge_users: tuple[tuple[str, str], ...]  # (edge, first element naming it), one per distinct edge

    @property
    def count(self) -> int:
        return len(self.departs) + len(self.flows) + self.untimed


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _xml_elements(path: Path, role: str, roots: tuple[str, ...], kind: str):
    """Yield (depth, tag, attributes) of every element; ValueError naming the file if it is not the right XML."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            depth, root = 0, None
            for event, elem in ET.iterparse(f, events=("start", "end")):
                tag = elem.tag.rpartition("}")[2]  # drop a namespace
                if event == "end":
                    depth -= 1
                    if depth == 1:
                        root.clear()  # keep memory flat on big files
                    continue
                depth += 1
                if root is None:
                    root = elem
                    if tag not in roots:
                        raise ValueError(
                            f"{role} file {path} is not a {kind}: its root element is <{tag}>, "
                            f"expected {' or '.join(f'<{r}>' for r in roots)}"
                        )
                yield depth, tag, elem.attrib
    except ET.ParseError as err:
        line, column = err.position
        raise ValueError(
            f"{role} file {path} is not valid XML ({xml.parsers.expat.ErrorString(err.code)}, "
            f"line {line}, column {column})"
        ) from None
    except (OSError, EOFError) as err:  # unreadable, or a broken .gz
        raise ValueError(f"cannot read {role} file {path}: {err}") from None


@functools.lru_cache(maxsize=64)
def _net_summary(key: tuple[str, int, int]) -> NetSummary:
    path = Path(key[0])
    edges, signals = set(), set()
    for depth, tag, attrs in _xml_elements(path, "network", ("net",), "SUMO network (.net.xml)"):
        if depth == 2 and tag == "edge" and "id" in attrs:
            edges.add(attrs["id"])
        elif depth == 2 and tag == "tlLogic":
            signals.add(attrs.get("id"))
    return NetSummary(edges=frozenset(edges), signals=len(signals))


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@functools.lru_cache(maxsize=64)
def _route_summary(key: tuple[str, int, int]) -> RouteSummary:
    path = Path(key[0])
    departs, flows, untimed, users = [], [], 0, {}
    for depth, tag, attrs in _xml_elements(path, "route", ROUTE_ROOTS, "SUMO route file (.rou.xml)"):
        if depth == 2 and tag in DEPARTING:
            t = _seconds(attrs.get("depart"))
            if t is None:
                untimed += 1
            else:
                departs.append(t)
        elif depth == 2 and tag in FLOWS:
            begin = _seconds(attrs.get("begin", "0"))
            end = _seconds(attrs["end"]) if "end" in attrs else math.inf  # no end: assume it runs on
            if begin is None or end is None:
                untimed += 1
            else:
                flows.append((begin, end))
        for attr in EDGE_ATTRS:
            for edge in attrs.get(attr, "").split():
                users.setdefault(edge, f"<{tag} id={attrs.get('id', '?')!r}>")
    return RouteSummary(
        departs=tuple(sorted(departs)), flows=tuple(flows), untimed=untimed, edge_users=tuple(users.items())
    )


def net_summary(path: Path) -> NetSummary:
    return _net_summary(_file_key(path))


def route_summary(path: Path) -> RouteSummary:
    return _route_summary(_file_key(path))


def demand_in_window(routes: list[RouteSummary], begin: float, end: float) -> bool:
    """Whether any vehicle is due in [begin, end) (departures that are not plain seconds count as due)."""
    for r in routes:
        if r.untimed or any(b < end and e > begin for b, e in r.flows):
            return True
        i = bisect.bisect_left(r.departs, begin)
        if i < len(r.departs) and r.departs[i] < end:
            return True
    return False


class TrafficParams(CameraParams):
    """Keyword arguments of the traffic envs. Units: seconds, vehicles, metres.

    Camera fields (``obs_mode``, ``obs_camera``, ``camera_size``, ``channel_order``, ``sensor``) come from
    :class:`~lepton_sim.envs.camera_params.CameraParams`; the one camera, ``approaches``, is drawn by
    :mod:`lepton_sim.envs.traffic.camera`.
    """

    CAMERA_NAMES: ClassVar[tuple[str, ...]] = ("approaches",)
    CAMERA_CHANNELS: ClassVar[tuple[str, ...]] = ()

    # the network and its demand
    net: str = Field(description="SUMO .net.xml: a path or 'package:relative/path' (e.g. sumo_rl:nets/...)")
    route: str | list[str] = Field(description="SUMO .rou.xml file(s), same forms as net")
    begin: int = Field(0, ge=0, le=MAX_BEGIN, description="simulation time (s) at which the episode window starts")
    duration: int = Field(3600, ge=10, le=86400, description="length of the episode window (s of simulated time)")
    demand_scale: Range = Field(
        Range(low=1.0, high=1.0), description="SUMO --scale on the route demand, sampled per episode"
    )

    # decision timing (RESCO: 10 s decisions with 3 s yellow; arterial4x4 5 s / 2 s)
    delta_time: int = Field(10, ge=1, le=600, description="simulated seconds per env step (one decision)")
    yellow_time: int = Field(3, ge=0, le=60, description="yellow (change) interval before a new green (s)")
    min_green: int = Field(5, ge=0, le=600, description="minimum green before the phase may change again (s)")

    # what the agent sees and optimises
    observation: Literal["density-queue"] = Field(
        "density-queue",
        description="sumo-rl's observation: phase one-hot, min-green flag, density and queue "
        "per incoming lane, all in [0, 1]",
    )
    reward: Literal["diff-waiting-time", "queue", "pressure", "average-speed", "queue-entry"] = Field(
        "queue-entry",
        description="sumo-rl's rewards, or 'queue-entry': minus the vehicles queued upstream of "
        "the signal: halted on the edges that lead to it (up to the previous signal) "
        "plus those waiting there to enter the network",
    )
    reward_scale: float = Field(1.0, gt=0.0, le=1000.0, description="reward multiplier")

    # who controls the signals
    control: Literal["agent", "fixed-time", "actuated"] = Field(
        "agent",
        description="'agent': actions choose the green phase; 'fixed-time': the net's own program "
        "runs (actions ignored); 'actuated': SUMO's gap-actuated control of that program",
    )
    phase_info: bool = Field(
        False,
        description="add per-phase 'phase_pressure' and 'phase_demand' arrays to info "
        "(what max-pressure and greedy need); costs lane reads each step",
    )

    episode_metrics: bool = Field(
        True,
        description="SUMO tripinfo output and the episode metrics from it "
        "(mean_delay, never_inserted, ...); False leaves them NaN "
        "and saves SUMO ~8% simulation time",
    )

    # simulator
    backend: Literal["libsumo", "traci"] = Field(
        "libsumo",
        description="libsumo (in-process, fast, one simulation per process) or traci (a SUMO "
        "subprocess per env, several per process)",
    )
    time_to_teleport: int = Field(
        -1, ge=-1, le=MAX_BEGIN, description="SUMO --time-to-teleport (s); -1 never teleports"
    )
    sumo_warnings: bool = Field(False, description="print SUMO's warnings")
    render_size: int = Field(480, ge=64, le=2048, description="long side of rgb_array frames (pixels)")
    camera_range: float = Field(
        80.0,
        ge=10.0,
        le=1000.0,
        description="metres of each incoming lane before the stop line the 'approaches' camera shows",
    )

    @field_validator("net")
    @classmethod
    def _net_exists(cls, value: str) -> str:
        path = resolve_sumo_file(value)
        if net_summary(path).signals == 0:
            raise ValueError(f"network file {path} has no traffic lights (<tlLogic>) to control")
        return value

    @field_validator("route")
    @classmethod
    def _routes_exist(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            route_summary(resolve_sumo_file(item))
        if isinstance(value, list) and not value:
            raise ValueError("at least one route file is needed")
        return value

    @field_validator("demand_scale")
    @classmethod
    def _scale_range(cls, value: Range) -> Range:
        return value.within(0.05, 10.0)

    @model_validator(mode="after")
    def _timing(self) -> "TrafficParams":
        if self.yellow_time >= self.delta_time:
            raise ValueError(
                f"yellow_time ({self.yellow_time} s) must be shorter than delta_time "
                f"({self.delta_time} s): a decision must leave some green"
            )
        if self.duration % self.delta_time:
            raise ValueError(f"duration ({self.duration} s) must be a multiple of delta_time ({self.delta_time} s)")
        return self

    @model_validator(mode="after")
    def _demand_fits_net_and_window(self) -> "TrafficParams":
        """Routes must use the network's edges, and some vehicle must be due in the window: an empty window
        would report every vehicle inserted, i.e. 100% success, for any policy."""
        edges = net_summary(self.net_path).edges
        paths = self.route_paths
        summaries = [route_summary(p) for p in paths]
        for path, summary in zip(paths, summaries):
            for edge, user in summary.edge_users:
                if edge not in edges:
                    raise ValueError(
                        f"route file {path}: {user} uses edge {edge!r}, which network "
                        f"{self.net_path} does not have (route and net files do not match)"
                    )
        shown = ", ".join(str(p) for p in paths)
        if not any(s.count for s in summaries):
            raise ValueError(f"route file(s) {shown} contain no vehicles, trips or flows: there is no demand")
        end = self.begin + self.duration
        if not demand_in_window(summaries, self.begin, end):
            times = [t for s in summaries for t in (*s.departs, *(b for b, _ in s.flows), *(e for _, e in s.flows))]
            raise ValueError(
                f"no vehicle is due in the episode window [{self.begin}, {end}) s (begin, "
                f"begin + duration): route file(s) {shown} depart vehicles between "
                f"{min(times):g} and {max(times):g} s; move begin into that span"
            )
        return self

    def camera_channels(self, name: str) -> int:
        """Channels of camera ``name``: ``approaches`` stacks every signal's RGB image, 3 x the net's signals (3 for
        ``lepton/TrafficSignal-v0``; each PettingZoo agent sees its own 3)."""
        return 3 * net_summary(self.net_path).signals

    # ------------------------------------------------------------------ resolved paths and derived values
    @property
    def net_path(self) -> Path:
        return resolve_sumo_file(self.net)

    @property
    def route_paths(self) -> list[Path]:
        return [resolve_sumo_file(r) for r in ([self.route] if isinstance(self.route, str) else self.route)]

    @property
    def episode_steps(self) -> int:
        """Env steps in one episode window."""
        return self.duration // self.delta_time
