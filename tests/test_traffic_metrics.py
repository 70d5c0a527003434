"""Hand-checkable traffic metrics and max-pressure/greedy choices (no SUMO needed)."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from lepton_sim.agents.traffic.baselines import PhaseScorePolicy, choose_phases
from lepton_sim.envs.traffic.metrics import EpisodeMetrics, episode_metrics, read_tripinfo
from lepton_sim.envs.traffic.phases import phase_demand, phase_movements, phase_pressure

TRIPINFO = """<tripinfos>
    <tripinfo id="a" depart="10.00" departDelay="2.00" arrival="50.00" duration="40.00" waitingTime="5.00" timeLoss="8.00" vaporized=""/>
    <tripinfo id="b" depart="20.00" departDelay="0.00" arrival="80.00" duration="60.00" waitingTime="15.00" timeLoss="20.00" vaporized=""/>
    <tripinfo id="c" depart="90.00" departDelay="4.00" arrival="-1.00" duration="10.00" waitingTime="1.00" timeLoss="6.00" vaporized="end"/>
    <tripinfo id="d" depart="-1" departDelay="60.00" arrival="-1.00" duration="0.00" waitingTime="0.00" timeLoss="0.00" vaporized="end"/>
    <tripinfo id="e" depart="-1" departDelay="30.00" arrival="-1.00" duration="0.00" waitingTime="0.00" timeLoss="0.00" vaporized="end"/>
    <tripinfo id="f" depart="-1" departDelay="0.00" arrival="-1.00" duration="0.00" waitingTime="0.00" timeLoss="0.00" vaporized="end"/>
</tripinfos>
"""


def test_metrics_charge_never_inserted_vehicles(tmp_path: Path) -> None:
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO)
    trips = read_tripinfo(path)
    # window ends at 100 s; d and e were due at 40 s and 70 s and never entered (SUMO's write-undeparted rows):
    # charged 60 s and 30 s; f is scheduled at the very end (departDelay 0): not due, not counted
    m = episode_metrics(trips)
    assert m.never_inserted == 2
    assert m.mean_delay == pytest.approx((10 + 20 + 10 + 60 + 30) / 5)  # timeLoss + departDelay, then the waits
    assert m.mean_delay_inserted == pytest.approx((10 + 20 + 10) / 3)  # RESCO's metric: blind to blocking
    assert m.mean_waiting_time == pytest.approx((5 + 15 + 1) / 3)
    assert m.mean_trip_time == pytest.approx((40 + 60) / 2)  # completed trips only
    assert m.throughput == 2


def test_vehicles_due_in_the_last_decision_are_charged_but_not_counted(tmp_path: Path) -> None:
    """e (due 30 s before the end) is an ordinary insertion wait with a 40 s grace; still charged in mean_delay."""
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO)
    m = episode_metrics(read_tripinfo(path), grace=40.0)
    assert m.never_inserted == 1  # only d, which waited 60 s
    assert m.mean_delay == pytest.approx((10 + 20 + 10 + 60 + 30) / 5)


def test_metrics_before_the_end_are_nan_with_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO)
    nan = EpisodeMetrics.nan_info()
    assert set(nan) == set(episode_metrics(read_tripinfo(path)).as_info())
    assert all(math.isnan(v) for v in nan.values())


def test_truncated_tripinfo_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO[:200])
    with pytest.raises(ValueError, match="not complete XML"):
        read_tripinfo(path)


def test_unusual_attribute_layouts_fall_back_to_an_xml_parser(tmp_path: Path) -> None:
    path = tmp_path / "tripinfo.xml"
    first = TRIPINFO.index('vaporized=""/>')  # row a gets a child element that repeats an attribute name
    path.write_text(TRIPINFO[:first] + 'vaporized=""><x timeLoss="99"/></tripinfo>' + TRIPINFO[first + 14 :])
    assert episode_metrics(read_tripinfo(path)).mean_delay == pytest.approx((10 + 20 + 10 + 60 + 30) / 5)


# A hand-made intersection: N-S phase serves in-lanes n, s; E-W phase serves e, w. Each in-lane has one
# movement to its own out-lane (n->S, s->N, e->W, w->E). Link indices: 0 n, 1 s, 2 e, 3 w.
LINKS = [[("n", "S")], [("s", "N")], [("e", "W")], [("w", "E")]]
GREENS = ["GGrr", "rrGG"]
IN, OUT = ["n", "s", "e", "w"], ["N", "S", "E", "W"]


def test_max_pressure_picks_largest_upstream_minus_downstream() -> None:
    mv = phase_movements(GREENS, LINKS, IN, OUT)
    up = np.array([5, 1, 3, 2])  # queues on n, s, e, w
    down = np.array([0, 4, 0, 0])  # queues on N, S, E, W: S (downstream of n) is congested
    pressure = phase_pressure(mv, up, down)
    # N-S: (5 - 4) + (1 - 0) = 2; E-W: (3 - 0) + (2 - 0) = 5 -> E-W wins although n has the longest queue
    assert pressure.tolist() == [2.0, 5.0]
    assert int(np.argmax(pressure)) == 1
    # the same choice after adding a constant to every downstream count (equal movements per phase)
    assert int(np.argmax(phase_pressure(mv, up, down + 7))) == 1
    # with no downstream queues it reduces to longest total queue, which greedy also picks here
    assert int(np.argmax(phase_pressure(mv, up, np.zeros(4)))) == int(np.argmax(phase_demand(mv, up))) == 0


def test_movements_count_each_in_out_pair_once() -> None:
    links = [[("a", "X")], [("a", "X")], [("a", "Y")], [("b", "X")]]  # two links share the movement a->X
    mv = phase_movements(["GGGr", "rrrG"], links, ["a", "b"], ["X", "Y"])
    assert mv.up.tolist() == [[2, 0], [0, 1]]  # a->X and a->Y; b->X
    assert mv.down.tolist() == [[1, 1], [1, 0]]
    assert mv.serve.tolist() == [[1, 0], [0, 1]]


def test_max_pressure_policy_is_batched_and_keeps_current_phase_on_ties() -> None:
    policy = PhaseScorePolicy(gymnasium.spaces.Discrete(2), "max-pressure", "phase_pressure")
    obs = np.zeros((3, 11), np.float32)
    obs[:, 1] = 1.0  # every env currently shows phase 1
    info = {"phase_pressure": np.array([[2.0, 5.0], [6.0, 5.0], [4.0, 4.0]])}
    assert policy.act(obs, info=info)[0].tolist() == [1, 0, 1]  # tie in env 2: keep phase 1 (no needless yellow)
    with pytest.raises(ValueError, match="phase_info=True"):
        policy.act(obs, info={})


def test_choose_phases_ignores_padding_of_smaller_signals() -> None:
    # two signals with 3 and 2 phases; the second row is padded with -inf (TrafficNetwork-v0's layout)
    scores = np.array([[[1.0, 3.0, 2.0], [4.0, 1.0, -np.inf]]])
    obs = np.zeros((1, 2, 8))
    obs[0, 0, 0] = obs[0, 1, 1] = 1.0
    assert choose_phases(scores, obs, np.array([3, 2])).tolist() == [[1, 0]]
