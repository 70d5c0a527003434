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


CHUNK = 4  # worlds degraded together: every stage's uint16 buffers stay in the CPU's cache


class _Scratch:
    """Reusable uint buffers by name, sized for at least ``n`` images (sliced to ``n``: still contiguous)."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty((n, *shape), dtype)
        return buf[:n]


def _padded(x: np.ndarray, r: int, pad: np.ndarray) -> np.ndarray:
    """``x`` (n, H, W, 3) into ``pad`` (n, H + 2r, W + 2r, 3) with its edges replicated (corners included)."""
    h, w = x.shape[1], x.shape[2]
    pad[:, r : r + h, r : r + w] = x
    pad[:, r : r + h, :r] = x[:, :, :1]
    pad[:, r : r + h, r + w :] = x[:, :, -1:]
    pad[:, :r] = pad[:, r : r + 1]
    pad[:, r + h :] = pad[:, r + h - 1 : r + h]
    return pad


@dataclass(frozen=True)
class _Blur:
    """Separable Gaussian blur in uint16 fixed point (weights sum to 256 per pass, edges replicated).

    Both passes run on the flattened padded buffer (a tap is a shift of the whole buffer, one contiguous numpy
    call for every image of a batch; positions straddling rows or images are computed and ignored): ~3x faster
    than strided per-row slices, and the same integers as a per-pixel correlation."""

    r: int
    weights: tuple[int, ...]

    @classmethod
    def of(cls, sigma: float, shape: tuple[int, int, int]) -> "_Blur":
        h, w, _ = shape
        r = max(1, min(math.ceil(BLUR_TRUNCATE * sigma), min(h, w) // 2))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        weights = np.rint(k / k.sum() * 256).astype(np.int64)
        weights[r] += 256 - int(weights.sum())  # exact sum 256
        return cls(r, tuple(int(v) for v in weights))

    def __call__(self, x: np.ndarray, out: np.ndarray, scratch: _Scratch) -> None:
        """Blur ``x`` (n, H, W, 3) into ``out`` (n, H, W, 3, uint16)."""
        n, h, w, c = x.shape
        r = self.r
        shape = (h + 2 * r, w + 2 * r, c)
        pad = _padded(x, r, scratch.get(f"blur_pad{r}", n, shape, np.uint16))
        mid = scratch.get(f"blur_mid{r}", n, shape, np.uint16)
        tmp = scratch.get(f"blur_tmp{r}", n, shape, np.uint16)
        row = shape[1] * c
        size = pad.size
        _correlate(pad.reshape(-1), mid.reshape(-1), tmp.reshape(-1), self.weights, row, size - 2 * r * row)
        _correlate(mid.reshape(-1), pad.reshape(-1), tmp.reshape(-1), self.weights, c, size - 2 * r * (row + c))
        out[...] = pad[:, :h, :w]  # position (y, x) of the last pass holds the pixel (y, x)


def _correlate(src: np.ndarray, dst: np.ndarray, tmp: np.ndarray, weights: tuple[int, ...], step: int, m: int) -> None:
    """``dst[p] = (sum_k weights[k] * src[p + k * step] + 128) >> 8`` for p < m, symmetric taps paired."""
    r = len(weights) // 2
    acc, t = dst[:m], tmp[:m]

    def tap(k: int) -> np.ndarray:
        return src[k * step : k * step + m]

    np.multiply(tap(r), weights[r], out=acc)
    for i in range(r):  # symmetric taps share a weight: (a + b) * w <= 510 * 127 fits uint16
        np.add(tap(i), tap(2 * r - i), out=t)
        np.multiply(t, weights[i], out=t)
        np.add(acc, t, out=acc)
    np.add(acc, 128, out=acc)
    np.right_shift(acc, 8, out=acc)


@dataclass(frozen=True)
class _MotionBlur:
    """Mean of ``length`` copies shifted along one direction (a line kernel), edges replicated."""

    length: int
    offsets: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, length: int, angle: float) -> "_MotionBlur":
        # the line 0..length-1 along the direction (each step moves a pixel), centred on its rounded middle
        sin, cos, mid = math.sin(angle), math.cos(angle), (length - 1) / 2
        cy, cx = round(mid * sin), round(mid * cos)
        return cls(length, tuple((round(t * sin) - cy, round(t * cos) - cx) for t in range(length)))

    def __call__(self, x: np.ndarray, out: np.ndarray, scratch: _Scratch) -> None:
        """Blur ``x`` (n, H, W, 3) into ``out`` (n, H, W, 3, uint16); shifts of the flattened padded buffer."""
        n, h, w, c = x.shape
        r = max(max(abs(dy), abs(dx)) for dy, dx in self.offsets)
        shape = (h + 2 * r, w + 2 * r, c)
        flat = _padded(x, r, scratch.get(f"motion_pad{r}", n, shape, np.uint16)).reshape(-1)
        acc = scratch.get(f"motion_acc{r}", n, shape, np.uint16)
        row = shape[1] * c
        base = r * row + r * c  # flat offset of pixel (0, 0)
        m = flat.size - 2 * base
        a = acc.reshape(-1)[:m]
        dy, dx = self.offsets[0]
        np.copyto(a, flat[base + dy * row + dx * c : base + dy * row + dx * c + m])
        for dy, dx in self.offsets[1:]:
            k = base + dy * row + dx * c
            np.add(a, flat[k : k + m], out=a)
        np.add(a, self.length // 2, out=a)
        np.floor_divide(a, self.length, out=a)
        out[...] = acc[:, :h, :w]


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
    lut: np.ndarray | None = None  # static LUT (contrast 1), int16; with contrast, one per frame mean (cached)
    luts: dict[int, np.ndarray] = field(default_factory=dict)  # contrast LUTs by frame mean, int16
    noise: np.ndarray | None = None  # int16 pool for this episode's std
    rects: list[tuple[int, int, int, int, np.ndarray]] = field(default_factory=list)  # y0, y1, x0, x1, filled block
    dead: tuple[np.ndarray, np.ndarray] | None = None  # flat (pixel * 3 + channel) indices, their values

    @property
    def photometric(self) -> bool:
        return self.brightness != 0.0 or self.contrast != 1.0 or self.gamma != 1.0

    @property
    def degrades(self) -> bool:
        return bool(self.blur or self.motion or self.photometric or self.noise is not None or self.rects or self.dead)

    def frame_lut(self, total: int, count: int) -> np.ndarray:
        """The int16 LUT for a frame whose sampled intensities (after blur) sum to ``total`` over ``count``."""
        if self.lut is not None:
            return self.lut
        mean = min(255, total // count)  # == int(mean) of the float mean: exact integer sum, a correct quotient
        lut = self.luts.get(mean)
        if lut is None:
            lut = self.luts[mean] = _contrast_lut(self, mean).astype(np.int16)
        return lut


def _lut(brightness: float, curve: np.ndarray) -> np.ndarray:
    """uint8 -> uint8: ``curve`` (gamma on [0, 1]) plus brightness."""
    return np.clip((curve + brightness) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _contrast_lut(ep: "_Photometric", mean: int) -> np.ndarray:
    """The episode's LUT with contrast around this frame's ``mean`` intensity (after gamma): three small ops on
    arrays prepared at reset."""
    assert ep.scaled is not None and ep.curve is not None
    shift = (1.0 - ep.contrast) * 255.0 * float(ep.curve[mean])
    return np.clip(ep.scaled + shift, 0, 255).astype(np.uint8)


def _groups(eps: Sequence[_Photometric], stage: str) -> dict[object, list[int]]:
    """Images by their kernel for ``stage`` ("blur" / "motion"): one batched pass per kernel."""
    out: dict[object, list[int]] = {}
    for j, ep in enumerate(eps):
        kernel = getattr(ep, stage)
        if kernel is not None:
            out.setdefault(kernel, []).append(j)
    return out


def _filter(eps: Sequence[_Photometric], stage: str, x: np.ndarray, scratch: _Scratch) -> np.ndarray:
    """Blur or motion-blur the images of ``x`` whose episode has one (uint16 out; the others copied)."""
    groups = _groups(eps, stage)
    n = x.shape[0]
    out = scratch.get(stage, n, x.shape[1:], np.uint16)
    done = 0
    for kernel, js in groups.items():
        run = len(js) == js[-1] - js[0] + 1  # consecutive images: slices, no gather
        for a in range(0, len(js), CHUNK):
            part = js[a : a + CHUNK]
            if run:
                kernel(x[part[0] : part[-1] + 1], out[part[0] : part[-1] + 1], scratch)  # type: ignore[operator]
            else:
                res = scratch.get(stage + "_part", len(part), x.shape[1:], np.uint16)
                kernel(x[part], res, scratch)  # type: ignore[operator]
                out[part] = res
        done += len(js)
    if done < n:
        rest = [j for j, ep in enumerate(eps) if getattr(ep, stage) is None]
        out[rest] = x[rest]
    return out


def degrade(
    eps: Sequence[_Photometric], rngs: Sequence[np.random.Generator], src: np.ndarray, scratch: _Scratch
) -> np.ndarray:
    """Image ``j`` of ``src`` (n, H, W, 3 uint8, left untouched) degraded by episode ``eps[j]``, its noise offset
    drawn from ``rngs[j]``: a contiguous (n, H, W, 3) integer array (values 0-255) in ``scratch``.

    One numpy pass per stage for every image (kernels shared by several images run once over all of them), in a
    real camera's order: optics blur, motion blur, exposure LUT, noise, then occluders and dead pixels. A single
    camera's frame is the batch of one, so a vector env's world i equals the single env's image bit for bit."""
    n = src.shape[0]
    x = src
    if not src.flags.c_contiguous:  # strided views make every stage below several times slower
        x = scratch.get("source", n, src.shape[1:], np.uint8)
        copy_channels(x, src)
    if any(ep.blur is not None for ep in eps):
        x = _filter(eps, "blur", x, scratch)
    if any(ep.motion is not None for ep in eps):
        x = _filter(eps, "motion", x, scratch)
    work: np.ndarray | None = None
    if any(ep.photometric for ep in eps):
        work = scratch.get("work", n, src.shape[1:], np.int16)
        flat = x.reshape(n, -1)
        count = -(-flat.shape[1] // 7)
        totals = None
        if any(ep.lut is None and ep.photometric for ep in eps):  # contrast around each frame's mean (every 7th)
            totals = flat[:, ::7].sum(axis=1, dtype=np.int64).tolist()
        index = scratch.get("index", 1, src.shape[1:], np.intp)[0]  # take's own index copy would be a fresh array
        for j, ep in enumerate(eps):
            if ep.photometric:
                np.copyto(index, x[j])
                np.take(ep.frame_lut(totals[j] if totals else 0, count), index, out=work[j], mode="clip")
            else:
                work[j] = x[j]
    if any(ep.noise is not None for ep in eps):
        if work is None:
            work = scratch.get("work", n, src.shape[1:], np.int16)
            np.copyto(work, x, casting="unsafe")
        size = x[0].size
        for j, ep in enumerate(eps):
            if ep.noise is not None:
                offset = int(rngs[j].integers(POOL_OFFSETS))
                np.add(work[j], ep.noise[offset : offset + size].reshape(x.shape[1:]), out=work[j])
        np.maximum(work, 0, out=work)  # np.clip's Python wrapper costs more than the two ufuncs
        np.minimum(work, 255, out=work)
    if work is None:
        work = x
    if any(ep.rects or ep.dead is not None for ep in eps):
        if work is src:  # never write to the rendered frame
            work = scratch.get("work8", n, src.shape[1:], np.uint8)
            np.copyto(work, x)
        for j, ep in enumerate(eps):
            for y0, y1, x0, x1, block in ep.rects:
                work[j, y0:y1, x0:x1] = block
            if ep.dead is not None:
                np.put(work[j], *ep.dead)
    return work


def write(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` as uint8 (values already 0-255), one copy per channel where ``dst``'s channels are strided."""
    if dst.flags.c_contiguous or dst.shape[-1] > 4:
        np.copyto(dst, src, casting="unsafe")
    else:
        for c in range(dst.shape[-1]):
            np.copyto(dst[..., c], src[..., c], casting="unsafe")


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
        self._scratch = _Scratch()  # buffers of the degradation stages (a vector env's batch: world 0's sensor)
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
            ep.blur = _Blur.of(sigma, shape)
        length = int(round(r["motion_blur"].sample(rng)))
        if length > 1:
            ep.motion = _MotionBlur.of(length, rng.uniform(0, math.pi))
        ep.brightness = r["brightness"].sample(rng)
        ep.contrast = r["contrast"].sample(rng)
        ep.gamma = r["gamma"].sample(rng)
        if ep.photometric:
            ep.curve = (np.arange(256, dtype=np.float32) / 255.0) ** np.float32(ep.gamma)
            if ep.contrast == 1.0:
                ep.lut = _lut(ep.brightness, ep.curve).astype(np.int16)
            else:
                ep.scaled = (ep.curve * np.float32(ep.contrast) + np.float32(ep.brightness)) * 255.0 + 0.5
        std = r["noise_std"].sample(rng)
        if std > 0:
            ep.noise = _scaled_pool(self._frame + POOL_OFFSETS, round(std, 3))
        for _ in range(int(r["occlusions"].sample(rng))):
            side = max(1, int(round(r["occlusion_size"].sample(rng) * size)))
            y0, x0 = (int(v) for v in rng.integers(0, max(1, size - side + 1), size=2))
            y1, x1 = min(size, y0 + side), min(size, x0 + side)
            color = rng.integers(0, 256, 3, np.uint8)
            ep.rects.append((y0, y1, x0, x1, np.broadcast_to(color, (y1 - y0, x1 - x0, 3)).copy()))
        count = int(round(r["dead_pixels"].sample(rng) * size * size))
        if count:
            flat = rng.choice(size * size, size=count, replace=False)
            values = np.where(rng.random(count) < 0.5, 0, 255).astype(np.uint8)
            ep.dead = ((flat[:, None] * 3 + np.arange(3)).reshape(-1), np.repeat(values, 3))
        return ep

    def apply(self, camera: int, src: np.ndarray, dst: np.ndarray, image: int = 0) -> None:
        """Write ``src`` (uint8 (H, W, 3), left untouched) degraded into ``dst`` (same shape, may be a view)."""
        write(dst[None], degrade([self._photometric[camera][image]], [self.rng], src[None], self._scratch))


def apply_worlds(sensors: Sequence[SensorModel], camera: int, image: int, src: np.ndarray, dst: np.ndarray) -> None:
    """``sensors[j].apply(camera, src[j], dst[j], image)`` for every j in one batched pass (a vector env's worlds):
    the same images, and the same draws from each sensor's generator, as the per-world calls."""
    eps = [s._photometric[camera][image] for s in sensors]
    rngs = [s.rng for s in sensors]
    scratch = sensors[0]._scratch
    for a in range(0, len(eps), CHUNK):  # a few worlds at a time: every stage's buffers stay in cache
        b = a + CHUNK
        write(dst[a:b], degrade(eps[a:b], rngs[a:b], src[a:b], scratch))
