"""TrafficParams: every knob of ``lepton/TrafficSignal-v0`` and ``lepton/TrafficNetwork-v0`` (and the PettingZoo
env), validated once, so a wrong scenario field is reported before SUMO starts.

Network and route files are paths, or ``package:relative/path`` for files shipped inside an installed Python
package (``sumo_rl:nets/RESCO/cologne1/cologne1.net.xml``): the RESCO nets are licensed for non-commercial use
only, so lepton-sim references sumo-rl's copies at run time instead of shipping them. Resolution uses
``importlib.util.find_spec`` and never imports the package (importing sumo_rl needs SUMO_HOME).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lepton_sim.envs.params import EnvParams, Range

OBS_MODES = ("state",)
OBSERVATIONS = ("density-queue",)
REWARDS = ("diff-waiting-time", "queue", "pressure", "average-speed", "queue-entry")
CONTROLS = ("agent", "fixed-time", "actuated")
BACKENDS = ("libsumo", "traci")


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


class TrafficParams(EnvParams):
    """Keyword arguments of the traffic envs. Units: seconds, vehicles."""

    OBS_MODES: ClassVar[tuple[str, ...]] = OBS_MODES

    obs_mode: str = Field("state", description="observation mode; only 'state' for now")

    # the network and its demand
    net: str = Field(description="SUMO .net.xml: a path or 'package:relative/path' (e.g. sumo_rl:nets/...)")
    route: str | list[str] = Field(description="SUMO .rou.xml file(s), same forms as net")
    begin: int = Field(0, ge=0, description="simulation time (s) at which the episode window starts")
    duration: int = Field(3600, ge=10, le=86400, description="length of the episode window (s of simulated time)")
    demand_scale: Range = Field(Range(low=1.0, high=1.0),
                                description="SUMO --scale on the route demand, sampled per episode")

    # decision timing (RESCO: 10 s decisions with 3 s yellow; arterial4x4 5 s / 2 s)
    delta_time: int = Field(10, ge=1, le=600, description="simulated seconds per env step (one decision)")
    yellow_time: int = Field(3, ge=0, le=60, description="yellow (change) interval before a new green (s)")
    min_green: int = Field(5, ge=0, le=600, description="minimum green before the phase may change again (s)")

    # what the agent sees and optimises
    observation: Literal["density-queue"] = Field(
        "density-queue", description="sumo-rl's observation: phase one-hot, min-green flag, density and queue "
                                     "per incoming lane, all in [0, 1]")
    reward: Literal["diff-waiting-time", "queue", "pressure", "average-speed", "queue-entry"] = Field(
        "queue-entry", description="sumo-rl's rewards, or 'queue-entry': minus the vehicles queued upstream of "
                                   "the signal: halted on the edges that lead to it (up to the previous signal) "
                                   "plus those waiting there to enter the network")
    reward_scale: float = Field(1.0, gt=0.0, le=1000.0, description="reward multiplier")

    # who controls the signals
    control: Literal["agent", "fixed-time", "actuated"] = Field(
        "agent", description="'agent': actions choose the green phase; 'fixed-time': the net's own program "
                             "runs (actions ignored); 'actuated': SUMO's gap-actuated control of that program")
    phase_info: bool = Field(False, description="add per-phase 'phase_pressure' and 'phase_demand' arrays to info "
                                                "(what max-pressure and greedy need); costs lane reads each step")

    episode_metrics: bool = Field(True, description="SUMO tripinfo output and the episode metrics from it "
                                                    "(mean_delay, never_inserted, ...); False leaves them NaN "
                                                    "and saves SUMO ~8% simulation time")

    # simulator
    backend: Literal["libsumo", "traci"] = Field(
        "libsumo", description="libsumo (in-process, fast, one simulation per process) or traci (a SUMO "
                               "subprocess per env, several per process)")
    time_to_teleport: int = Field(-1, ge=-1, description="SUMO --time-to-teleport (s); -1 never teleports")
    sumo_warnings: bool = Field(False, description="print SUMO's warnings")
    render_size: int = Field(480, ge=64, le=2048, description="long side of rgb_array frames (pixels)")

    @field_validator("net")
    @classmethod
    def _net_exists(cls, value: str) -> str:
        resolve_sumo_file(value)
        return value

    @field_validator("route")
    @classmethod
    def _routes_exist(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            resolve_sumo_file(item)
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
            raise ValueError(f"yellow_time ({self.yellow_time} s) must be shorter than delta_time "
                             f"({self.delta_time} s): a decision must leave some green")
        if self.duration % self.delta_time:
            raise ValueError(f"duration ({self.duration} s) must be a multiple of delta_time ({self.delta_time} s)")
        return self

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
