"""What the two Gymnasium traffic envs share: parameters, the SUMO core, seeding, info, rendering, plots."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.utils import EzPickle

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.rendering import check_render_mode
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.simulation import TrafficSim
from lepton_sim.envs.traffic.sumo_setup import SumoError

MAX_SEED = 2**31 - 1


class TrafficEnvBase(gym.Env, EzPickle):
    """Common machinery; subclasses define spaces and how per-signal observations/rewards are combined.

    Pickling (EzPickle) re-creates the env from its keyword arguments, so an env can be shipped to a
    subprocess; SUMO itself always starts in the process that uses the env.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 0.1}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        EzPickle.__init__(self, render_mode=render_mode, **kwargs)
        self.params = TrafficParams(**kwargs)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        # one env step is delta_time simulated seconds: a video at render_fps plays in real time
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.params.delta_time}
        self.sim = TrafficSim(self.params, owner_description=f"{type(self).__name__} on {self.params.net}")
        self.sim.keep_final_snapshot = render_mode == "rgb_array"

    # ------------------------------------------------------------------------------------------ episode
    def _start_episode(self, seed: int | None) -> None:
        start_episode(self.sim, self.np_random, seed)

    def _advance(self, actions: np.ndarray) -> None:
        if not self.sim.running:
            raise SumoError("the episode has ended (or SUMO stopped): call reset() before step()")
        self.sim.advance(actions)

    def _info(self) -> dict[str, Any]:
        info = {**common_info(self.sim), "phase": self._phase()}
        if self.params.phase_info:
            info["phase_pressure"], info["phase_demand"] = self._phase_arrays()
        return info

    def _phase_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _phase(self) -> Any:
        """info ``phase``: the green phase index each signal shows (or, during yellow, is switching to)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ output
    def render(self) -> np.ndarray | None:
        """The network (sumolib geometry), vehicles (orange when halted, blue when moving) and every signal link's
        colour."""
        return render_frame(self.sim, self.render_mode)

    def camera_image(
        self,
        name: str,
        width: int,
        height: int,
        *,
        depth: bool = False,
        segmentation: bool = False,
        conditions: CameraConditions | Sequence[CameraConditions] = NOMINAL,
    ) -> CameraImage:
        """Camera ``approaches`` (:mod:`.camera`): every signal's image, stacked along channels in signal order,
        uint8 (height, width, 3 x signals); one signal for ``lepton/TrafficSignal-v0``, so (height, width, 3).
        ``conditions``: one for every signal's camera, or one per signal (the pipeline's sensor model gives one per
        RGB image)."""
        check_camera(name, depth, segmentation)
        return CameraImage(rgb=self.sim.approach_images(list(range(len(self.sim.ts_ids))), width, height, conditions))

    def plot_trajectory(self, ax: Any, infos: list[dict[str, Any]]) -> None:
        """Queue length, vehicles waiting to enter and delay over simulated time (used by lepton-sim rollout)."""
        from lepton_sim.envs.traffic.plots import plot_episode_signals

        plot_episode_signals(ax, infos)

    def close(self) -> None:
        sim = getattr(self, "sim", None)
        if sim is not None:
            sim.close()
        super().close()


# ---------------------------------------------------------------------------------------------- shared helpers
# (also used by the PettingZoo env, which is not a gym.Env)


def start_episode(sim: TrafficSim, rng: np.random.Generator, seed: int | None) -> None:
    """SUMO's seed is the reset seed when given (so ``sumo --seed S`` reproduces episode S), else drawn from
    ``rng``; the demand scale is sampled from ``rng``."""
    sumo_seed = int(seed) if seed is not None else int(rng.integers(0, MAX_SEED))
    sim.start(sumo_seed, sim.params.demand_scale.sample(rng))


def common_info(sim: TrafficSim) -> dict[str, Any]:
    """Same keys at every reset and step; episode metrics are NaN until the window ends."""
    metrics = sim.metric_info()
    done = sim.metrics is not None
    return {"is_success": bool(done and metrics["never_inserted"] == 0), **sim.step_info(), **metrics}


def green_phases(sim: TrafficSim) -> np.ndarray:
    """Each signal's green phase index (during yellow: the phase it switches to), in SUMO's signal order."""
    return np.array([int(sig.green_phase) for sig in sim.signals], np.int64)


def check_camera(name: str, depth: bool = False, segmentation: bool = False) -> None:
    """ValueError for a camera or channel the traffic envs do not have."""
    if name not in TrafficParams.CAMERA_NAMES:
        raise ValueError(f"unknown camera {name!r}; allowed: {', '.join(TrafficParams.CAMERA_NAMES)}")
    for flag, wanted in (("depth", depth), ("segmentation", segmentation)):
        if wanted:
            raise ValueError(f"the traffic camera {name!r} has no {flag} channel (a top-down drawing of the lanes)")


def render_frame(sim: TrafficSim, render_mode: str | None) -> np.ndarray | None:
    if render_mode != "rgb_array":
        return None
    from lepton_sim.envs.traffic.render import NetworkRenderer

    return NetworkRenderer.for_net(str(sim.params.net_path), sim.params.render_size).draw(sim.snapshot())
