"""What the ego senses, batched: lidar rays against boxes and curved road edges, nearest-object lists.

Pure geometry on numpy arrays; :class:`~lepton_sim.envs.driving.sim.DrivingSim` assembles the observation.
"""

from __future__ import annotations

import numpy as np


def rays_to_edges(
    lateral: np.ndarray,
    rel_heading: np.ndarray,
    kappa: np.ndarray,
    half_road: np.ndarray,
    ray_angles: np.ndarray,
    max_range: float,
) -> np.ndarray:
    """Distance along each ray to the left or right road edge, ``(N, R)``.

    The road near the ego is taken as a circular arc of the local curvature ``kappa`` (a straight line when 0).
    ``lateral``: the sensor's offset from the centreline; ``rel_heading``: ego heading minus road heading.
    Solves ``kappa t^2 + 2 t (kappa d - 1) sin(phi) + (kappa (d + e) - 2)(d - e) = 0`` for each edge offset e.
    """
    phi = rel_heading[:, None] + ray_angles[None, :]
    sin_phi = np.sin(phi)[:, :, None]  # (N, R, 1)
    d = lateral[:, None, None]
    k = kappa[:, None, None]
    edge = np.stack([half_road, -half_road], axis=-1)[:, None, :]  # (N, 1, 2)
    b = 2.0 * (k * d - 1.0) * sin_phi
    c = (k * (d + edge) - 2.0) * (d - edge)
    disc = b * b - 4.0 * k * c
    with np.errstate(divide="ignore", invalid="ignore"):
        q = -0.5 * (b + np.where(b >= 0.0, 1.0, -1.0) * np.sqrt(np.maximum(disc, 0.0)))
        t1 = q / k
        t2 = c / q
    t1 = np.where((t1 > 0.0) & (disc >= 0.0), t1, np.inf)
    t2 = np.where((t2 > 0.0) & (disc >= 0.0), t2, np.inf)
    return np.minimum(np.minimum(t1, t2).min(axis=2), max_range)


def rays_to_boxes(
    origin_x: np.ndarray,
    origin_y: np.ndarray,
    heading: np.ndarray,
    box_x: np.ndarray,
    box_y: np.ndarray,
    box_cos: np.ndarray,
    box_sin: np.ndarray,
    half_length: np.ndarray,
    half_width: np.ndarray,
    ray_cos: np.ndarray,
    ray_sin: np.ndarray,
) -> np.ndarray:
    """Slab test of R rays against P boxes, one ray origin per box: distances ``(P, R)`` (inf = miss, 0 = inside)."""
    dx = origin_x - box_x
    dy = origin_y - box_y
    ox = (dx * box_cos + dy * box_sin)[:, None]  # ray origin in the box frame
    oy = (dy * box_cos - dx * box_sin)[:, None]
    rel = heading - np.arctan2(box_sin, box_cos)
    c, s = np.cos(rel)[:, None], np.sin(rel)[:, None]
    dir_x = c * ray_cos - s * ray_sin  # ray directions in the box frame (P, R)
    dir_y = s * ray_cos + c * ray_sin
    hl, hw = half_length[:, None], half_width[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_x, inv_y = 1.0 / dir_x, 1.0 / dir_y
        ax, bx = (-hl - ox) * inv_x, (hl - ox) * inv_x
        ay, by = (-hw - oy) * inv_y, (hw - oy) * inv_y
    near = np.maximum(np.fmin(ax, bx), np.fmin(ay, by))
    far = np.minimum(np.fmax(ax, bx), np.fmax(ay, by))
    hit = (near <= far) & (far >= 0.0)
    return np.where(hit, np.maximum(near, 0.0), np.inf)


def boxes_overlap(
    ax: np.ndarray,
    ay: np.ndarray,
    a_cos: np.ndarray,
    a_sin: np.ndarray,
    a_hl: np.ndarray,
    a_hw: np.ndarray,
    bx: np.ndarray,
    by: np.ndarray,
    b_cos: np.ndarray,
    b_sin: np.ndarray,
    b_hl: np.ndarray,
    b_hw: np.ndarray,
) -> np.ndarray:
    """Separating-axis test for pairs of oriented boxes (centres, unit axes, half sizes): True where they touch."""
    tx, ty = bx - ax, by - ay
    c = np.abs(a_cos * b_cos + a_sin * b_sin)  # |cos| and |sin| of the relative angle
    s = np.abs(a_cos * b_sin - a_sin * b_cos)
    sep_a_long = np.abs(tx * a_cos + ty * a_sin) > a_hl + b_hl * c + b_hw * s
    sep_a_lat = np.abs(ty * a_cos - tx * a_sin) > a_hw + b_hl * s + b_hw * c
    sep_b_long = np.abs(tx * b_cos + ty * b_sin) > b_hl + a_hl * c + a_hw * s
    sep_b_lat = np.abs(ty * b_cos - tx * b_sin) > b_hw + a_hl * s + a_hw * c
    return ~(sep_a_long | sep_a_lat | sep_b_long | sep_b_lat)
