"""Traffic envs on real SUMO (short windows): API conformance, determinism, metrics against a direct SUMO run,
the never-inserted charge, the libsumo guard, the traci back end's failure handling, clear file errors.

libsumo allows one simulation per process, and pytest runs every test of a worker in one process: each test
closes its envs (``with closing(...)``), which releases the process's libsumo slot for the next test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import lepton_sim  # noqa: F401  (registers the env ids)
from lepton_sim.envs.traffic.metrics import read_tripinfo
from lepton_sim.envs.traffic.params import TrafficParams, resolve_sumo_file
from lepton_sim.envs.traffic.sumo_setup import SumoLoadError

NETS = "sumo_rl:nets"
SINGLE = {
    "net": f"{NETS}/single-intersection/single-intersection.net.xml",
    "route": f"{NETS}/single-intersection/single-intersection.rou.xml",
}
GRID = {"net": f"{NETS}/2x2grid/2x2.net.xml", "route": f"{NETS}/2x2grid/2x2.rou.xml"}
INFO_KEYS = {
    "is_success",
    "phase",
    "sim_time",
    "queue_length",
    "waiting_vehicles",
    "trip_delay",
    "mean_delay",
    "never_inserted",
    "mean_waiting_time",
    "mean_trip_time",
    "throughput",
    "mean_delay_inserted",
}


def single(**kw) -> gymnasium.Env:  # noqa: ANN003
    return gymnasium.make("lepton/TrafficSignal-v0", **{**SINGLE, "duration": 300, **kw}).unwrapped


def run_episode(env: gymnasium.Env, seed: int, policy=None) -> tuple[list, list, dict]:  # noqa: ANN001
    """Run to the end of the window; ``policy(step)`` gives the action (default: a seeded random sequence)."""
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards, step = [obs], [], 0
    while True:
        action = (
            policy(step)
            if policy
            else rng.integers(env.action_space.nvec if hasattr(env.action_space, "nvec") else env.action_space.n)
        )
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        step += 1
        assert set(info) == INFO_KEYS
        if terminated or truncated:
            return observations, rewards, info


# ---------------------------------------------------------------------------------------------- API


def test_importing_the_domain_starts_no_simulator() -> None:
    code = (
        "import sys, lepton_sim, lepton_sim.envs, lepton_sim.agents.traffic; "
        "print(sorted(m for m in ('sumo_rl', 'libsumo', 'traci', 'sumolib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_single_env_passes_check_env() -> None:
    from gymnasium.utils.env_checker import check_env

    with closing(single(duration=100)) as env:
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=0)
        assert env.observation_space.shape == (11,) and env.action_space.n == 2  # 2 phases, 4 incoming lanes
        assert set(info) == INFO_KEYS and np.isnan(info["mean_delay"]) and info["is_success"] is False


def test_network_env_passes_check_env_and_pads_observations() -> None:
    from gymnasium.utils.env_checker import check_env

    with closing(gymnasium.make("lepton/TrafficNetwork-v0", **GRID, duration=100).unwrapped) as env:
        check_env(env, skip_render_check=True)
        assert env.observation_space.shape[0] == len(env.signal_ids) == 4
        assert isinstance(env.action_space, gymnasium.spaces.MultiDiscrete)


def test_pettingzoo_parallel_api() -> None:
    from pettingzoo.test import parallel_api_test

    from lepton_sim.envs.traffic.grid_env import parallel_env

    with closing(parallel_env(**GRID, duration=200)) as env:
        parallel_api_test(env, num_cycles=100)
        obs, infos = env.reset(seed=3)
        assert set(obs) == set(env.possible_agents) and len(env.possible_agents) == 4
        assert set(infos[env.possible_agents[0]]) == INFO_KEYS


@pytest.mark.parametrize("env_id, files", [("lepton/TrafficSignal-v0", SINGLE), ("lepton/TrafficNetwork-v0", GRID)])
def test_make_without_arguments_simulates_sumo_rls_example_network(env_id: str, files: dict) -> None:
    """Tools such as rl-zoo3 call gymnasium.make(id) with no arguments: that must give a working env."""
    with closing(gymnasium.make(env_id)) as env:
        assert env.unwrapped.params.net_path == TrafficParams(**files).net_path
        obs, info = env.reset(seed=0)
        env.action_space.seed(0)
        assert env.observation_space.contains(obs) and info["sim_time"] == 0
        steps, truncated = 0, False
        while not truncated:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            steps += 1
            assert env.observation_space.contains(obs) and isinstance(reward, float) and not terminated
        assert steps == 360 and info["sim_time"] == 3600  # TrafficParams' window: 1 h in 10 s decisions
        assert info["throughput"] > 500 and not np.isnan(info["mean_delay"])  # traffic flowed, metrics came


@pytest.mark.parametrize("control", ["agent", "fixed-time", "actuated"])
def test_observations_and_queue_reward_match_sumo_rls_traffic_signals(control: str) -> None:
    """The per-step lane reads reproduce what each of sumo-rl's TrafficSignal objects (hosted by lepton-sim, not
    by a SumoEnvironment) computes itself: its density/queue observation and its halted-vehicle count."""
    with closing(
        gymnasium.make(
            "lepton/TrafficNetwork-v0", **GRID, duration=300, reward="queue", reward_scale=0.5, control=control
        ).unwrapped
    ) as env:
        env.reset(seed=7)
        sim, rng, queued = env.sim, np.random.default_rng(7), 0
        for _ in range(30):
            env.step(rng.integers(env.action_space.nvec))
            if sim.done:  # SUMO has closed; nothing left to ask the signals
                break
            theirs = [sig.compute_observation() for sig in sim.signals]
            assert all(np.array_equal(a, b) for a, b in zip(sim.observations(), theirs))
            assert sim.rewards().tolist() == [-0.5 * sig.get_total_queued() for sig in sim.signals]
            queued += sum(sig.get_total_queued() for sig in sim.signals)
        assert sim.done and queued > 0  # the comparison saw queues, not an empty network


def test_single_env_rejects_a_network_with_several_signals() -> None:
    with pytest.raises(ValueError, match="4 traffic signals.*TrafficNetwork-v0"):
        gymnasium.make("lepton/TrafficSignal-v0", **GRID)
    with closing(single()):  # the failed env released the libsumo slot
        pass


def test_parameter_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="yellow_time .* must be shorter than delta_time"):
        TrafficParams(**SINGLE, yellow_time=10, delta_time=10)
    with pytest.raises(ValueError, match="no file 'nets/nope.net.xml' in package sumo_rl"):
        TrafficParams(net="sumo_rl:nets/nope.net.xml", route=SINGLE["route"])
    with pytest.raises(ValueError, match="SUMO file not found"):
        TrafficParams(net="/no/such.net.xml", route=SINGLE["route"])
    with pytest.raises(ValueError, match="backend"):
        TrafficParams(**SINGLE, backend="tcp")
    assert resolve_sumo_file(SINGLE["net"]).is_file()


# ---------------------------------------------------------------------------------------------- behaviour


def test_same_seed_gives_identical_episodes_and_metrics() -> None:
    with closing(single()) as env:
        obs_a, rew_a, info_a = run_episode(env, seed=11)
        obs_b, rew_b, info_b = run_episode(env, seed=11)
        obs_c, _, info_c = run_episode(env, seed=12)
    assert all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b)) and rew_a == rew_b
    assert {k: info_a[k] for k in INFO_KEYS} == {k: info_b[k] for k in INFO_KEYS}
    assert info_a["mean_delay"] != info_c["mean_delay"]  # SUMO's seed is the reset seed
    assert info_a["sim_time"] == 300 and len(rew_a) == 30


def test_observations_and_rewards_match_raw_sumo_rl() -> None:
    """Same net, seed, timing and actions: lepton's env reproduces sumo-rl's SumoEnvironment exactly."""
    actions = np.random.default_rng(0).integers(0, 2, 180)
    with closing(single(reward="diff-waiting-time", delta_time=5, yellow_time=2, duration=900)) as env:
        ours, our_rewards, _ = run_episode(env, seed=3, policy=lambda k: actions[k])
    from lepton_sim.envs.traffic.sumo_setup import import_sumo_rl

    params = TrafficParams(**SINGLE)
    raw = import_sumo_rl().SumoEnvironment(
        net_file=str(params.net_path),
        route_file=str(params.route_paths[0]),
        single_agent=True,
        num_seconds=900,
        delta_time=5,
        yellow_time=2,
        min_green=5,
        sumo_seed=3,
        add_system_info=False,
        add_per_agent_info=False,
        sumo_warnings=False,
    )
    try:
        theirs, their_rewards = [raw.reset(seed=3)[0]], []
        for a in actions:
            obs, reward, _, truncated, _ = raw.step(a)
            theirs.append(obs)
            their_rewards.append(reward)
            if truncated:
                break
    finally:
        raw.close()
    assert len(ours) == len(theirs) == 181
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    assert np.allclose(our_rewards, their_rewards)


def test_fixed_time_delay_matches_a_direct_sumo_run(tmp_path: Path) -> None:
    """control=fixed-time leaves SUMO alone: the same numbers as the sumo binary with --tripinfo-output."""
    from lepton_sim.envs.traffic.sumo_setup import sumo_binary

    with closing(single(duration=600, control="fixed-time")) as env:
        _, _, info = run_episode(env, seed=0, policy=lambda k: 0)
    p = TrafficParams(**SINGLE)
    subprocess.run(
        [
            sumo_binary(),
            "-n",
            str(p.net_path),
            "-r",
            str(p.route_paths[0]),
            "--seed",
            "0",
            "-e",
            "600",
            "--time-to-teleport",
            "-1",
            "--tripinfo-output",
            str(tmp_path / "trips.xml"),
            "--tripinfo-output.write-unfinished",
            "--statistic-output",
            str(tmp_path / "stats.xml"),
            "--no-step-log",
            "--no-warnings",
        ],
        check=True,
    )
    trips = read_tripinfo(tmp_path / "trips.xml")
    subprocess.run(
        [
            sumo_binary(),
            "-n",
            str(p.net_path),
            "-r",
            str(p.route_paths[0]),
            "--seed",
            "0",
            "-e",
            "600",
            "--time-to-teleport",
            "-1",
            "--tripinfo-output",
            str(tmp_path / "all.xml"),
            "--tripinfo-output.write-undeparted",
            "--no-step-log",
            "--no-warnings",
        ],
        check=True,
    )
    outside = read_tripinfo(tmp_path / "all.xml")
    outside_wait = outside.depart_delay[~outside.inserted]  # SUMO's rows for vehicles never inserted
    stats = ET.parse(tmp_path / "stats.xml").getroot()
    waiting = int(stats.find("vehicles").get("waiting"))  # SUMO's own count of vehicles never inserted
    waiting_delay = float(stats.find("vehicleTripStatistics").get("departDelayWaiting"))
    delays = trips.time_loss + trips.depart_delay
    direct = (delays.sum() + waiting * waiting_delay) / (len(delays) + waiting)
    assert len(outside_wait[outside_wait > 0]) == waiting > 0
    # counted: due more than one decision interval (delta_time) before the end; the rest are charged only
    assert info["never_inserted"] == np.sum(outside_wait > p.delta_time) > 0
    assert info["mean_delay"] == pytest.approx(direct, abs=0.01)  # SUMO rounds departDelayWaiting to 0.01 s
    assert info["mean_delay_inserted"] == pytest.approx(delays.mean(), abs=1e-9)
    assert info["throughput"] == int(trips.arrived.sum())


def test_keeping_one_direction_red_is_charged() -> None:
    """sumo-rl's in-network waiting time rewards blocking an entrance; our delay charges the blocked vehicles."""
    with closing(single(duration=600, control="fixed-time")) as env:
        _, _, fixed = run_episode(env, seed=5, policy=lambda k: 0)
    with closing(single(duration=600)) as env:  # phase 1 (W-E green) forever: N-S stays red
        _, rewards, blocked = run_episode(env, seed=5, policy=lambda k: 1)
    assert blocked["never_inserted"] > fixed["never_inserted"] + 20
    assert blocked["mean_delay"] > fixed["mean_delay"]
    assert blocked["is_success"] is False
    assert rewards[-1] < -20  # queue-entry reward: minus (halted at the signal + waiting to enter)


def test_demand_scale_and_actuated_control_change_the_traffic() -> None:
    with closing(single(control="fixed-time")) as env:
        _, _, base = run_episode(env, seed=2, policy=lambda k: 0)
    with closing(single(control="fixed-time", demand_scale=0.5)) as env:
        _, _, half = run_episode(env, seed=2, policy=lambda k: 0)
    with closing(single(control="actuated")) as env:
        _, _, actuated = run_episode(env, seed=2, policy=lambda k: 0)
    assert half["throughput"] < 0.75 * base["throughput"]
    assert actuated["mean_delay"] < base["mean_delay"]  # gap-actuated control beats the 42 s/42 s program here


# ---------------------------------------------------------------------------------------------- failures


def test_a_second_libsumo_simulation_in_one_process_is_an_error() -> None:
    from lepton_sim.envs.traffic.sumo_setup import LibsumoBusyError

    first, second = single(), single()  # creating envs needs no libsumo simulation
    try:
        first.reset(seed=0)
        with pytest.raises(LibsumoBusyError, match="already running in this process.*backend='traci'"):
            second.reset(seed=0)
        with closing(single(backend="traci")) as other:  # traci envs can run beside it
            other.reset(seed=0)
            other.step(0)
        run_episode(first, seed=0, policy=lambda k: 0)  # undisturbed; its window ends and frees the slot
        second.reset(seed=1)
        with pytest.raises(LibsumoBusyError):
            first.reset(seed=0)
    finally:
        first.close()
        second.close()
    with closing(single()) as again:  # closing released the process's libsumo slot
        again.reset(seed=0)


def test_a_libsumo_env_dropped_without_close_frees_the_slot() -> None:
    env = single()
    env.reset(seed=0)
    del env
    with closing(single()) as again:
        again.reset(seed=0)


def test_a_foreign_libsumo_simulation_is_detected() -> None:
    import libsumo

    from lepton_sim.envs.traffic.sumo_setup import LibsumoBusyError, sumo_binary

    libsumo.start([sumo_binary(), "-n", str(TrafficParams(**SINGLE).net_path), "--no-step-log"])
    try:
        with closing(single()) as env, pytest.raises(LibsumoBusyError, match="not opened by lepton-sim"):
            env.reset(seed=0)
    finally:
        libsumo.close()


def test_traci_kill_mid_episode_gives_clear_error_and_reset_recovers() -> None:
    from lepton_sim.envs.traffic.sumo_setup import SumoConnectionError

    with closing(single(backend="traci", duration=100)) as env:
        env.reset(seed=0)
        env.step(0)
        os.kill(env.sim._proc.pid, signal.SIGKILL)  # noqa: SLF001
        with pytest.raises(SumoConnectionError, match="SUMO process .* stopped .* call reset"):
            env.step(1)
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(1)
        start = time.perf_counter()
        _, _, info = run_episode(env, seed=0, policy=lambda k: 0)
        assert time.perf_counter() - start < 5  # a fresh SUMO process, no 1 s connection retries
        assert info["sim_time"] == 100 and not np.isnan(info["mean_delay"])


def test_libsumo_and_traci_give_identical_results() -> None:
    results = []
    for backend in ("libsumo", "traci"):
        with closing(single(backend=backend, duration=200)) as env:
            results.append(run_episode(env, seed=4)[2])
    assert results[0] == results[1]


BROKEN_NET = "<net>\n  <edge id='e'>\n"
# well-formed, with a signal and an edge the demand below uses, so the parameter check passes it; SUMO cannot load it
BAD_NET = (
    '<net version="1.20"><edge id="e" from="a" to="b"><lane id="e_0" index="0" speed="13" length="100" '
    'shape="0,0 100,0"/></edge><tlLogic id="t" type="static" programID="0" offset="0">'
    '<phase duration="30" state="G"/></tlLogic></net>'
)
BAD_NET_ROUTES = "<routes>\n  <flow id='f' begin='0' end='100' probability='0.2' from='e' to='e'/>\n</routes>\n"
BROKEN_ROUTES = "<routes>\n  <flow id='f' route='r' begin='0' end='100' probability='0.2'/>\n<vehicle id="
BAD_ROUTES = "<routes>\n  <flow id='f' route='nope' begin='0' end='100' probability='0.2'/>\n</routes>\n"


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
@pytest.mark.parametrize(
    "which, text, error, message",
    [
        # found by the parameter check, before any SUMO process starts
        ("net", BROKEN_NET, ValueError, "network file .*broken.net.xml is not valid XML"),
        ("route", BROKEN_ROUTES, ValueError, "route file .*broken.rou.xml is not valid XML"),
        # found by SUMO when it loads the files
        ("net", BAD_NET, SumoLoadError, "network file .*broken.net.xml could not be loaded: .*Unknown from-node 'a'"),
        ("route", BAD_ROUTES, SumoLoadError, "route file.*broken.rou.xml could not be loaded.*route 'nope'.*not known"),
    ],
)
def test_broken_files_give_an_error_naming_the_file(
    tmp_path: Path, backend: str, which: str, text: str, error: type[Exception], message: str
) -> None:
    files = {"net": str(TrafficParams(**SINGLE).net_path), "route": str(TrafficParams(**SINGLE).route_paths[0])}
    files[which] = str(tmp_path / f"broken.{'net' if which == 'net' else 'rou'}.xml")
    Path(files[which]).write_text(text)
    if text == BAD_NET:
        files["route"] = str(tmp_path / "bad-net.rou.xml")
        Path(files["route"]).write_text(BAD_NET_ROUTES)
    with pytest.raises(error, match=message):
        env = gymnasium.make("lepton/TrafficSignal-v0", **files, duration=100, backend=backend)
        try:
            env.reset(seed=0)
        finally:
            env.close()
    with closing(single()):  # nothing was left running
        pass


# ---------------------------------------------------------------------------------------------- output


def test_rgb_frames_show_the_network_vehicles_and_signals() -> None:
    from lepton_sim.envs.traffic.plots import plot_episode

    with closing(single(render_mode="rgb_array", duration=200)) as env:
        assert env.metadata["render_fps"] == pytest.approx(0.1)  # one frame per 10 s step: real time
        env.reset(seed=0)
        infos = []
        for _ in range(20):
            infos.append(env.step(1)[-1])
        start = time.perf_counter()
        frame = env.render()
        elapsed = time.perf_counter() - start
        assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8
        colours = {tuple(c) for c in frame.reshape(-1, 3)}
        assert (0, 230, 0) in colours and (230, 0, 0) in colours  # green and red signal markers
        assert (255, 150, 30) in colours  # halted vehicles queue at the red N-S approach
        assert elapsed < 0.2  # a copy of the cached background plus vectorised stamps
        assert env.render().shape == frame.shape  # the final frame is still available after the window ends
    image = plot_episode(infos)
    assert image.ndim == 3 and image.shape[2] == 3


def test_vector_env_runs_each_simulation_in_its_own_process() -> None:
    """make_vec uses subprocesses for libsumo envs (max_envs_per_process=1); envs also survive pickling."""
    import pickle

    with closing(single(duration=100)) as env:
        clone = pickle.loads(pickle.dumps(env))  # EzPickle: rebuilt from its arguments
        clone.close()
    venv = lepton_sim.make_vec("traffic/single-intersection", 2, duration=100)
    try:
        assert type(venv).__name__ == "AsyncVectorEnv"
        obs, info = venv.reset(seed=[0, 1])
        assert obs.shape == (2, 11) and np.isnan(info["mean_delay"]).all()
        for _ in range(10):
            obs, reward, terminated, truncated, info = venv.step(np.array([0, 1]))
        assert truncated.all() and np.isfinite(info["mean_delay"]).all()
        assert info["mean_delay"][0] != info["mean_delay"][1]
    finally:
        venv.close()


def test_episode_metrics_can_be_switched_off_for_speed() -> None:
    with closing(single(duration=100, episode_metrics=False)) as env:
        _, _, info = run_episode(env, seed=0)
    assert set(info) == INFO_KEYS and np.isnan(info["mean_delay"]) and np.isnan(info["trip_delay"])
