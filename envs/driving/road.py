"""Road geometry: a procedurally curved centreline sampled every metre, and batched Frenet <-> world maps.

The road of world ``n`` is the centreline ``(cx[n], cy[n])`` with heading ``th[n]`` and curvature ``kappa[n]``
at arc length ``s = i * DS``: a polyline of 1 m chords, ``c(i + 1) = c(i) + DS t(i)`` with the unit tangent
``t(i)`` turning by ``kappa(i) DS`` from one sample to the next. A point at arc length ``s`` and lateral offset
``d`` (positive to the left) is ``c(i) + (s - i DS) t(i) + d n(i)`` with ``i = floor(s / DS)`` (clipped to the
road), which also extends the road straight before its start and past its end, so any ``s`` is valid.
Lanes are numbered from the right (lane 0) to the left; lane ``k`` of ``L`` has its centre at
``d = (k - (L - 1) / 2) * lane_width``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class RangeLike(Protocol):
    """A Range / IntRange from the params: something to sample per episode."""

    def sample(self, rng: np.random.Generator) -> float: ...


DS = 1.0  # m between centreline samples
MAX_HEADING = np.pi / 2  # the road never turns back on itself: heading stays within +-90 deg of the start
SMOOTHING = 10.0  # m: curvature is averaged over this length, so curves begin and end gradually


def curves_needed(num_points: int, curve_length: RangeLike) -> int:
    """Number of curves that always covers ``num_points`` samples (each curve is at least the shortest)."""
    return int(num_points * DS / max(curve_length.low, DS)) + 2


def centerlines(
    u_length: np.ndarray,
    u_curvature: np.ndarray,
    u_sign: np.ndarray,
    num_points: int,
    curvature: RangeLike,
    curve_length: RangeLike,
) -> np.ndarray:
    """Roads from uniform draws ``(k, C)`` (one row per world) -> table rows ``(k, P, 6)``.

    Each curve has a length from ``curve_length``, a |curvature| from ``curvature`` and a random sign. Where the
    heading would turn more than 90 degrees from the start, it is reflected back (the curvature flips sign), so a
    road never turns back on itself; the curvature is then averaged over 10 m so curves begin gradually.
    Columns: x, y, cos(heading), sin(heading), heading, curvature; the road starts at the origin heading +x.
    Row-independent arithmetic: a world comes out the same alone or in a batch.
    """
    k, c = u_length.shape
    lengths = np.maximum(
        np.floor((curve_length.low + u_length * (curve_length.high - curve_length.low)) / DS + 0.5), 1.0
    )
    values = (curvature.low + u_curvature * (curvature.high - curvature.low)) * np.where(u_sign < 0.5, 1.0, -1.0)
    # reflect the unbounded heading at the curves' ends into [-MAX_HEADING, MAX_HEADING] (a triangle wave); each
    # curve then turns by the difference of its folded end headings, at constant curvature, so the heading stays
    # within the bounds all along it (a curve that would cross a bound turns less, or back)
    unbounded = np.cumsum(values * lengths * DS, axis=1)
    phase = (unbounded + MAX_HEADING) * (0.25 / MAX_HEADING)
    phase -= np.floor(phase)
    folded = MAX_HEADING - np.abs(4.0 * MAX_HEADING * phase - 2.0 * MAX_HEADING)
    turns = np.diff(folded, axis=1, prepend=0.0)
    values = turns / (lengths * DS)
    ends = np.minimum(np.cumsum(lengths, axis=1), num_points).astype(np.intp)  # first sample after each curve
    counts = np.diff(ends, axis=1, prepend=0)  # samples of each curve on the road (every row sums to P)
    raw = np.repeat(values.ravel(), counts.ravel()).reshape(k, num_points)
    w = int(round(SMOOTHING / DS))
    padded = np.concatenate([np.repeat(raw[:, :1], w // 2 + 1, axis=1), raw, np.repeat(raw[:, -1:], w, axis=1)], axis=1)
    csum = np.cumsum(padded, axis=1)
    kappa = (csum[:, w : w + num_points] - csum[:, :num_points]) * (1.0 / w)
    heading = np.zeros((k, num_points))
    np.cumsum(kappa[:, :-1], axis=1, out=heading[:, 1:])  # DS = 1
    cos, sin = np.cos(heading), np.sin(heading)
    # the centreline is the polyline of 1 m chords along each sample's heading: c(i + 1) = c(i) + DS t(i)
    x, y = np.zeros((k, num_points)), np.zeros((k, num_points))
    np.cumsum(cos[:, :-1], axis=1, out=x[:, 1:])
    np.cumsum(sin[:, :-1], axis=1, out=y[:, 1:])
    return np.stack([x, y, cos, sin, heading, kappa], axis=-1)


class RoadArrays:
    """Centrelines of N worlds in one ``(N, P, 6)`` table (x, y, cos, sin, heading, curvature per sample).

    One sample's six values share a cache line, so a gather of many scattered samples costs one memory access
    each; ``cx``, ``cy``, ``th``, ``kappa`` are ``(N, P)`` views for drawing.
    """

    def __init__(self, num_worlds: int, num_points: int) -> None:
        assert DS == 1.0, "indexing assumes one sample per metre"
        self.num_points = num_points
        self.table = np.zeros((num_worlds, num_points, 6))
        self.table[:, :, 2] = 1.0
        self.flat = self.table.reshape(-1, 6)
        self.cx, self.cy, self.th, self.kappa = (self.table[:, :, k] for k in (0, 1, 4, 5))
        self.offset = np.arange(num_worlds) * num_points  # row start in the flat table

    def set_worlds(self, rows: np.ndarray, table: np.ndarray) -> None:
        """Store centrelines ``(len(rows), P, 6)`` (from :func:`centerlines`) for the given worlds."""
        self.table[rows] = table

    def index(self, s: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat sample index at or before ``s`` (clipped to the road) and the remaining distance ``s - i DS``.

        ``rows`` holds each element's world offset (``self.offset`` broadcast to ``s``'s shape).
        """
        i = np.minimum(np.maximum(np.floor(s), 0.0), self.num_points - 1.0)
        return i.astype(np.intp) + rows, s - i

    def to_world(
        self, s: np.ndarray, d: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Frenet ``(s, d)`` -> world ``(x, y)`` plus the road's heading ``(cos, sin, kappa)`` there."""
        flat, u = self.index(s, rows)
        g = np.take(self.flat, flat, axis=0)
        c, sn = g[..., 2], g[..., 3]
        return g[..., 0] + u * c - d * sn, g[..., 1] + u * sn + d * c, c, sn, g[..., 5]

    def project(
        self, x: np.ndarray, y: np.ndarray, s_guess: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """World ``(x, y)`` near arc length ``s_guess`` -> ``(s, d, road heading, kappa)``.

        Two Newton steps along the local tangent: enough while the point moves < 5 m between calls.
        """
        s = s_guess
        for _ in range(2):
            i = np.minimum(np.maximum(np.floor(s), 0.0), self.num_points - 1.0)
            g = np.take(self.flat, i.astype(np.intp) + rows, axis=0)
            c, sn = g[..., 2], g[..., 3]
            dx = x - g[..., 0]
            dy = y - g[..., 1]
            u = dx * c + dy * sn
            s = i + u
        return s, dy * c - dx * sn, g[..., 4] + u * g[..., 5], g[..., 5]
