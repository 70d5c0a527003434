"""Top-down frames of a SUMO network: lanes from sumolib's geometry, vehicles, and each signal link's colour.

Plain numpy rasterising, no plotting library: the lanes are drawn once into a background image (per network
and size, cached per process), and each frame only copies it and stamps vehicles and signal markers with
vectorised index writes (about a millisecond per frame for the RESCO maps).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

BACKGROUND = np.array([32, 36, 40], np.uint8)
ROAD = np.array([150, 150, 150], np.uint8)
MOVING = np.array([80, 200, 255], np.uint8)
HALTED = np.array([255, 150, 30], np.uint8)
SIGNAL_COLOURS = {
    "G": (0, 230, 0),
    "g": (0, 140, 0),
    "y": (255, 230, 0),
    "Y": (255, 230, 0),
    "r": (230, 0, 0),
    "R": (230, 0, 0),
    "s": (180, 0, 120),
    "u": (255, 128, 0),
    "o": (200, 200, 0),
    "O": (90, 90, 90),
}
MARGIN = 8  # pixels


class NetworkRenderer:
    """Renders snapshots ``{"xy": (n, 2) m, "speed": (n,) m/s, "states": {tls: "GrGr..."}}`` to HxWx3 uint8."""

    def __init__(self, net_path: str, size: int = 480) -> None:
        import sumolib

        net = sumolib.net.readNet(net_path, withInternal=False)
        xmin, ymin, xmax, ymax = net.getBoundary()
        span = max(xmax - xmin, ymax - ymin, 1.0)
        self.scale = (size - 2 * MARGIN) / span  # pixels per metre
        self.origin = np.array([xmin, ymin])
        self.width = int(np.ceil((xmax - xmin) * self.scale)) + 2 * MARGIN
        self.height = int(np.ceil((ymax - ymin) * self.scale)) + 2 * MARGIN
        self.background = np.empty((self.height, self.width, 3), np.uint8)
        self.background[:] = BACKGROUND
        for edge in net.getEdges():
            for lane in edge.getLanes():
                half = max(0.5, 0.5 * lane.getWidth() * self.scale)
                _stamp_polyline(self.background, self.to_pixels(np.array(lane.getShape(), float)), half, ROAD)
        # one marker per controlled link: a little way from the stop line towards the link's destination
        self.links: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tls in net.getTrafficLights():
            index, points = [], []
            for in_lane, out_lane, link_no in tls.getConnections():
                end = np.array(in_lane.getShape()[-1], float)
                towards = np.array(out_lane.getShape()[0], float)
                index.append(link_no)
                points.append(end + 0.25 * (towards - end))
            if index:
                self.links[tls.getID()] = (np.array(index), self.to_pixels(np.array(points)))
        self.vehicle_radius = max(1, int(round(1.25 * self.scale)))
        self.marker_radius = max(1, int(round(1.0 * self.scale)))

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def for_net(net_path: str, size: int) -> "NetworkRenderer":
        """One renderer per (network, size) and process: reading a big net with sumolib takes a while."""
        return NetworkRenderer(net_path, size)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Metres (SUMO network coordinates) -> float pixel (x, y), y pointing down."""
        p = (np.asarray(xy, float).reshape(-1, 2) - self.origin) * self.scale + MARGIN
        p[:, 1] = self.height - 1 - p[:, 1]
        return p

    def draw(self, snapshot: dict[str, Any]) -> np.ndarray:
        frame = self.background.copy()
        for tls, state in snapshot.get("states", {}).items():
            if tls not in self.links:
                continue
            index, pixels = self.links[tls]
            chars = np.array([state[k] if k < len(state) else "O" for k in index])
            for char in np.unique(chars):
                colour = np.array(SIGNAL_COLOURS.get(str(char), (90, 90, 90)), np.uint8)
                _stamp_points(frame, pixels[chars == char], self.marker_radius, colour)
        xy = np.asarray(snapshot.get("xy", np.zeros((0, 2))), float).reshape(-1, 2)
        if len(xy):
            pixels = self.to_pixels(xy)
            halted = np.asarray(snapshot.get("speed", np.zeros(len(xy)))) < 0.1
            _stamp_points(frame, pixels[~halted], self.vehicle_radius, MOVING)
            _stamp_points(frame, pixels[halted], self.vehicle_radius, HALTED)
        return frame


def _stamp_points(img: np.ndarray, pixels: np.ndarray, radius: float, colour: np.ndarray) -> None:
    """Filled squares of half-size ``radius`` (pixels) centred on each point, clipped to the image."""
    if len(pixels) == 0:
        return
    r = int(np.ceil(radius))
    offsets = np.arange(-r, r + 1)
    centres = np.rint(pixels).astype(int)
    xs = (centres[:, 0:1, None] + offsets[None, None, :]).repeat(len(offsets), axis=1)
    ys = (centres[:, 1:2, None] + offsets[None, :, None]).repeat(len(offsets), axis=2)
    xs, ys = xs.ravel(), ys.ravel()
    keep = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    img[ys[keep], xs[keep]] = colour


def _stamp_polyline(img: np.ndarray, points: np.ndarray, half_width: float, colour: np.ndarray) -> None:
    """A thick polyline: points sampled every half pixel along each segment, stamped as squares."""
    if len(points) < 2:
        _stamp_points(img, points, half_width, colour)
        return
    a, b = points[:-1], points[1:]
    lengths = np.linalg.norm(b - a, axis=1)
    counts = np.maximum(2, np.ceil(lengths / 0.5).astype(int) + 1)
    seg = np.repeat(np.arange(len(a)), counts)
    t = np.concatenate([np.linspace(0.0, 1.0, c) for c in counts])
    samples = a[seg] + (b - a)[seg] * t[:, None]
    _stamp_points(img, samples, max(0.0, half_width - 0.5), colour)
