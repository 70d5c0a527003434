"""Pictures of driving worlds: a numpy top-down rasteriser (video frames) and matplotlib trajectory plots.

The rasteriser splats road samples and fills boxes with numpy only (a few ms per 400 x 400 frame); matplotlib
is imported only by :func:`plot_trajectory`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from lepton_sim.envs.driving.dynamics import CAR_WIDTH
from lepton_sim.envs.driving.road import DS
from lepton_sim.envs.driving.world import WorldLayout, find_layout, lane_center

if TYPE_CHECKING:
    from lepton_sim.envs.driving.sim import DrivingSim

GRASS = (70, 120, 60)
ROAD = (95, 95, 100)
MARKING = (235, 235, 235)
ROUTE = (90, 170, 255)
GOAL = (60, 220, 90)
EGO = (220, 40, 40)
EGO_FRONT = (255, 210, 210)
VEHICLE = (240, 200, 50)
PARKED = (150, 160, 210)
CONE = (255, 140, 0)


class _Canvas:
    """World -> pixel transform centred on a point, north up."""

    def __init__(self, size: int, scale: float, cx: float, cy: float, color: tuple[int, int, int]) -> None:
        self.img = np.empty((size, size, 3), dtype=np.uint8)
        self.img[:] = color
        self.size, self.scale, self.cx, self.cy = size, scale, cx, cy

    def pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = np.floor((x - self.cx) * self.scale + 0.5 * self.size).astype(np.int64)
        row = np.floor(0.5 * self.size - (y - self.cy) * self.scale).astype(np.int64)
        return row, col

    def splat(self, x: np.ndarray, y: np.ndarray, color: tuple[int, int, int]) -> None:
        row, col = self.pixels(x.ravel(), y.ravel())
        ok = (row >= 0) & (row < self.size) & (col >= 0) & (col < self.size)
        self.img[row[ok], col[ok]] = color

    def box(self, x: float, y: float, c: float, s: float, hl: float, hw: float, color: tuple[int, int, int]) -> None:
        """Fill an oriented rectangle (centre, heading cos/sin, half sizes)."""
        r = np.hypot(hl, hw)
        r0, c0 = self.pixels(np.array([x - r]), np.array([y + r]))
        r1, c1 = self.pixels(np.array([x + r]), np.array([y - r]))
        r0, r1 = max(int(r0[0]), 0), min(int(r1[0]) + 1, self.size)
        c0, c1 = max(int(c0[0]), 0), min(int(c1[0]) + 1, self.size)
        if r0 >= r1 or c0 >= c1:
            return
        rows, cols = np.mgrid[r0:r1, c0:c1]
        px = (cols + 0.5 - 0.5 * self.size) / self.scale + self.cx - x
        py = (0.5 * self.size - rows - 0.5) / self.scale + self.cy - y
        inside = (np.abs(px * c + py * s) <= hl) & (np.abs(py * c - px * s) <= hw)
        self.img[rows[inside], cols[inside]] = color


def render_world(sim: "DrivingSim", n: int) -> np.ndarray:
    """Top-down RGB image (``render_size`` square, ``render_scale`` px/m) of world ``n``, centred on the ego."""
    p = sim.params
    size, scale = p.render_size, p.render_scale
    ex, ey, ec, es = (float(a[n]) for a in sim.ego_box())
    canvas = _Canvas(size, scale, ex, ey, GRASS)
    road = sim.road
    half = float(sim.half_road[n])
    lanes = int(sim.lanes[n])
    reach = 0.75 * size / scale + half  # metres of road that can be in view
    step = 0.7 / scale  # sample spacing: below a pixel, so splats leave no holes
    s_along = np.arange(max(float(sim.s[n]) - reach, 0.0), float(sim.s[n]) + reach, step)
    rows = np.full(s_along.shape, road.offset[n])
    across = np.arange(-half, half + step, step)
    x, y, c, s, _ = road.to_world(s_along, np.zeros_like(s_along), rows)
    canvas.splat(x[:, None] - s[:, None] * across, y[:, None] + c[:, None] * across, ROAD)
    thick = np.arange(0.0, 0.15 + step, step)
    for k in range(lanes + 1):  # lane lines: solid edges, dashed between lanes
        d = -half + k * p.lane_width
        keep = np.ones_like(s_along, dtype=bool) if k in (0, lanes) else (np.mod(s_along, 6.0) < 3.0)
        for t in thick:
            canvas.splat(x[keep] - s[keep] * (d + t - 0.075), y[keep] + c[keep] * (d + t - 0.075), MARKING)
    route = (s_along >= float(sim.s[n])) & (s_along <= float(sim.s_goal[n])) & (np.mod(s_along, 2.0) < 0.4)
    rd = float(sim.route_d[n])
    canvas.splat(x[route] - s[route] * rd, y[route] + c[route] * rd, ROUTE)
    goal = np.abs(s_along - float(sim.s_goal[n])) < 0.5
    if goal.any():
        canvas.splat(x[goal][:, None] - s[goal][:, None] * across, y[goal][:, None] + c[goal][:, None] * across, GOAL)
    layout = sim.layout(n)
    kinds = None if layout is None else layout.obs_kind
    v = sim.num_vehicles
    for k in range(sim.num_objects):
        ox, oy = float(sim.obj_x[n, k]), float(sim.obj_y[n, k])
        if abs(ox - ex) > reach or abs(oy - ey) > reach:
            continue
        if k < v:
            color = VEHICLE
        else:
            color = CONE if kinds is not None and kinds[k - v] == 2 else PARKED
        canvas.box(
            ox,
            oy,
            float(sim.obj_cos[n, k]),
            float(sim.obj_sin[n, k]),
            float(sim.obj_hl[n, k]),
            float(sim.obj_hw[n, k]),
            color,
        )
    canvas.box(ex, ey, ec, es, sim.ego_half_length, 0.5 * CAR_WIDTH, EGO)
    front = sim.ego_half_length - 0.6
    canvas.box(ex + front * ec, ey + front * es, ec, es, 0.4, 0.5 * CAR_WIDTH - 0.2, EGO_FRONT)
    return canvas.img


def plot_trajectory(ax: Any, infos: Sequence[dict[str, Any]], sim: "DrivingSim") -> None:
    """Road edges, lane lines, obstacles, route and goal of the episode's world, and the ego's path."""
    if not infos:
        return
    layout = find_layout(int(infos[0].get("world_id", -1))) or sim.layout(0)
    xs = np.array([float(i["x"]) for i in infos])
    ys = np.array([float(i["y"]) for i in infos])
    if layout is not None:
        _draw_road(ax, layout)
    ax.plot(xs, ys, "-", color="tab:red", lw=1.8, label="ego path")
    ax.plot(xs[:1], ys[:1], "o", color="tab:red", ms=5, label="start")
    last = infos[-1]
    marker = "x" if last.get("collision") or last.get("off_road") else ("*" if last.get("is_success") else "s")
    ending = {"x": "collision or off road", "*": "goal reached", "s": "episode limit"}[marker]
    ax.plot(xs[-1:], ys[-1:], marker, color="black", ms=9, label=f"end: {ending}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def _draw_road(ax: Any, w: WorldLayout) -> None:
    lane_width = w.lane_width
    i0 = max(int((w.s_start - 20.0) / DS), 0)
    i1 = min(int((w.s_goal + 20.0) / DS) + 1, len(w.x))
    x, y, c, s = w.x[i0:i1], w.y[i0:i1], np.cos(w.heading[i0:i1]), np.sin(w.heading[i0:i1])
    half = 0.5 * w.lanes * lane_width
    ax.fill(
        np.concatenate([x - s * half, (x + s * half)[::-1]]),
        np.concatenate([y + c * half, (y - c * half)[::-1]]),
        color="0.85",
        zorder=0,
        label="road",
    )
    for k in range(w.lanes + 1):
        d = -half + k * lane_width
        style = "-" if k in (0, w.lanes) else "--"
        ax.plot(x - s * d, y + c * d, style, color="0.4", lw=0.8, zorder=1)
    rd = float(lane_center(w.ego_lane, w.lanes, lane_width))
    ax.plot(x - s * rd, y + c * rd, ":", color="tab:blue", lw=1.0, label="route", zorder=1)
    g = min(int(w.s_goal / DS), len(w.x) - 1)
    gc, gs = np.cos(w.heading[g]), np.sin(w.heading[g])
    ax.plot(
        [w.x[g] + gs * half, w.x[g] - gs * half],
        [w.y[g] - gc * half, w.y[g] + gc * half],
        "-",
        color="tab:green",
        lw=3,
        label="goal",
        zorder=2,
    )
    for k in np.flatnonzero(w.obs_kind):
        i = min(max(int(w.obs_s[k] / DS), 0), len(w.x) - 1)
        u = w.obs_s[k] - i * DS
        hc, hs = np.cos(w.heading[i]), np.sin(w.heading[i])
        ox = w.x[i] + u * hc - w.obs_d[k] * hs
        oy = w.y[i] + u * hs + w.obs_d[k] * hc
        yaw = w.heading[i] + w.obs_yaw[k]
        bc, bs = np.cos(yaw), np.sin(yaw)
        hl, hw = w.obs_half_length[k], w.obs_half_width[k]
        corners = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
        px = ox + corners[:, 0] * bc - corners[:, 1] * bs
        py = oy + corners[:, 0] * bs + corners[:, 1] * bc
        cone = w.obs_kind[k] == 2
        ax.fill(px, py, color="tab:orange" if cone else "slategray", zorder=3, label="cone" if cone else "parked car")
