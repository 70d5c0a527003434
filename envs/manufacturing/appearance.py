"""What a part looks like in the visual-inspection tasks: a base colour plus patches drawn on its top face.

Why a catalogue of quantised looks: the class of a part (good / defective, or a waste material) must be visible
only in camera images, never in the state observation, and varied enough that a perception model has to learn
the defect, not one exact colour; yet PyBullet never frees visual shapes, so every look is rounded onto a small
grid (3 shades, patch sizes and contrasts in tenths, 3 x 3 patch positions) and each (size, look) is built once.

Looks are sampled from a generator of their own (seeded from the env's stream once per reset), so what a part
looks like never changes the episode's physics: the same seed gives the same parts, arrivals and motions whatever
the appearance parameters (the suites' "unseen appearance" rows replay the held-out episodes exactly).

Visual inspection (class 0 good, 1 defective; the base colour is the same for both):

| defect kind      | drawn as                                                                                   |
|------------------|--------------------------------------------------------------------------------------------|
| ``scratch``      | a long thin dark stroke across the face (width a quarter of its length, at least 15 %)     |
| ``dent``         | a square in shadow (the base darkened) with a bright rim along one edge (the lit slope)    |
| ``discolouration`` | a square of rust mixed into the base colour                                              |

``defect_size`` is the patch's side (scratch: length) as a fraction of the face, ``defect_contrast`` how far its
colour is from the base (0 = invisible, 1 = full); the patch sits at one of 3 x 3 positions on the face.

Waste sorting (4 materials, 3 looks each; ``material_variants`` picks which looks occur, so a suite can test
looks never seen in training):

| class | material | looks (variant 0, 1, 2)                  | pattern on top                     |
|-------|----------|------------------------------------------|------------------------------------|
| 0     | plastic  | red, blue, orange                        | a white label band                 |
| 1     | paper    | beige, white, brown kraft                | two grey lines of print            |
| 2     | glass    | pale green, pale cyan, amber             | a bright glint along one edge      |
| 3     | metal    | steel grey, dark steel, copper           | a bright brushed streak            |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from lepton_sim.envs.manufacturing.inspection_params import DEFECT_KINDS, MATERIALS
from lepton_sim.envs.manufacturing.scene import PartFactory

__all__ = ["DEFECT_KINDS", "MATERIALS", "Look", "Patch", "StyledPartFactory", "inspection_look", "material_look"]
Rgb = tuple[float, float, float]
PART_COLOUR: Rgb = (0.70, 0.68, 0.62)  # machined, lightly anodised aluminium
RUST: Rgb = (0.55, 0.27, 0.08)
SHADES = (-1, 0, 1)  # base colour x (1 + shade x colour_jitter)
MATERIAL_LOOKS: tuple[tuple[Rgb, Rgb, Rgb], ...] = (
    ((0.85, 0.15, 0.12), (0.15, 0.35, 0.90), (0.95, 0.50, 0.10)),  # plastic
    ((0.86, 0.80, 0.66), (0.93, 0.93, 0.90), (0.62, 0.47, 0.32)),  # paper
    ((0.55, 0.80, 0.60), (0.60, 0.80, 0.86), (0.72, 0.52, 0.20)),  # glass
    ((0.55, 0.56, 0.58), (0.36, 0.38, 0.42), (0.72, 0.45, 0.30)),  # metal
)
WHITE: Rgb = (0.95, 0.95, 0.95)
PRINT: Rgb = (0.40, 0.40, 0.42)
GLINT: Rgb = (0.97, 0.99, 0.99)
STREAK: Rgb = (0.88, 0.89, 0.91)


@dataclass(frozen=True)
class Patch:
    """A thin box on the top face: centre and half extents as fractions of the face's half side, colour."""

    centre: tuple[float, float]
    half: tuple[float, float]
    rgb: Rgb


@dataclass(frozen=True)
class Look:
    """A part's appearance (hashable: it keys the visual-shape cache)."""

    base: Rgb
    patches: tuple[Patch, ...] = ()


def _q(value: float, step: float = 0.1) -> float:
    return round(round(value / step) * step, 6)


def _rgb(values: np.ndarray | tuple[float, ...]) -> Rgb:
    r, g, b = (round(float(np.clip(v, 0.0, 1.0)), 3) for v in values)
    return (r, g, b)


def _shade(rgb: Rgb, shade: int, jitter: float) -> Rgb:
    return _rgb(np.asarray(rgb) * (1.0 + shade * _q(jitter, 0.01)))


def _slot(rng: np.random.Generator, extent: float) -> float:
    """One of three positions (-, centre, +) along an axis for a patch of half extent ``extent`` (face units)."""
    room = max(0.0, 1.0 - extent)
    return _q(float(rng.integers(-1, 2)) * room * 0.8, 0.05)


def defect_look(
    rng: np.random.Generator, kinds: list[str], size: float, contrast: float, base: Rgb = PART_COLOUR
) -> Look:
    """A defective part: ``base`` with one defect of a kind drawn from ``kinds``."""
    kind = kinds[int(rng.integers(len(kinds)))]
    size, contrast = _q(size), _q(contrast)
    colour = np.asarray(base)
    if kind == "scratch":
        length, width = size, max(0.15, 0.25 * size)
        half = (length, width) if rng.integers(2) else (width, length)
        centre = (_slot(rng, half[0]), _slot(rng, half[1]))
        return Look(base, (Patch(centre, half, _rgb(colour * (1.0 - 0.75 * contrast))),))
    if kind == "dent":
        half = (size * 0.8, size * 0.8)
        centre = (_slot(rng, half[0]), _slot(rng, half[1]))
        shadow = Patch(centre, half, _rgb(colour * (1.0 - 0.5 * contrast)))
        rim = Patch((centre[0], _q(centre[1] - half[1], 0.05)), (half[0], 0.12), _rgb(colour * (1.0 + 0.4 * contrast)))
        return Look(base, (shadow, rim))
    half = (size, size)
    centre = (_slot(rng, half[0]), _slot(rng, half[1]))
    return Look(base, (Patch(centre, half, _rgb(colour + contrast * (np.asarray(RUST) - colour))),))


def inspection_look(
    rng: np.random.Generator,
    part_class: int,
    kinds: list[str],
    size: float,
    contrast: float,
    colour_jitter: float,
) -> Look:
    """Class 0: a plain part; class 1: a part with a defect. Both share the jittered base colour."""
    base = _shade(PART_COLOUR, int(rng.choice(SHADES)), colour_jitter)
    return defect_look(rng, kinds, size, contrast, base) if part_class else Look(base)


def material_look(rng: np.random.Generator, material: int, variants: list[int], colour_jitter: float) -> Look:
    """A piece of waste of class ``material`` in one of its looks (``variants``), with its material's pattern."""
    variant = variants[int(rng.integers(len(variants)))]
    base = _shade(MATERIAL_LOOKS[material][variant], int(rng.choice(SHADES)), colour_jitter)
    along = bool(rng.integers(2))

    def bar(offset: float, width: float, length: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
        return ((0.0, offset), (length, width)) if along else ((offset, 0.0), (width, length))

    if material == 0:  # plastic: a label band
        patches = [Patch(*bar(0.0, 0.35), WHITE)]
    elif material == 1:  # paper: lines of print
        patches = [Patch(*bar(-0.35, 0.12, 0.8), PRINT), Patch(*bar(0.3, 0.12, 0.8), PRINT)]
    elif material == 2:  # glass: a glint along an edge
        patches = [Patch(*bar(0.7, 0.15, 0.9), GLINT)]
    else:  # metal: a brushed streak
        patches = [Patch(*bar(_q(float(rng.uniform(-0.4, 0.4)), 0.2), 0.1), STREAK)]
    return Look(base, tuple(patches))


class StyledPartFactory(PartFactory):
    """Cube parts drawn with a :class:`Look`; visual shapes cached per (size in mm, look)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._styled: dict[tuple[int, Look], int] = {}

    def visual(self, mm: int, look: Look) -> int:
        key = (mm, look)
        if key not in self._styled:
            half = mm / 2000.0
            halves = [(half, half, half)]
            frames = [(0.0, 0.0, 0.0)]
            colours = [(*look.base, 1.0)]
            for k, patch in enumerate(look.patches):  # stacked a hair apart so that later patches draw on top
                halves.append((patch.half[0] * half, patch.half[1] * half, 0.0005))
                frames.append((patch.centre[0] * half, patch.centre[1] * half, half + 0.0006 + 0.0004 * k))
                colours.append((*patch.rgb, 1.0))
            self._styled[key] = p.createVisualShapeArray(
                shapeTypes=[p.GEOM_BOX] * len(halves),
                halfExtents=halves,
                rgbaColors=colours,
                visualFramePositions=frames,
                physicsClientId=self.sim.cid,
            )
        return self._styled[key]

    def create_styled(
        self, size: float, mass: float, friction: float, look: Look, position: tuple[float, float, float]
    ) -> int:
        cid = self.sim.cid
        mm = int(round(size * 1000.0))
        if mm not in self._collision:
            self._collision[mm] = p.createCollisionShape(
                p.GEOM_BOX, halfExtents=(mm / 2000.0,) * 3, physicsClientId=cid
            )
        body = p.createMultiBody(mass, self._collision[mm], self.visual(mm, look), position, physicsClientId=cid)
        p.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=cid)
        return body
