"""Traffic-signal control on real SUMO networks (sumo-rl / RESCO), as Gymnasium and PettingZoo envs.

- ``lepton/TrafficSignal-v0``: one intersection (``signal_env.TrafficSignalEnv``); without arguments sumo-rl's
  single-intersection network and demand.
- ``lepton/TrafficNetwork-v0``: every signal of a network jointly (``network_env.TrafficNetworkEnv``); without
  arguments sumo-rl's 2x2 grid.
- ``grid_env.parallel_env(...)``: PettingZoo Parallel env, one agent per signal.

Importing this package only registers ids (pydantic/numpy); SUMO, sumo-rl and libsumo load with the env.
libsumo runs one simulation per process, hence ``max_envs_per_process=1``: vector envs use subprocesses. And a
libsumo process carries state from one simulation into the next (on the Cologne maps the same seed gave 42.3 or
43.4 s of delay depending on the episodes run before it), hence ``isolate_episodes``: evaluation runs every batch
of episodes in fresh processes, so a report's numbers depend only on the seeds.
"""

import math

from lepton_sim.envs.registration import LeptonEnvSpec, register
from lepton_sim.envs.traffic.params import TrafficParams

# delays, times and vehicle counts (never_inserted counts vehicles, it is not a rate) are non-negative
_BOUNDS = {
    k: (0.0, math.inf)
    for k in (
        "mean_delay",
        "never_inserted",
        "mean_waiting_time",
        "mean_trip_time",
        "throughput",
        "mean_delay_inserted",
    )
}
# metrics.TrafficMetrics: delays and times are seconds per vehicle (or trip), counts are vehicles
_UNITS = {
    **{k: "s" for k in ("mean_delay", "mean_waiting_time", "mean_trip_time", "mean_delay_inserted")},
    "never_inserted": "vehicles",
    "throughput": "vehicles",
}
_OVERLAY = {"phase": "", "queue_length": "vehicles"}  # what lepton-sim rollout shows over the video

# What ``gymnasium.make(id)`` with no arguments simulates (tools such as rl-zoo3 make envs that way): the files of
# scenarios/traffic/single-intersection.yaml and 2x2-grid.yaml. Only the Gymnasium registry has these defaults;
# scenarios name their own network and demand.
DEFAULT_SIGNAL_FILES = {
    "net": "sumo_rl:nets/single-intersection/single-intersection.net.xml",
    "route": "sumo_rl:nets/single-intersection/single-intersection.rou.xml",
}
DEFAULT_NETWORK_FILES = {"net": "sumo_rl:nets/2x2grid/2x2.net.xml", "route": "sumo_rl:nets/2x2grid/2x2.rou.xml"}

register(
    LeptonEnvSpec(
        id="lepton/TrafficSignal-v0",
        domain="traffic",
        entry_point="lepton_sim.envs.traffic.signal_env:TrafficSignalEnv",
        params_model=TrafficParams,
        max_envs_per_process=1,
        isolate_episodes=True,
        metric_bounds=_BOUNDS,
        metric_units=_UNITS,
        binary_metrics=frozenset({"is_success"}),
        overlay_keys=_OVERLAY,
        kwargs=DEFAULT_SIGNAL_FILES,
    )
)
register(
    LeptonEnvSpec(
        id="lepton/TrafficNetwork-v0",
        domain="traffic",
        entry_point="lepton_sim.envs.traffic.network_env:TrafficNetworkEnv",
        params_model=TrafficParams,
        max_envs_per_process=1,
        isolate_episodes=True,
        metric_bounds=_BOUNDS,
        metric_units=_UNITS,
        binary_metrics=frozenset({"is_success"}),
        overlay_keys=_OVERLAY,
        kwargs=DEFAULT_NETWORK_FILES,
        parallel_entry_point="lepton_sim.envs.traffic.grid_env:TrafficGridEnv",
    )
)

__all__ = ["TrafficParams"]
