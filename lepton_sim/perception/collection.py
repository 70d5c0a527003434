"""``lepton-sim perception collect``: roll out a policy with cameras on and write frames with their simulator labels.

Every frame comes from an env in ``obs_mode: state+pixels``, so the image, the state observation (the ``state``
label) and the domain's task labels (:mod:`.labels`, read from the simulator right after the same step) belong
to one instant. Episodes are seeded (seed, seed + 1, ...) and go whole to one split (:class:`SplitAssigner`);
degradations (``--sensor``) cycle within each split, so every split sees every degradation.

Why one env at a time rather than a vector env: a label reads the simulator's state, which a subprocess vector
env (SUMO) hides, and a frame per env step is what the cameras cost anyway (0.3-4 ms), far below training.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from tqdm.auto import tqdm

from lepton_sim import __version__
from lepton_sim.envs.camera_params import CORRUPTIONS, SEVERITY_LEVELS, SensorParams
from lepton_sim.envs.pixel_observation import CameraLayout
from lepton_sim.errors import LeptonError
from lepton_sim.loading import load_policy
from lepton_sim.make import make
from lepton_sim.perception.dataset import (
    DEFAULT_FRACTIONS,
    DEFAULT_SHARD_FRAMES,
    FORMAT,
    MANIFEST,
    SPLITS,
    VERSION,
    DatasetWriter,
    Episode,
    SplitAssigner,
    write_manifest,
)
from lepton_sim.perception.labels import Labeller, StateLayout, check_labels, labeller_for
from lepton_sim.policy import Policy, PolicyContext
from lepton_sim.scenario import Scenario, load_scenario

PIXELS = "pixels"
SCENARIO_SENSOR = "scenario"


@dataclass(frozen=True)
class Degradation:
    """One ``--sensor`` choice: a name for reports, its severity and the corruptions it switches on."""

    name: str
    severity: int
    corruptions: tuple[str, ...] | None  # None: all (or the scenario's own settings, for "scenario")

    def sensor(self) -> dict[str, Any] | None:
        """The ``sensor`` parameter this degradation sets (None: leave the scenario's)."""
        if self.name == SCENARIO_SENSOR:
            return None
        if self.severity == 0:
            return {}
        out: dict[str, Any] = {"severity": self.severity}
        if self.corruptions is not None:
            out["corruptions"] = list(self.corruptions)
        return out


def parse_degradation(text: str) -> Degradation:
    """``clean``, ``scenario`` (the scenario's own ``sensor``), ``all@3`` or ``blur@3`` / ``noise+blur@2``."""
    text = text.strip()
    if text in ("clean", SCENARIO_SENSOR):
        return Degradation(text, 0, None)
    match = re.fullmatch(r"([a-z_+]+)@(\d+)", text)
    if match is None:
        raise LeptonError(
            f"--sensor {text!r}: expected clean, scenario, all@SEVERITY or CORRUPTION[+CORRUPTION...]@SEVERITY"
        )
    names, severity = match.group(1), int(match.group(2))
    if not 0 <= severity <= SEVERITY_LEVELS:
        raise LeptonError(f"--sensor {text!r}: severity must be 0-{SEVERITY_LEVELS}")
    if severity == 0:
        return Degradation("clean", 0, None)
    if names == "all":
        return Degradation(f"all@{severity}", severity, None)
    corruptions = tuple(names.split("+"))
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise LeptonError(
            f"--sensor {text!r}: unknown corruption {unknown[0]!r}; allowed: all, {', '.join(CORRUPTIONS)}"
        )
    return Degradation(text, severity, corruptions)


def _scenario_degradation(sensor: SensorParams) -> Degradation:
    """What to call the scenario's own sensor settings in reports."""
    if sensor.clean:
        return Degradation("clean", 0, None)
    names = "+".join(sensor.corruptions) if sensor.corruptions else "all"
    return Degradation(f"{names}@{sensor.severity}" if sensor.severity else "scenario", sensor.severity, None)


# ------------------------------------------------------------------------------------------------ policy
def _same_layout(a: gymnasium.Space, b: gymnasium.Space) -> bool:
    """Same space type and shape, key by key for Dict spaces."""
    if type(a) is not type(b):
        return False
    if isinstance(a, gymnasium.spaces.Dict) and isinstance(b, gymnasium.spaces.Dict):
        return list(a.spaces) == list(b.spaces) and all(_same_layout(a[k], b[k]) for k in a.spaces)
    return a.shape == b.shape


class _Feed:
    """What the policy is given from a ``state+pixels`` observation: the state part for state policies (and
    baselines), the keys or the image it was trained on otherwise."""

    def __init__(self, policy: Policy, space: gymnasium.spaces.Dict, state_space: gymnasium.Space) -> None:
        expected = policy.observation_space
        self.keys: list[str] | None = None
        self.image = False
        if expected is None or _same_layout(expected, state_space):
            self.keys = None
        elif isinstance(expected, gymnasium.spaces.Dict) and set(expected.spaces) <= set(space.spaces):
            self.keys = list(expected.spaces)
        elif _same_layout(expected, space[PIXELS]):
            self.image = True
        else:
            raise LeptonError(
                f"policy {policy.name}: its observations {' '.join(str(expected).split())} are neither this "
                f"scenario's state nor its camera image {space[PIXELS].shape}"
            )
        self.space = expected if expected is not None else state_space

    def __call__(self, obs: dict[str, Any], state: Any) -> Any:
        if self.image:
            return obs[PIXELS][None]
        if self.keys is not None:
            return {k: obs[k][None] for k in self.keys}
        if isinstance(state, dict):
            return {k: np.asarray(v)[None] for k, v in state.items()}
        return np.asarray(state)[None]


def _batched_info(info: dict[str, Any]) -> dict[str, Any]:
    """A single env's info as a one-env vector env's (what ``Policy.act`` receives)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = np.asarray([value])
        out[f"_{key}"] = np.array([True])
    return out


def _state_part(obs: dict[str, Any]) -> Any:
    """The state observation inside a ``state+pixels`` observation (a Box env's ``state``; a goal env's Dict)."""
    if "state" in obs:
        return obs["state"]
    return {k: v for k, v in obs.items() if k != PIXELS}


def _state_space(space: gymnasium.Space) -> gymnasium.Space:
    if not isinstance(space, gymnasium.spaces.Dict) or PIXELS not in space.spaces:
        raise LeptonError(f"expected a state+pixels observation space, got {' '.join(str(space).split())}")
    if "state" in space.spaces:
        return space["state"]
    return gymnasium.spaces.Dict({k: s for k, s in space.spaces.items() if k != PIXELS})


# ------------------------------------------------------------------------------------------------ collect
@dataclass
class _EnvSlot:
    env: gymnasium.Env
    labeller: Labeller
    layout: StateLayout
    feed: _Feed
    degradation: Degradation
    sensor: dict[str, Any]
    channel_first: bool


def collect(
    scenario: str | Path | Scenario,
    frames: int,
    out: str | Path,
    policy: str = "random",
    overrides: dict[str, Any] | None = None,
    sensors: Sequence[str] = (SCENARIO_SENSOR,),
    seed: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_episode_frames: int | None = None,
    stride: int = 1,
    shard_frames: int = DEFAULT_SHARD_FRAMES,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Write a dataset of ``frames`` frames to ``out`` (a new or empty folder) and return it.

    ``policy``: ``random``, ``scripted`` (or another baseline) or a run folder / model file; a state policy gets
    the state observation, a pixel policy its image. ``overrides``: env parameters (``camera_size=64``).
    ``sensors``: degradations cycled per split (see :func:`parse_degradation`). ``seed``: first episode seed
    (default: the scenario's). ``max_episode_frames``: cut episodes after that many frames (more episodes,
    more variety); ``stride``: keep every k-th step."""
    if frames < 1 or stride < 1 or shard_frames < 1 or (max_episode_frames is not None and max_episode_frames < 1):
        raise LeptonError("frames, stride, shard_frames and max_episode_frames must be >= 1")
    root = Path(out).expanduser()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise LeptonError(f"--out {root}: exists and is not an empty folder (a dataset is never overwritten)")
    assigner = SplitAssigner(fractions)
    degradations = [parse_degradation(s) for s in sensors]
    base = load_scenario(scenario, **dict(overrides or {}))
    state_scenario = base.with_params({"obs_mode": "state"})
    pol = load_policy(policy, state_scenario, device=device)
    keep = {k: v for k, v in dict(pol.env_overrides).items() if k != "obs_mode"}
    first_seed = base.seed if seed is None else seed

    slots: dict[Degradation, _EnvSlot] = {}
    one_per_process = base.spec.max_envs_per_process == 1  # libsumo: one simulation per process at a time

    def slot_for(d: Degradation) -> _EnvSlot:
        if d in slots:
            return slots[d]
        if one_per_process:
            for other in slots.values():
                other.env.close()
            slots.clear()
        params = {**keep, **dict(overrides or {}), "obs_mode": "state+pixels"}
        sensor = d.sensor()
        if sensor is not None:
            params["sensor"] = sensor
        env = make(load_scenario(scenario, **params))
        space = env.observation_space
        state_space = _state_space(space)
        assert isinstance(space, gymnasium.spaces.Dict)
        unwrapped = env.unwrapped
        labeller, layout = labeller_for(unwrapped, state_space)
        prm = unwrapped.params  # type: ignore[attr-defined]
        named = d if d.name != SCENARIO_SENSOR else _scenario_degradation(prm.sensor)
        slot = _EnvSlot(
            env,
            labeller,
            layout,
            _Feed(pol, space, state_space),
            named,
            prm.sensor.model_dump(mode="json"),
            prm.channel_order == "first",
        )
        slots[d] = slot
        return slot

    first = slot_for(degradations[0])
    first_space = first.env.observation_space
    assert isinstance(first_space, gymnasium.spaces.Dict)
    image_shape = tuple(int(v) for v in first_space[PIXELS].shape or ())
    if first.channel_first:
        image_shape = (image_shape[1], image_shape[2], image_shape[0])
    layout = first.layout
    schema = first.labeller.schema
    root.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(root, schema, image_shape, shard_frames)
    episodes: list[Episode] = []
    per_split = {s: 0 for s in SPLITS}
    started = time.monotonic()
    bar = tqdm(total=frames, desc="frames", unit="frame", disable=not progress, leave=False)
    try:
        k = 0
        while _total_frames(episodes) < frames:
            split = assigner.next()
            d = degradations[per_split[split] % len(degradations)]
            per_split[split] += 1
            slot = slot_for(d)
            ep_seed = first_seed + k
            k += 1
            budget = frames - _total_frames(episodes)
            if max_episode_frames is not None:
                budget = min(budget, max_episode_frames)
            n = _run_episode(slot, pol, writer, split, ep_seed, budget, stride, base, bar)
            episodes.append(Episode(ep_seed, split, n, slot.degradation.name, slot.degradation.severity, slot.sensor))
            assigner.add(split, n)
            writer.end_episode(split)
        writer.close()
    finally:
        bar.close()
        for slot in slots.values():
            slot.env.close()
    manifest = _manifest(base, first, pol, layout, schema, image_shape, episodes, writer, fractions)
    manifest["collection"] = {
        "policy": policy,
        "seed": first_seed,
        "stride": stride,
        "max_episode_frames": max_episode_frames,
        "sensors": list(sensors),
        "seconds": round(time.monotonic() - started, 2),
    }
    write_manifest(root, manifest)
    return root


def rgb_channels(layout: CameraLayout) -> list[int]:
    """The image's colour channels (photometric augmentation touches only these; not semantic grids, depth or
    segmentation)."""
    out = []
    for offset, n, semantic in zip(layout.offsets(), layout.channels, layout.semantic):
        if not semantic:
            out += list(range(offset, offset + n))
    return out


def _total_frames(episodes: list[Episode]) -> int:
    return sum(e.frames for e in episodes)


def _run_episode(
    slot: _EnvSlot,
    policy: Policy,
    writer: DatasetWriter,
    split: str,
    seed: int,
    budget: int,
    stride: int,
    scenario: Scenario,
    bar: tqdm,
) -> int:
    """One seeded episode, until it ends or ``budget`` frames are kept (the final frame included: its labels
    are the final state's); returns the frames kept."""
    env, base = slot.env, slot.env.unwrapped
    obs, info = env.reset(seed=seed)
    policy.reset(
        PolicyContext(
            observation_space=slot.feed.space,
            action_space=env.action_space,
            seeds=[seed],
            env_id=scenario.env,
            scenario=scenario.name,
            params=dict(scenario.params),
        )
    )
    kept, step, state = 0, 0, None
    terminated = truncated = False
    episode_start = np.ones(1, bool)
    while True:
        if step % stride == 0:
            labels = slot.labeller.read(base)
            labels["state"] = slot.layout.flatten(_state_part(obs))
            check_labels(slot.labeller.schema, labels)
            frame = obs[PIXELS]
            if slot.channel_first:
                frame = np.ascontiguousarray(frame.transpose(1, 2, 0))
            writer.add(split, frame, seed, step, labels)
            kept += 1
            bar.update(1)
            if kept >= budget:
                return kept
        if terminated or truncated:
            return kept
        action, state = policy.act(slot.feed(obs, _state_part(obs)), state, episode_start, info=_batched_info(info))
        episode_start = np.zeros(1, bool)
        obs, _, terminated, truncated, info = env.step(np.asarray(action)[0])
        step += 1


def _manifest(
    scenario: Scenario,
    first: _EnvSlot,
    policy: Policy,
    layout: StateLayout,
    schema: list[Any],
    image_shape: tuple[int, ...],
    episodes: list[Episode],
    writer: DatasetWriter,
    fractions: Sequence[float],
) -> dict[str, Any]:
    prm = first.env.unwrapped.params  # type: ignore[attr-defined]
    splits = {}
    for split in SPLITS:
        mine = [e for e in episodes if e.split == split]
        splits[split] = {
            "frames": sum(e.frames for e in mine),
            "episodes": len(mine),
            "seeds": [e.seed for e in mine],
            "shards": writer.shards[split],
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "lepton_sim": __version__,
        "scenario": scenario.name or scenario.source,
        "env": scenario.env,
        "domain": scenario.domain,
        "params": prm.model_dump(mode="json"),
        "policy_name": policy.name,
        "image": {
            "shape": list(image_shape),
            "cameras": list(prm.cameras),
            "camera_size": prm.camera_size,
            "depth": prm.camera_depth,
            "segmentation": prm.camera_segmentation,
            "order": "HWC",
            "rgb_channels": rgb_channels(CameraLayout.of(prm, first.env.unwrapped)),
        },
        "labels": [s.to_json() for s in schema],
        "state_layout": layout.to_json(),
        "frames": sum(e.frames for e in episodes),
        "split_fractions": list(fractions),
        "splits": splits,
        "episodes": [e.to_json() for e in episodes],
        "manifest": MANIFEST,
    }
