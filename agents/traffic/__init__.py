"""Traffic-signal baselines for ``lepton-sim evaluate NAME``, and parameter-shared multi-agent training helpers.

Importing this package registers the baselines only (no SUMO, no torch).
"""

from lepton_sim.agents.traffic.baselines import actuated, fixed_time, greedy, max_pressure
from lepton_sim.baselines import register_baseline

register_baseline("fixed-time", "traffic", fixed_time, "the network's own signal program, run by SUMO")
register_baseline("actuated", "traffic", actuated, "SUMO's gap-actuated control of the network's phases")
register_baseline(
    "max-pressure",
    "traffic",
    max_pressure,
    "Varaiya's max-pressure: the phase with most upstream-minus-downstream vehicles (lane level)",
)
register_baseline("greedy", "traffic", greedy, "longest queue: the phase serving most vehicles on its lanes")
