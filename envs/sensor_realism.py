"""Sensor realism: per-episode camera degradations, sampled from the reset seed and applied in numpy.

Why here and not in the renderers: every domain's camera (driving raster, PyBullet, traffic) gets the same
degradations with the same meaning and the same cost, and a renderer only has to honour the episode's
:class:`CameraConditions` (pose jitter, light). Photometric degradations are applied to the rendered RGB in a
fixed order that follows a real camera: optics blur, motion blur, exposure (brightness / contrast / gamma, one
uint8 look-up table), sensor noise, then occluders and dead pixels on top.

Randomness never comes from the env's ``np_random``: the sensor draws from its own generator,
``np.random.default_rng([seed, SENSOR_STREAM])`` on a seeded reset (continued on an unseeded one), so an
episode's rewards and infos are the same in state and pixel modes, and world ``i`` of a vector env seeded
``seed`` sees exactly what a single env seeded ``seed + i`` sees. Costs (84x84 RGB, one core): see README.

``severity`` (0-5) fills the fields left unset from :data:`SEVERITY`, ImageNet-C style: five levels per
corruption, each a documented value (pixel sizes are for an 84-pixel image and scale with ``camera_size``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions
from lepton_sim.envs.camera_params import CORRUPTIONS, SensorParams
from lepton_sim.envs.params import Range

SENSOR_STREAM = 0x5E2502  # second word of the sensor generator's seed: keeps it apart from the env's streams
REFERENCE_SIZE = 84  # SEVERITY's pixel sizes are for this image side
POOL_OFFSETS = 4096  # distinct noise frames per episode: each frame starts at a random offset into the pool
POOL_SEED = 20250101  # the noise pool is fixed; frames differ by their (seeded) offsets
BLUR_TRUNCATE = 2.0  # Gaussian kernel radius in sigmas (95% of the weight; each extra tap costs ~4 us a frame)

# severity 1..5 -> (low, high) per field. Magnitudes are fixed per level, as ImageNet-C's; signed fields (pose,
# light) are magnitudes drawn up to the level, each with a random sign (uniform in +-level, as robosuite's
# DomainRandomizationWrapper; severity 3 = its defaults: 1 cm, 5 degrees, +-5 degrees of field of view).
SEVERITY: dict[str, tuple[tuple[float, float], ...]] = {
    # Gaussian noise std (0-255); ImageNet-C's level 1 is already 20, too much for 84x84 control
    "noise_std": ((3, 3), (6, 6), (10, 10), (15, 15), (22, 22)),
    # px at 84x84: ImageNet-C's Gaussian blur sigmas 1, 2, 3, 4, 6 at 224 px, scaled by 84/224
    "blur_sigma": ((0.4, 0.4), (0.7, 0.7), (1.1, 1.1), (1.5, 1.5), (2.2, 2.2)),
    # px at 84x84 (line length)
    "motion_blur": ((2, 2), (3, 3), (5, 5), (7, 7), (9, 9)),
    "brightness": ((-0.05, 0.05), (-0.1, 0.1), (-0.15, 0.15), (-0.2, 0.2), (-0.3, 0.3)),
    "contrast": ((0.9, 1.1), (0.8, 1.2), (0.7, 1.3), (0.6, 1.4), (0.5, 1.5)),
    "gamma": ((0.9, 1.1), (0.8, 1.25), (0.7, 1.4), (0.6, 1.6), (0.5, 2.0)),
    "occlusions": ((1, 1), (1, 1), (2, 2), (3, 3), (4, 4)),
    "occlusion_size": ((0.1, 0.1), (0.15, 0.15), (0.2, 0.2), (0.25, 0.25), (0.3, 0.3)),
    "dead_pixels": ((0.001, 0.001), (0.002, 0.002), (0.005, 0.005), (0.01, 0.01), (0.02, 0.02)),
    "pose_position": ((0, 0.0033), (0, 0.0067), (0, 0.01), (0, 0.015), (0, 0.02)),
    "pose_rotation": ((0, 1.7), (0, 3.3), (0, 5), (0, 7.5), (0, 10)),
    "pose_fov": ((0, 1.7), (0, 3.3), (0, 5), (0, 7.5), (0, 10)),
    "light_direction": ((0, 5), (0, 10), (0, 20), (0, 30), (0, 45)),
    "light_color": ((0, 0.05), (0, 0.1), (0, 0.15), (0, 0.2), (0, 0.3)),
}
PIXEL_FIELDS = ("blur_sigma", "motion_blur")  # severity values scaled by camera_size / REFERENCE_SIZE
NEUTRAL: dict[str, float] = {"contrast": 1.0, "gamma": 1.0}  # other fields are neutral at 0


def copy_channels(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for images whose channel axis is strided (an RGB view of an RGBA buffer, a slice of a
    stacked image): one copy per channel, ~5x faster than numpy's pixel-by-pixel copy of 3-element rows."""
    if (src.flags.c_contiguous and dst.flags.c_contiguous) or src.shape[-1] > 4:
        np.copyto(dst, src)
    else:
        for c in range(src.shape[-1]):
            dst[..., c] = src[..., c]


def is_nominal(conditions: CameraConditions | Sequence[CameraConditions]) -> bool:
    """Whether a camera's conditions (one, or one per stacked image) change nothing."""
    if isinstance(conditions, CameraConditions):
        return conditions.nominal
    return all(c.nominal for c in conditions)


def resolved(params: SensorParams, size: int = REFERENCE_SIZE) -> dict[str, Range]:
    """Every degradation field's range for an image of side ``size``: explicit fields as given, the others from
    ``SEVERITY`` (for the listed ``corruptions``) or their defaults."""
    groups = CORRUPTIONS if params.corruptions is None else {g: CORRUPTIONS[g] for g in params.corruptions}
    from_severity = {f for fields in groups.values() for f in fields} if params.severity else set()
    out: dict[str, Range] = {}
    for name in SEVERITY:
        value: Range = getattr(params, name)
        if name in from_severity and name not in params.model_fields_set:
            low, high = SEVERITY[name][params.severity - 1]
            scale = size / REFERENCE_SIZE if name in PIXEL_FIELDS else 1.0
            value = type(value)(low=low * scale, high=high * scale)
        out[name] = value
    return out


def is_clean(params: SensorParams) -> bool:
    """True when no degradation can change an image or a camera pose (the pipeline then skips sensor realism)."""
    ranges = resolved(params)
    for name, value in ranges.items():
        neutral = NEUTRAL.get(name, 0.0)
        if name == "occlusion_size":
            continue  # only matters with occlusions
        if value.low != neutral or value.high != neutral:
            return False
    return True


@lru_cache(maxsize=4)
def _standard_pool(length: int) -> np.ndarray:
    """Standard-normal noise, drawn once per process (fresh noise per 84x84 frame would cost ~0.2 ms)."""
    pool = np.random.default_rng(POOL_SEED).standard_normal(length, dtype=np.float32)
    pool.flags.writeable = False
    return pool


@lru_cache(maxsize=16)
def _scaled_pool(length: int, std: float) -> np.ndarray:
    """The pool scaled to ``std`` as int16 (shared by every episode with the same std)."""
    pool = np.rint(_standard_pool(length) * std).clip(-255, 255).astype(np.int16)
    pool.flags.writeable = False
    return pool


class _Blur:
    """Separable Gaussian blur in uint16 fixed point (weights sum to 256 per pass, edges replicated)."""

    def __init__(self, sigma: float, shape: tuple[int, int, int]) -> None:
        h, w, c = shape
        r = max(1, min(math.ceil(BLUR_TRUNCATE * sigma), min(h, w) // 2))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        weights = np.rint(k / k.sum() * 256).astype(np.int64)
        weights[r] += 256 - int(weights.sum())  # exact sum 256
        self.r, self.w = r, weights.astype(np.uint16)
        self.vpad = np.empty((h + 2 * r, w, c), np.uint16)
        self.hpad = np.empty((h, w + 2 * r, c), np.uint16)
        self.acc = np.empty((h, w, c), np.uint16)
        self.tmp = np.empty((h, w, c), np.uint16)
        self.out = np.empty((h, w, c), np.uint8)

    def _pass(self, pad: np.ndarray, axis: int, out: np.ndarray) -> None:
        r, w, acc, tmp = self.r, self.w, self.acc, self.tmp
        n = acc.shape[axis]

        def tap(i: int) -> np.ndarray:
            return pad[i : i + n] if axis == 0 else pad[:, i : i + n]

        np.multiply(tap(r), w[r], out=acc)
        for i in range(r):  # symmetric taps share a weight: (a + b) * w <= 510 * 127 fits uint16
            np.add(tap(i), tap(2 * r - i), out=tmp)
            np.multiply(tmp, w[i], out=tmp)
            np.add(acc, tmp, out=acc)
        np.add(acc, 128, out=acc)
        np.right_shift(acc, 8, out=out, casting="unsafe")

    def __call__(self, src: np.ndarray) -> np.ndarray:
        r, h, w = self.r, src.shape[0], src.shape[1]
        v, hp = self.vpad, self.hpad
        v[r : r + h] = src
        v[:r] = src[:1]
        v[r + h :] = src[-1:]
        self._pass(v, 0, hp[:, r : r + w])
        hp[:, :r] = hp[:, r : r + 1]
        hp[:, r + w :] = hp[:, r + w - 1 : r + w]
        self._pass(hp, 1, self.out)
        return self.out


class _MotionBlur:
    """Mean of ``length`` copies shifted along one direction (a line kernel), edges replicated."""

    def __init__(self, length: int, angle: float, shape: tuple[int, int, int]) -> None:
        h, w, c = shape
        # the line 0..length-1 along the direction (each step moves a pixel), centred on its rounded middle
        sin, cos, mid = math.sin(angle), math.cos(angle), (length - 1) / 2
        cy, cx = round(mid * sin), round(mid * cos)
        self.offsets = [(round(t * sin) - cy, round(t * cos) - cx) for t in range(length)]
        self.r = r = max(max(abs(dy), abs(dx)) for dy, dx in self.offsets)
        self.length = length
        self.pad = np.empty((h + 2 * r, w + 2 * r, c), np.uint16)
        self.acc = np.empty((h, w, c), np.uint16)
        self.out = np.empty((h, w, c), np.uint8)

    def __call__(self, src: np.ndarray) -> np.ndarray:
        r, h, w = self.r, src.shape[0], src.shape[1]
        pad, acc = self.pad, self.acc
        pad[r : r + h, r : r + w] = src
        pad[:r, r : r + w] = src[:1]
        pad[r + h :, r : r + w] = src[-1:]
        pad[:, :r] = pad[:, r : r + 1]
        pad[:, r + w :] = pad[:, r + w - 1 : r + w]
        dy, dx = self.offsets[0]
        np.copyto(acc, pad[r + dy : r + dy + h, r + dx : r + dx + w])
        for dy, dx in self.offsets[1:]:
            np.add(acc, pad[r + dy : r + dy + h, r + dx : r + dx + w], out=acc)
        np.add(acc, self.length // 2, out=acc)
        np.floor_divide(acc, self.length, out=self.out, casting="unsafe")
        return self.out


@dataclass
class _Photometric:
    """One RGB image's degradations for one episode (everything fixed at reset except the noise offset)."""

    blur: _Blur | None = None
    motion: _MotionBlur | None = None
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    curve: np.ndarray | None = None  # gamma curve on [0, 1] (float32, 256 entries)
    scaled: np.ndarray | None = None  # (curve * contrast + brightness) * 255 + 0.5: the contrast LUT before its shift
    lut: np.ndarray | None = None  # static LUT (contrast 1); with contrast, rebuilt per frame around its mean
    noise: np.ndarray | None = None  # int16 pool for this episode's std
    rects: list[tuple[int, int, int, int, np.ndarray]] = field(default_factory=list)
    dead: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def photometric(self) -> bool:
        return self.brightness != 0.0 or self.contrast != 1.0 or self.gamma != 1.0

    @property
    def degrades(self) -> bool:
        return bool(self.blur or self.motion or self.photometric or self.noise is not None or self.rects or self.dead)


def _lut(brightness: float, curve: np.ndarray) -> np.ndarray:
    """uint8 -> uint8: ``curve`` (gamma on [0, 1]) plus brightness."""
    return np.clip((curve + brightness) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _contrast_lut(ep: "_Photometric", mean: float) -> np.ndarray:
    """The episode's LUT with contrast around this frame's ``mean`` intensity (after gamma): three small ops on
    arrays prepared at reset."""
    assert ep.scaled is not None and ep.curve is not None
    shift = (1.0 - ep.contrast) * 255.0 * float(ep.curve[min(255, int(mean))])
    return np.clip(ep.scaled + shift, 0, 255).astype(np.uint8)


def _signed(rng: np.random.Generator, value: Range, n: int) -> tuple[float, ...]:
    """``n`` magnitudes from ``value``, each with a random sign (pose jitter)."""
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return tuple(float(value.sample(rng) * sign) for sign in signs)


def _tilted(
    nominal: tuple[float, float, float], degrees: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """``nominal`` tilted by ``degrees`` towards a random direction perpendicular to it."""
    n = np.asarray(nominal, dtype=float)
    n /= np.linalg.norm(n)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(n, helper)
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    phi, a = rng.uniform(0, 2 * math.pi), math.radians(degrees)
    d = math.cos(a) * n + math.sin(a) * (math.cos(phi) * u + math.sin(phi) * v)
    return (float(d[0]), float(d[1]), float(d[2]))


class SensorModel:
    """The degradations of one world's cameras: ``begin_episode`` at each reset, then per frame ``conditions``
    (for the renderer) and ``apply`` (to the rendered RGB).

    ``images[k]``: how many RGB images camera k returns stacked on its channels (1 for a colour camera; a
    traffic network's camera stacks one per signal, each posed and degraded on its own, as separate cameras
    are); 0 for a semantic grid, which gets pose jitter but no photometric degradation (a class grid is not a
    sensor reading).
    """

    def __init__(
        self,
        params: SensorParams,
        size: int,
        images: Sequence[int],
        light_direction: tuple[float, float, float] | None = None,
    ) -> None:
        self.ranges = resolved(params, size)
        self.size = size
        self.images = tuple(images)
        self.light_direction = light_direction
        self._rng: np.random.Generator | None = None
        self._conditions: list[tuple[CameraConditions, ...]] = [(NOMINAL,) * max(1, n) for n in self.images]
        self._photometric: list[list[_Photometric]] = [[_Photometric() for _ in range(n)] for n in self.images]
        self._buf16 = np.empty((size, size, 3), np.int16)
        self._scratch = np.empty((size, size, 3), np.uint8)
        self._source = np.empty((size, size, 3), np.uint8)
        self._frame = size * size * 3

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:  # never reset with a seed: unseeded, as Env.reset(seed=None) is
            self._rng = np.random.default_rng()
        return self._rng

    def begin_episode(self, seed: int | None) -> None:
        """Sample this episode's values; a seed restarts the sensor's own generator, None continues it."""
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), SENSOR_STREAM])
        self._conditions = [tuple(self._sample_conditions() for _ in range(max(1, n))) for n in self.images]
        self._photometric = [[self._sample_photometric() for _ in range(n)] for n in self.images]

    def conditions(self, camera: int) -> CameraConditions | tuple[CameraConditions, ...]:
        """The camera's pose and light this episode; a camera stacking several RGB images (one per traffic
        signal) gets one per image, as they are separate cameras."""
        conditions = self._conditions[camera]
        return conditions[0] if len(conditions) == 1 else conditions

    def degrades(self, camera: int, image: int = 0) -> bool:
        """Whether ``apply`` changes this image this episode (else the pipeline copies it as it is)."""
        return self._photometric[camera][image].degrades

    def _sample_conditions(self) -> CameraConditions:
        rng, r = self.rng, self.ranges
        pose = any(r[f].high > 0 for f in ("pose_position", "pose_rotation", "pose_fov"))
        nominal_light = self.light_direction
        light = nominal_light is not None and (r["light_direction"].high > 0 or r["light_color"].high > 0)
        if not (pose or light):
            return NOMINAL
        direction = color = None
        if nominal_light is not None and r["light_direction"].high > 0:
            direction = _tilted(nominal_light, r["light_direction"].sample(rng), rng)
        if light and r["light_color"].high > 0:
            c = [1.0 - r["light_color"].sample(rng) for _ in range(3)]
            color = (c[0], c[1], c[2])
        zero = (0.0, 0.0, 0.0)
        offset = _signed(rng, r["pose_position"], 3) if r["pose_position"].high > 0 else zero
        rotation = _signed(rng, r["pose_rotation"], 3) if r["pose_rotation"].high > 0 else zero
        return CameraConditions(
            offset=(offset[0], offset[1], offset[2]),
            rotation=(rotation[0], rotation[1], rotation[2]),
            fov_delta=_signed(rng, r["pose_fov"], 1)[0] if r["pose_fov"].high > 0 else 0.0,
            light_direction=direction,
            light_color=color,
        )

    def _sample_photometric(self) -> _Photometric:
        rng, r, size = self.rng, self.ranges, self.size
        shape = (size, size, 3)
        ep = _Photometric()
        sigma = r["blur_sigma"].sample(rng)
        if sigma > 0.05:
            ep.blur = _Blur(sigma, shape)
        length = int(round(r["motion_blur"].sample(rng)))
        if length > 1:
            ep.motion = _MotionBlur(length, rng.uniform(0, math.pi), shape)
        ep.brightness = r["brightness"].sample(rng)
        ep.contrast = r["contrast"].sample(rng)
        ep.gamma = r["gamma"].sample(rng)
        if ep.photometric:
            ep.curve = (np.arange(256, dtype=np.float32) / 255.0) ** np.float32(ep.gamma)
            if ep.contrast == 1.0:
                ep.lut = _lut(ep.brightness, ep.curve)
            else:
                ep.scaled = (ep.curve * np.float32(ep.contrast) + np.float32(ep.brightness)) * 255.0 + 0.5
        std = r["noise_std"].sample(rng)
        if std > 0:
            ep.noise = _scaled_pool(self._frame + POOL_OFFSETS, round(std, 3))
        for _ in range(int(r["occlusions"].sample(rng))):
            side = max(1, int(round(r["occlusion_size"].sample(rng) * size)))
            y0, x0 = (int(v) for v in rng.integers(0, max(1, size - side + 1), size=2))
            ep.rects.append((y0, min(size, y0 + side), x0, min(size, x0 + side), rng.integers(0, 256, 3, np.uint8)))
        count = int(round(r["dead_pixels"].sample(rng) * size * size))
        if count:
            flat = rng.choice(size * size, size=count, replace=False)
            values = np.where(rng.random(count) < 0.5, 0, 255).astype(np.uint8)
            ep.dead = (flat // size, flat % size, values[:, None])
        return ep

    def apply(self, camera: int, src: np.ndarray, dst: np.ndarray, image: int = 0) -> None:
        """Write ``src`` (uint8 (H, W, 3), left untouched) degraded into ``dst`` (same shape, may be a view)."""
        ep = self._photometric[camera][image]
        x = src
        if not src.flags.c_contiguous:  # strided views make every stage below several times slower
            copy_channels(self._source, src)
            x = self._source
        if ep.blur is not None:
            x = ep.blur(x)
        if ep.motion is not None:
            x = ep.motion(x)
        if ep.photometric:
            lut = ep.lut
            if lut is None:  # contrast around this frame's mean (every 7th value estimates it, all channels)
                lut = _contrast_lut(ep, float(x.reshape(-1)[::7].mean()))
            target = self._scratch if ep.noise is not None else dst
            np.take(lut, x, out=target)
            x = target
        if ep.noise is not None:
            offset = int(self.rng.integers(POOL_OFFSETS))
            noise = ep.noise[offset : offset + self._frame].reshape(x.shape)
            np.add(x, noise, out=self._buf16)
            np.clip(self._buf16, 0, 255, out=self._buf16)
            np.copyto(dst, self._buf16, casting="unsafe")
        elif x is not dst:
            copy_channels(dst, x)
        for y0, y1, x0, x1, color in ep.rects:
            dst[y0:y1, x0:x1] = color
        if ep.dead is not None:
            ys, xs, values = ep.dead
            dst[ys, xs] = values
