"""Camera throughput (issue 10): env steps/s in state and pixels mode (84x84), with and without degradations.

Every figure is an env's own ``step`` (random actions, resets included) on one core, peers in the same process,
cases timed in turns for ``--rounds`` rounds of ``--seconds`` each; each case's figure is the median of its rounds
and ratio bars are medians of per-round ratios (absolute figures drift on the shared machine). Rates are per
CPU-second of this process by default (``--clock cpu``: one dedicated core's work; on an oversubscribed machine
wall time also counts other jobs' turns), wall-clock rates are printed beside them. Inside the same runs the
script times the base env's camera calls and the time outside the base env's step/reset (the observation
wrappers), so "the camera adds X ms" does not rest on the difference of two noisy rates.

- driving, equal work: ``driving/dense-traffic`` (20 IDM/MOBIL vehicles, 1 s per step) against highway-env's
  ``highway-fast-v0`` with its ``GrayscaleObservation`` at 84x84 (one frame, no stacking). highway-env's viewer
  draws nothing when ``SDL_VIDEODRIVER=dummy`` (every image all zeros; ``EnvViewer.enabled``), so SDL's
  ``offscreen`` driver is used and the peer's images are checked for variance before it is timed.
  Bars: single env >= 10x, native vector env (256 worlds, cameras batched) >= 250x; ``driving/obstacle-avoid``
  single >= 2,000 steps/s and vector >= 10,000 env-steps/s with cameras; pixels mode keeps >= 80 % (single) and
  >= 50 % (vector) of the state-mode rate.
- manufacturing: ``manufacturing/reach`` >= 250 steps/s with one 84x84 camera, >= 150 with overhead + wrist,
  >= 8x panda-gym's ``PandaReach-v3`` with its 84x84 ``render()`` every step.
- traffic: the camera's added ms per decision step (pixels minus state; single-intersection, 2x2 grid) <= 1 ms.
- degradations: ms per 84x84 frame for severity 1-5, on stored frames (no rendering in the timing) <= 0.25 ms.

Parts not built yet (an obs mode or sensor field an env does not accept) are skipped with the reason.

    .venv/bin/python benchmarks/camera_throughput.py [--seconds 3] [--rounds 3] [--only driving] [--profile]
        [--clock cpu|wall] [--json FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: no BLAS threads anywhere
if os.environ.get("SDL_VIDEODRIVER", "dummy") == "dummy":  # highway-env renders nothing under "dummy"
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402

SIZE = 84
SEVERITY = 3
NUM_ENVS = 256
PIXELS = {"obs_mode": "pixels", "camera_size": SIZE}
DEGRADED = {**PIXELS, "sensor": {"severity": SEVERITY}}
NO_TARGET = float("nan")  # a figure reported beside the bars
SECTIONS = ("driving", "manufacturing", "traffic", "degradations")
PEER_REFERENCE = {
    "highway-fast-v0": "~50-80 steps/s with or without GrayscaleObservation (shared/reference/perception.md)",
    "PandaReach-v3": "84x84 render() ~39 ms/frame, ~24 steps/s (shared/reference/peers.md)",
}


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = ["cpu"]  # --clock: the one every figure is timed on


def now() -> float:
    """The benchmark's clock. ``cpu`` (default): this process's CPU time, i.e. what one dedicated core would
    take - on a shared, oversubscribed machine wall time also counts the time other jobs held the core."""
    return CLOCKS[_clock[0]]()


FAILURES: list[str] = []  # cases that raised while being built (reported at the end)


class Skip(Exception):
    """A case that cannot be built yet (its part of issue 10 has not landed): the message says why."""


@dataclass
class Case:
    """One timed env: ``make`` builds it once (or per round, for libsumo), ``run`` times it for some seconds."""

    name: str
    make: Callable[[], Any]
    vector: bool = False
    pixels: bool = False  # its observations are images: checked for size and variance before timing
    fresh_per_round: bool = False  # libsumo: one simulation per process, so close before the next case
    env: Any = None
    rates: list[float] = field(default_factory=list)  # env steps per second of the benchmark's clock
    wall_rates: list[float] = field(default_factory=list)  # env steps per wall-clock second
    render_ms: list[float] = field(default_factory=list)  # in the base env's camera calls, per env step
    degrade_ms: list[float] = field(default_factory=list)  # in sensor degradations, per env step
    wrapper_ms: list[float] = field(default_factory=list)  # outside the base env's step/reset, per env step

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


@dataclass
class Bar:
    name: str
    value: float
    target: float
    unit: str
    higher_is_better: bool = True
    cases: tuple[str, ...] = ()  # the cases to profile when the bar is missed

    @property
    def informative(self) -> bool:
        """A figure printed beside the bars, with no target of its own."""
        return not np.isfinite(self.target)

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.value) or self.informative:
            return False
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


# ----------------------------------------------------------------------------------------------- env building


def _image(obs: Any) -> np.ndarray:
    """The camera image inside an observation (plain image, or the ``pixels``/``observation`` entry of a Dict)."""
    if isinstance(obs, dict):
        obs = obs["pixels"] if "pixels" in obs else obs["observation"]
    return np.asarray(obs)


def _check_image(name: str, obs: Any, batched: bool = False) -> None:
    """Fail loudly on a blank or wrongly sized image: timing an env that draws nothing measures nothing."""
    image = _image(obs)
    if image.dtype != np.uint8 or SIZE not in image.shape[int(batched) :][:2] + image.shape[int(batched) :][-2:]:
        raise SystemExit(f"{name}: expected uint8 {SIZE}x{SIZE} images, got {image.dtype} {image.shape}")
    if float(image.std()) == 0.0:
        raise SystemExit(f"{name}: its camera images are blank (all {image.flat[0]}); refusing to time it")


def lepton(scenario: str, num_envs: int | None = None, **overrides: Any) -> Callable[[], Any]:
    """A builder for our scenario; a ScenarioError/ValueError (part not landed yet) becomes :class:`Skip`."""

    def make() -> Any:
        import lepton_sim

        try:
            if num_envs is None:
                return lepton_sim.make(scenario, **overrides)
            return lepton_sim.make_vec(scenario, num_envs, mode="vector_entry_point", **overrides)
        except (ValueError, TypeError) as error:  # ScenarioError is a ValueError
            message = str(error).splitlines()[0].split("; allowed:")[0]
            raise Skip(message.split("(with overrides): ")[-1][:300]) from error
        except ImportError as error:  # a module of another part, half-written in the shared tree
            raise Skip(f"import failed: {error}") from error

    return make


def highway_fast_pixels() -> Any:
    """highway-fast-v0 observing its own 84x84 grayscale rendering (one frame: equal work to our one image)."""
    import gymnasium
    import highway_env  # noqa: F401  (benchmark extra: registers highway-fast-v0)

    observation = {
        "type": "GrayscaleObservation",
        "observation_shape": (SIZE, SIZE),
        "stack_size": 1,
        "weights": [0.2989, 0.5870, 0.1140],
    }
    return gymnasium.make("highway-fast-v0", config={"observation": observation})


def highway_fast_state() -> Any:
    import gymnasium
    import highway_env  # noqa: F401

    return gymnasium.make("highway-fast-v0")


class RenderEveryStep:
    """panda-gym with its ``render()`` called after every step: the frame is the observation a pixel agent gets."""

    def __init__(self, env: Any) -> None:
        self.env, self.action_space = env, env.action_space

    def reset(self, **kw: Any) -> Any:
        _, info = self.env.reset(**kw)
        return self.env.render(), info

    def step(self, action: Any) -> Any:
        _, reward, terminated, truncated, info = self.env.step(action)
        return self.env.render(), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()


def panda_reach_pixels() -> Any:
    import gymnasium
    import panda_gym  # noqa: F401  (benchmark extra: registers Panda*-v3)

    env = gymnasium.make("PandaReach-v3", render_mode="rgb_array", render_width=SIZE, render_height=SIZE)
    return RenderEveryStep(env)


# ----------------------------------------------------------------------------------------------------- timing


def _sampler(space: Any, seed: int, count: int = 256) -> list[Any]:
    """Pre-sampled random actions (a copy of the space, seeded: the env's own space and RNG stay untouched)."""
    import copy

    space = copy.deepcopy(space)
    space.seed(seed)
    return [space.sample() for _ in range(count)]


class CameraClock:
    """Seconds spent in the base env's camera calls and in sensor degradations while a case runs.

    Why: on a shared machine the difference of two medians is noisy; timing the camera calls themselves inside
    the same run says where a pixels step's extra time goes (render, degradations, the rest of the pipeline).
    """

    def __init__(self) -> None:
        self.render = 0.0
        self.degrade = 0.0
        self.base = 0.0  # in the base env's own step/reset: the rest of a step is the wrappers' (the pipeline's)
        self.watched = False  # the env has lepton-sim's camera calls (peers do not)

    def zero(self) -> None:
        self.render = self.degrade = self.base = 0.0

    def _timed(self, function: Callable[..., Any], slot: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = now()
            try:
                return function(*args, **kwargs)
            finally:
                setattr(self, slot, getattr(self, slot) + now() - start)

        return timed

    @contextmanager
    def watching(self, env: Any) -> Iterator[None]:
        base = getattr(env, "unwrapped", env)
        patched = [a for a in ("camera_image", "camera_images") if callable(getattr(base, a, None))]
        self.watched = bool(patched)
        for attr in patched:
            setattr(base, attr, self._timed(getattr(base, attr), "render"))
        for attr in ("step", "reset"):
            setattr(base, attr, self._timed(getattr(base, attr), "base"))
        patched += ["step", "reset"]
        model = _sensor_model()
        apply = model.apply if model is not None else None
        if model is not None:
            model.apply = self._timed(apply, "degrade")  # type: ignore[method-assign]
        try:  # a native vector env's worlds are degraded together (compose calls apply_worlds)
            from lepton_sim.envs import pixel_observation as pipeline
        except ImportError:
            pipeline = None  # type: ignore[assignment]
        batched = getattr(pipeline, "apply_worlds", None)
        if batched is not None:
            pipeline.apply_worlds = self._timed(batched, "degrade")  # type: ignore[union-attr]
        try:
            yield
        finally:
            for attr in patched:
                delattr(base, attr)  # the class's method again
            if model is not None:
                model.apply = apply  # type: ignore[method-assign]
            if batched is not None:
                pipeline.apply_worlds = batched  # type: ignore[union-attr]


def _sensor_model() -> Any:
    try:
        from lepton_sim.envs.sensor_realism import SensorModel
    except ImportError:
        return None
    return SensorModel


def time_single(env: Any, seconds: float, seed: int, clock: CameraClock | None = None) -> tuple[int, float, float]:
    """Random actions for ``seconds`` (wall clock), resets on episode end counted in the time -> (env steps,
    wall seconds, seconds on the benchmark's clock)."""
    actions = _sampler(env.action_space, seed)
    env.reset(seed=seed)
    if clock is not None:
        clock.zero()  # the first reset is outside the timing
    steps = 0
    start, start_clock = time.perf_counter(), now()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
            steps += 1
            if terminated or truncated:
                env.reset()
    return steps, time.perf_counter() - start, now() - start_clock


def time_vector(venv: Any, seconds: float, seed: int, clock: CameraClock | None = None) -> tuple[int, float, float]:
    """Random actions for ``seconds`` (Gymnasium autoreset) -> (env steps over all worlds, wall seconds,
    seconds on the benchmark's clock)."""
    actions = _sampler(venv.action_space, seed, 32)
    venv.reset(seed=seed)
    if clock is not None:
        clock.zero()
    steps = 0
    start, start_clock = time.perf_counter(), now()
    while time.perf_counter() - start < seconds:
        venv.step(actions[steps % len(actions)])
        steps += 1
    return steps * venv.num_envs, time.perf_counter() - start, now() - start_clock


def build(case: Case) -> Any:
    env = case.make()
    obs, _ = env.reset(seed=0)
    if case.pixels:
        _check_image(case.name, obs, batched=case.vector)
        if not case.vector:  # the first frame can be special (nothing drawn yet): check a later one too
            obs, *_ = env.step(_sampler(env.action_space, 0, 1)[0])
            _check_image(case.name, obs)
    return env


def run_once(case: Case, seconds: float, seed: int) -> None:
    """One round of ``case``: its rate, and the camera's and the degradations' ms per env step."""
    env = build(case) if case.env is None else case.env
    clock = CameraClock()
    try:
        with clock.watching(env):
            steps, wall, elapsed = (time_vector if case.vector else time_single)(env, seconds, seed, clock)
    finally:
        if case.fresh_per_round:
            env.close()
        else:
            case.env = env
    case.rates.append(steps / elapsed)
    case.wall_rates.append(steps / wall)
    if clock.watched and case.pixels:
        case.render_ms.append(1000.0 * clock.render / steps)
    case.wrapper_ms.append(1000.0 * (elapsed - clock.base) / steps)
    case.degrade_ms.append(1000.0 * clock.degrade / steps)


def measure(cases: list[Case], seconds: float, rounds: int) -> list[Case]:
    """Build every case (skipping the ones not available yet), then time them in turns; returns those timed."""
    ready: list[Case] = []
    for case in cases:
        try:
            if not case.fresh_per_round:
                case.env = build(case)
            else:
                build(case).close()
            ready.append(case)
        except Skip as reason:
            print(f"  SKIP {case.name}: {reason}", flush=True)
        except Exception as error:  # another helper's part is broken right now: say so, time the rest
            FAILURES.append(f"{case.name}: {type(error).__name__}: {error}")
            print(f"  FAIL {case.name}: {type(error).__name__}: {error}", flush=True)
    for r in range(rounds):
        for case in ready:
            run_once(case, seconds, seed=r)
            camera = f"  (camera {case.render_ms[-1]:.3f} ms/step)" if case.render_ms else ""
            print(f"  round {r + 1}: {case.name:64s} {case.rates[-1]:12,.1f} steps/s{camera}", flush=True)
    return ready


def close(cases: list[Case]) -> None:
    for case in cases:
        if case.env is not None:
            case.env.close()
            case.env = None


def profile(case: Case, seconds: float) -> str:
    """cProfile of one case for ``seconds``: the top entries by own time."""
    env = build(case) if case.env is None else case.env
    profiler = cProfile.Profile()
    profiler.enable()
    (time_vector if case.vector else time_single)(env, seconds, 0)
    profiler.disable()
    if case.fresh_per_round:
        env.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(12)
    stats.sort_stats("cumulative").print_stats(16)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())


# --------------------------------------------------------------------------------------------------- sections


def _rate(cases: dict[str, Case], name: str) -> float:
    return cases[name].median if name in cases else float("nan")


def _ratio(cases: dict[str, Case], a: str, b: str) -> float:
    """Median over rounds of a's rate / b's rate in the same round (paired: the two ran seconds apart, so a
    load change between rounds cancels)."""
    if a not in cases or b not in cases:
        return float("nan")
    return statistics.median(x / y for x, y in zip(cases[a].rates, cases[b].rates))


def _added_ms(cases: dict[str, Case], slow: str, fast: str) -> float:
    """Milliseconds one step of ``slow`` takes beyond one step of ``fast``, end to end (noisy where the
    simulation's own step time varies: SUMO)."""
    return 1000.0 * (1.0 / _rate(cases, slow) - 1.0 / _rate(cases, fast))


def _pipeline_ms(cases: dict[str, Case], slow: str, fast: str) -> float:
    """Milliseconds per step the wrappers of ``slow`` spend beyond those of ``fast`` (time outside the base env's
    step/reset, measured in the same runs): what the camera stage adds, without the simulation's variance."""
    if slow not in cases or fast not in cases:
        return float("nan")
    return statistics.median(cases[slow].wrapper_ms) - statistics.median(cases[fast].wrapper_ms)


def driving(args: argparse.Namespace) -> tuple[list[Case], list[Bar]]:
    n = args.num_envs
    cases = [
        Case("highway-fast-v0 (state)", highway_fast_state),
        Case("highway-fast-v0 (GrayscaleObservation 84x84)", highway_fast_pixels, pixels=True),
    ]
    for scenario in ("driving/dense-traffic", "driving/obstacle-avoid"):
        for label, overrides in (("state", {}), ("pixels", PIXELS), (f"pixels, severity {SEVERITY}", DEGRADED)):
            px = bool(overrides)
            cases.append(Case(f"{scenario} single ({label})", lepton(scenario, **overrides), pixels=px))
            cases.append(
                Case(f"{scenario} vector {n} ({label})", lepton(scenario, n, **overrides), vector=True, pixels=px)
            )
    timed = {c.name: c for c in measure(cases, args.seconds, args.rounds)}
    peer = "highway-fast-v0 (GrayscaleObservation 84x84)"
    dt, oa = "driving/dense-traffic", "driving/obstacle-avoid"
    bars = [
        Bar(
            "dense-traffic pixels, single / highway-fast pixels",
            _ratio(timed, f"{dt} single (pixels)", peer),
            10,
            "x",
            cases=(f"{dt} single (pixels)",),
        ),
        Bar(
            f"dense-traffic pixels, vector {n} / highway-fast pixels",
            _ratio(timed, f"{dt} vector {n} (pixels)", peer),
            250,
            "x",
            cases=(f"{dt} vector {n} (pixels)",),
        ),
        Bar(
            "dense-traffic state, single / highway-fast state (the simulations alone)",
            _ratio(timed, f"{dt} single (state)", "highway-fast-v0 (state)"),
            NO_TARGET,
            "x",
        ),
        Bar(
            f"dense-traffic state, vector {n} / highway-fast state",
            _ratio(timed, f"{dt} vector {n} (state)", "highway-fast-v0 (state)"),
            NO_TARGET,
            "x",
        ),
        Bar("obstacle-avoid state, single", _rate(timed, f"{oa} single (state)"), NO_TARGET, "steps/s"),
        Bar(
            "obstacle-avoid pixels, single",
            _rate(timed, f"{oa} single (pixels)"),
            2000,
            "steps/s",
            cases=(f"{oa} single (pixels)",),
        ),
        Bar(
            f"obstacle-avoid pixels, vector {n}",
            _rate(timed, f"{oa} vector {n} (pixels)"),
            10000,
            "env-steps/s",
            cases=(f"{oa} vector {n} (pixels)",),
        ),
    ]
    for scenario in (oa, dt):
        short = scenario.split("/")[1]
        for kind in ("single", f"vector {n}"):
            pixels, degraded = f"{scenario} {kind} (pixels)", f"{scenario} {kind} (pixels, severity {SEVERITY})"
            bars.append(
                Bar(
                    f"{short} {kind}: severity {SEVERITY} adds, per frame",
                    _pipeline_ms(timed, degraded, pixels),  # vector rates are per world step: per frame too
                    NO_TARGET,
                    "ms",
                    cases=(degraded,),
                )
            )
        for kind, target in (("single", 0.8), (f"vector {n}", 0.5)):
            bars.append(
                Bar(
                    f"{short} pixels / state, {kind}",
                    _ratio(timed, f"{scenario} {kind} (pixels)", f"{scenario} {kind} (state)"),
                    target,
                    "of state",
                    cases=(f"{scenario} {kind} (pixels)",),
                )
            )
    return list(timed.values()), bars


def manufacturing(args: argparse.Namespace) -> tuple[list[Case], list[Bar]]:
    reach = "manufacturing/reach"
    two = {**PIXELS, "obs_camera": ["overhead", "wrist"]}
    cases = [
        Case("PandaReach-v3 + render() 84x84 every step", panda_reach_pixels, pixels=True),
        Case(f"{reach} (state)", lepton(reach)),
        Case(f"{reach} (pixels, overhead)", lepton(reach, **PIXELS), pixels=True),
        Case(f"{reach} (pixels, overhead + wrist)", lepton(reach, **two), pixels=True),
        Case(f"{reach} (pixels, overhead, severity {SEVERITY})", lepton(reach, **DEGRADED), pixels=True),
    ]
    timed = {c.name: c for c in measure(cases, args.seconds, args.rounds)}
    one, both = f"{reach} (pixels, overhead)", f"{reach} (pixels, overhead + wrist)"
    peer = "PandaReach-v3 + render() 84x84 every step"
    bars = [
        Bar("reach, one 84x84 camera", _rate(timed, one), 250, "steps/s", cases=(one,)),
        Bar("reach, overhead + wrist", _rate(timed, both), 150, "steps/s", cases=(both,)),
        Bar("reach one camera / panda-gym render()", _ratio(timed, one, peer), 8, "x", cases=(one,)),
        Bar(
            f"reach: severity {SEVERITY} adds, per frame",
            _pipeline_ms(timed, f"{reach} (pixels, overhead, severity {SEVERITY})", one),
            NO_TARGET,
            "ms",
        ),
    ]
    return list(timed.values()), bars


def traffic(args: argparse.Namespace) -> tuple[list[Case], list[Bar]]:
    cases = []
    for scenario in ("traffic/single-intersection", "traffic/2x2-grid"):
        for label, overrides in (("state", {}), ("pixels", PIXELS), (f"pixels, severity {SEVERITY}", DEGRADED)):
            make = lepton(scenario, **overrides)
            cases.append(Case(f"{scenario} ({label})", make, pixels=bool(overrides), fresh_per_round=True))
    timed = {c.name: c for c in measure(cases, args.seconds, args.rounds)}
    bars = []
    for scenario in ("traffic/single-intersection", "traffic/2x2-grid"):
        short, state, pixels = scenario.split("/")[1], f"{scenario} (state)", f"{scenario} (pixels)"
        degraded = f"{scenario} (pixels, severity {SEVERITY})"
        bars += [
            Bar(
                f"{short}: camera ms per decision step",
                _pipeline_ms(timed, pixels, state),
                1.0,
                "ms",
                higher_is_better=False,
                cases=(pixels,),
            ),
            Bar(f"{short}: camera ms per decision step, end to end", _added_ms(timed, pixels, state), NO_TARGET, "ms"),
            Bar(
                f"{short}: severity {SEVERITY} adds, per decision step",
                _pipeline_ms(timed, degraded, pixels),
                NO_TARGET,
                "ms",
            ),
        ]
    return list(timed.values()), bars


FRAME_SOURCES = ("driving/obstacle-avoid", "manufacturing/reach", "traffic/single-intersection")


def stored_frames(per_source: int) -> np.ndarray:
    """Real 84x84 RGB frames from every domain's default camera (random actions), copied out of the envs."""
    frames: list[np.ndarray] = []
    for scenario in FRAME_SOURCES:
        try:
            env = lepton(scenario, **PIXELS)()
        except Skip as reason:
            print(f"  SKIP frames of {scenario}: {reason}")
            continue
        try:
            actions = _sampler(env.action_space, 0, per_source)
            env.reset(seed=0)
            for action in actions:
                obs, _, terminated, truncated, _ = env.step(action)
                frames.append(np.array(_image(obs)[..., :3]))
                if terminated or truncated:
                    env.reset()
        except Exception as error:  # another helper's camera is broken right now: use the other domains' frames
            FAILURES.append(f"frames of {scenario}: {type(error).__name__}: {error}")
            print(f"  FAIL frames of {scenario}: {type(error).__name__}: {error}")
            continue
        finally:
            env.close()
        print(f"  {per_source} frames from {scenario}", flush=True)
    if not frames:
        raise Skip("no domain renders pixels yet: no frames to degrade")
    return np.stack(frames)


def time_degradation(params: Any, frames: np.ndarray, seconds: float) -> tuple[float, float]:
    """(ms per frame in ``SensorModel.apply``, ms per ``begin_episode``) over episodes seeded 0, 1, ... until
    ``seconds`` pass; each episode degrades every stored frame once (rendering is not in the timing)."""
    model = _sensor_model()(params, SIZE, (True,))
    out = np.empty_like(frames[0])
    apply_s = begin_s = 0.0
    episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = now()
        model.begin_episode(seed=episodes)
        t1 = now()
        for frame in frames:
            model.apply(0, frame, out)
        apply_s += now() - t1
        begin_s += t1 - t0
        episodes += 1
    return 1000.0 * apply_s / (episodes * len(frames)), 1000.0 * begin_s / episodes


def degradations(args: argparse.Namespace) -> tuple[list[Case], list[Bar]]:
    if _sensor_model() is None:
        raise Skip("sensor realism (envs/sensor_realism.py) not landed yet")
    from lepton_sim.envs.camera_params import CORRUPTIONS, SensorParams

    frames = stored_frames(32)
    settings: dict[str, Any] = {f"severity {s}": SensorParams(severity=s) for s in range(1, 6)}
    for level in (SEVERITY, 5):  # where the time goes: one corruption at a time, at the default and worst level
        settings.update(
            {f"severity {level}, {c} only": SensorParams(severity=level, corruptions=[c]) for c in CORRUPTIONS}
        )
    per_frame: dict[str, list[float]] = {name: [] for name in settings}
    per_episode: dict[str, list[float]] = {name: [] for name in settings}
    seconds = max(0.2, args.seconds / 3)  # ms-scale work: a third of the env rounds is plenty
    for r in range(args.rounds):
        for name, params in settings.items():
            frame_ms, episode_ms = time_degradation(params, frames, seconds)
            per_frame[name].append(frame_ms)
            per_episode[name].append(episode_ms)
        print(f"  round {r + 1}: " + ", ".join(f"{n} {v[-1]:.3f}" for n, v in per_frame.items() if "only" not in n))
    bars = [
        Bar(f"{name}: ms per 84x84 frame", statistics.median(per_frame[name]), 0.25, "ms", higher_is_better=False)
        for name in settings
        if "only" not in name
    ]
    bars += [
        Bar(f"{name}: ms per 84x84 frame", statistics.median(per_frame[name]), NO_TARGET, "ms")
        for name in settings
        if "only" in name
    ]
    bars += [
        Bar(f"{name}: ms per episode start", statistics.median(per_episode[name]), NO_TARGET, "ms")
        for name in settings
        if "only" not in name
    ]
    print(f"  {len(frames)} stored frames, {args.rounds} rounds of {seconds:.2g} s per setting")
    return [], bars


# ------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=NUM_ENVS, help="worlds in the driving vector env")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    parser.add_argument("--profile", action="store_true", help="cProfile the cases of every missed bar")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="cpu: steps per CPU-second of this process (one core's work; default), wall: per wall-clock second",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    _clock[0] = args.clock

    load_before = os.getloadavg()
    print(
        f"camera throughput, {date.today()}, {platform.processor() or platform.machine()}, "
        f"{args.rounds} rounds x {args.seconds:g} s, {args.clock} clock, load average {load_before[0]:.2f} {load_before[1]:.2f}",
        flush=True,
    )
    sections: dict[str, Callable[[argparse.Namespace], tuple[list[Case], list[Bar]]]] = {
        "driving": driving,
        "manufacturing": manufacturing,
        "traffic": traffic,
        "degradations": degradations,
    }
    all_cases: list[Case] = []
    all_bars: list[Bar] = []
    for name in args.only or SECTIONS:
        print(f"\n## {name}", flush=True)
        try:
            cases, bars = sections[name](args)
        except Skip as reason:
            print(f"  SKIP {name}: {reason}")
            continue
        except ImportError as error:
            hint = " (pip install -e '.[bench]' for the peers)" if error.name in ("highway_env", "panda_gym") else ""
            print(f"  SKIP {name}: {error}{hint}")
            continue
        all_cases += cases
        for bar in bars:
            if np.isfinite(bar.value):
                all_bars.append(bar)
            else:
                print(f"  SKIP bar {bar.name}: a case it needs was skipped")
        if args.profile:
            by_name = {c.name: c for c in cases}
            missed: dict[str, list[str]] = {}
            for bar in bars:
                if np.isfinite(bar.value) and not bar.passed and not bar.informative:
                    for case_name in bar.cases:
                        missed.setdefault(case_name, []).append(bar.name)
            for case_name, names in missed.items():
                print(f"\nprofile of {case_name} (missed: {'; '.join(names)}):\n{profile(by_name[case_name], 5.0)}")
        close(cases)

    load_after = os.getloadavg()
    print(f"\nmedian of {args.rounds} rounds; load average at the end {load_after[0]:.2f} {load_after[1]:.2f}")
    print(
        f"\n| case | steps/s ({args.clock}, median) | rounds | wall-clock steps/s | wrappers ms/step | camera ms/step"
        " | degradations ms/step |\n|---|---|---|---|---|---|---|"
    )
    for case in all_cases:
        rounds = " ".join(f"{r:,.0f}" for r in case.rates)
        wrappers = f"{statistics.median(case.wrapper_ms):.3f}" if case.wrapper_ms else "-"
        camera = f"{statistics.median(case.render_ms):.3f}" if case.render_ms else "-"
        degrade = statistics.median(case.degrade_ms) if case.degrade_ms else 0.0
        wall = statistics.median(case.wall_rates)
        print(
            f"| {case.name} | {case.median:,.1f} | {rounds} | {wall:,.1f} | {wrappers} | {camera} |"
            f" {f'{degrade:.3f}' if degrade else '-'} |"
        )
    for failure in FAILURES:
        print(f"FAILED to build: {failure}")
    print("\n| bar | measured | target | verdict |\n|---|---|---|---|")
    for bar in all_bars:
        sign = ">=" if bar.higher_is_better else "<="
        target = "-" if bar.informative else f"{sign} {bar.target:,g} {bar.unit}"
        verdict = "-" if bar.informative else "PASS" if bar.passed else f"MISS ({bar.value / bar.target - 1:+.0%})"
        print(f"| {bar.name} | {bar.value:,.3g} {bar.unit} | {target} | {verdict} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": str(date.today()),
                    "clock": args.clock,
                    "load_average": [load_before, load_after],
                    "seconds": args.seconds,
                    "rounds": args.rounds,
                    "steps_per_s": {
                        c.name: {
                            "median": c.median,
                            "rounds": c.rates,
                            "wall_rounds": c.wall_rates,
                            "wrappers_ms": c.wrapper_ms,
                            "camera_ms": c.render_ms,
                            "degradations_ms": c.degrade_ms,
                        }
                        for c in all_cases
                    },
                    "failures": FAILURES,
                    "bars": {
                        b.name: {"value": b.value, "target": None if b.informative else b.target, "pass": b.passed}
                        for b in all_bars
                    },
                    "peer_reference": PEER_REFERENCE,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
