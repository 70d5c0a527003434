"""One rollout video frame: the scene (``render()``), what the agent saw beside it, and a text overlay.

Why here and not in the envs: every domain's observation image follows one channel layout (the camera contract:
per camera RGB (3) or a semantic grid (one 0/255 channel per class), then depth (1) and segmentation ids (1) if
asked for), so one module turns any of them into views a person can read: RGB as is, semantic grids and
segmentation ids coloured, depth grey. Each view is enlarged nearest-neighbour (pixels stay pixels) to the
scene's height. Text is drawn with Pillow's ImageDraw and its built-in font (no font files to ship).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

# distinct colours for semantic classes and segmentation ids (matplotlib's tab10, then a few more)
PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (255, 255, 255),
        (255, 215, 0),
    ],
    np.uint8,
)
BACKGROUND = np.array((24, 24, 24), np.uint8)  # a semantic pixel of no class, segmentation id 0


@dataclass(frozen=True)
class ChannelView:
    """Channels ``start:stop`` of an observation image, shown as one view of ``kind``: ``rgb`` (3 channels),
    ``semantic`` (one 0/255 channel per class), ``depth`` or ``gray`` (1, intensity) or ``segmentation`` (1, ids)."""

    label: str
    kind: str
    start: int
    stop: int


def camera_layout(
    cameras: Sequence[tuple[str, int, bool]], depth: bool, segmentation: bool, channels: int
) -> list[ChannelView]:
    """The views of an image of ``channels`` channels made from ``cameras`` as (name, channels, semantic): a
    semantic grid is one view, an RGB camera one view per RGB triple it stacks (a traffic network: one per
    signal); each camera's depth and segmentation channels follow it when asked for. A layout that does not add
    up to ``channels`` (an image made some other way) falls back to :func:`plain_layout`."""
    views: list[ChannelView] = []
    at = 0
    for name, width, semantic in cameras:
        if semantic:
            views.append(ChannelView(name, "semantic", at, at + width))
        else:
            stacked = width // 3
            views += [
                ChannelView(name if stacked == 1 else f"{name} {k + 1}", "rgb", at + 3 * k, at + 3 * k + 3)
                for k in range(stacked)
            ]
        at += width
        for wanted, kind in ((depth, "depth"), (segmentation, "segmentation")):
            if wanted:
                views.append(ChannelView(f"{name} {kind}", kind, at, at + 1))
                at += 1
    return views if views and at == channels else plain_layout(channels)


def plain_layout(channels: int) -> list[ChannelView]:
    """Three channels at a time as RGB, what is left one grey view per channel."""
    rgb = channels // 3 if channels % 3 == 0 else 0
    views = [ChannelView(f"channels {3 * k}-{3 * k + 2}", "rgb", 3 * k, 3 * k + 3) for k in range(rgb)]
    views += [ChannelView(f"channel {c}", "gray", c, c + 1) for c in range(3 * rgb, channels)]
    return views


def channels_last(image: np.ndarray, order: str) -> np.ndarray:
    """(H, W, C) from an observation image in ``order`` ("first": (C, H, W)); a 2-D image gets one channel."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image[:, :, None]
    return np.moveaxis(image, 0, -1) if order == "first" else image


def view_rgb(image: np.ndarray, view: ChannelView) -> np.ndarray:
    """The view's channels of an (H, W, C) uint8 image as an (H, W, 3) uint8 picture."""
    part = image[:, :, view.start : view.stop]
    if view.kind == "rgb":
        return np.ascontiguousarray(part, np.uint8)
    if view.kind == "semantic":  # later classes drawn over earlier ones
        out = np.broadcast_to(BACKGROUND, (*part.shape[:2], 3)).copy()
        for c in range(part.shape[2]):
            out[part[:, :, c] > 127] = PALETTE[c % len(PALETTE)]
        return out
    if view.kind == "segmentation":
        ids = part[:, :, 0].astype(np.int64)
        out = PALETTE[(ids - 1) % len(PALETTE)]
        out[ids == 0] = BACKGROUND
        return out
    return np.repeat(part[:, :, :1].astype(np.uint8), 3, axis=2)  # depth, gray


def observation_views(image: np.ndarray, layout: Sequence[ChannelView]) -> list[np.ndarray]:
    """Every view of an (H, W, C) observation image, as RGB pictures."""
    return [view_rgb(image, view) for view in layout]


def enlarge(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` scaled nearest-neighbour to ``height`` rows, its aspect ratio kept (an integer factor repeats
    each pixel exactly that many times in both directions)."""
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    rows = np.arange(height) * h // height
    cols = np.arange(width) * w // width
    return image[rows[:, None], cols[None, :]]


GUTTER = 2  # pixels of grey between the views of a multi-view panel


def views_panel(views: Sequence[np.ndarray], height: int) -> np.ndarray | None:
    """The views side by side at ``height`` (one or two), or row by row in a grid of up to three rows (more),
    each enlarged to its row's height, with a thin grey gutter between views; None without views."""
    if not views:
        return None
    if len(views) == 1:
        return enlarge(views[0], height)
    rows = 1 if len(views) <= 2 else min(3, math.ceil(len(views) / 3))
    cols = math.ceil(len(views) / rows)
    cell = (height - GUTTER * (rows - 1)) // rows
    cells = [enlarge(v, cell) for v in views]
    widths = [max(x.shape[1] for x in cells[c::cols]) for c in range(cols)]
    panel = np.full((height, sum(widths) + GUTTER * cols, 3), 96, np.uint8)  # a gutter before the first column
    for k, x in enumerate(cells):
        r, c = divmod(k, cols)
        top, left = r * (cell + GUTTER), GUTTER * (c + 1) + sum(widths[:c])
        panel[top : top + x.shape[0], left : left + x.shape[1]] = x
    return panel


def compose(scene: np.ndarray, views: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The scene on the left, the enlarged views to its right; padded black to even sides (H.264 needs them)."""
    scene = np.asarray(scene, np.uint8)[:, :, :3]
    panel = views_panel(views, scene.shape[0])
    frame = scene if panel is None else np.concatenate([scene, panel], axis=1)
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
    return np.ascontiguousarray(frame)


def format_value(value: Any, unit: str = "") -> str:
    """An info value for the overlay: numbers to three significant digits, arrays element by element."""
    if isinstance(value, (bool, np.bool_)):
        text = "yes" if value else "no"
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    elif isinstance(value, (float, np.floating)):
        text = "n/a" if math.isnan(value) else f"{float(value):.3g}"
    elif isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        items = list(np.asarray(value).reshape(-1))
        text = " ".join(format_value(v) for v in items[:12]) + (" ..." if len(items) > 12 else "")
    else:
        text = str(value)
    return f"{text} {unit}" if unit and text != "n/a" else text


def overlay_lines(
    time: float,
    step: int,
    reward: float,
    episode_return: float,
    info: Mapping[str, Any],
    keys: Mapping[str, str],
    episode: str = "",
) -> list[str]:
    """The overlay's text: simulated time and step, the step's reward and the return so far, then each of the
    domain's ``keys`` (info key -> unit) present in ``info``."""
    clock = f"t {time:.2f} s" if time < 60 else f"t {time:.1f} s ({int(time // 60)}:{int(time % 60):02d})"
    lines = [f"{clock}   step {step}" + (f"   episode {episode}" if episode else "")]
    lines.append(f"reward {reward:+.3f}   return {episode_return:+.2f}")
    lines += [f"{key.replace('_', ' ')} {format_value(info[key], unit)}" for key, unit in keys.items() if key in info]
    return lines


def draw_overlay(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``lines`` in white on a dark translucent box in the top-left corner of ``frame`` (a new array; drawn on
    the scene before :func:`compose`, so the agent's views stay as it saw them); the font size follows the
    frame's height."""
    from PIL import Image, ImageDraw, ImageFont

    height = frame.shape[0]
    size = max(10, height // 28)
    try:
        font: Any = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    image = Image.fromarray(np.ascontiguousarray(frame[:, :, :3], np.uint8)).convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    text = "\n".join(lines)
    pad = max(3, size // 3)
    _, _, right, bottom = draw.multiline_textbbox((pad, pad), text, font=font, spacing=2)
    draw.rectangle((0, 0, min(right + pad, frame.shape[1] - 1), min(bottom + pad, height - 1)), fill=(0, 0, 0, 150))
    draw.multiline_text((pad, pad), text, font=font, fill=(255, 255, 255, 255), spacing=2)
    return np.asarray(Image.alpha_composite(image, layer).convert("RGB"))
