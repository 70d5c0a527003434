"""Segmentation class ids of the production cell: what each pixel of a camera's segmentation mask shows.

Why classes, not PyBullet body ids: body ids change as parts come and go, and a perception module needs to tell
"a good part" from "a defective part of kind 2", not body 17 from body 18. Every env lists its bodies with their
class (``ArmEnv._segmentation_bodies``); :func:`class_lookup` turns that into a table indexed by body id + 1.

| id | class            | bodies                                                    |
|----|------------------|-----------------------------------------------------------|
| 0  | background       | nothing drawn (beyond the far plane)                      |
| 1  | floor            | the floor plane below the table                           |
| 2  | table            | the table top and legs block                              |
| 3  | robot            | every link of the arm and gripper                         |
| 4  | belt             | the conveyor belt                                         |
| 5  | bin              | bins (floor and rims)                                     |
| 6  | target           | the goal marker (ghost sphere) of reach and pick-place    |
| 7  | part, class 0    | a good part (green)                                       |
| 8  | part, class 1    | defect kind 1 (red, dark stripe)                          |
| 9  | part, class 2    | defect kind 2 (blue, dark stripe)                         |
| 10 | part, class 3    | defect kind 3 (yellow, dark stripe)                       |
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

BACKGROUND, FLOOR, TABLE, ROBOT, BELT, BIN, TARGET, PART = range(8)
SEGMENTATION_CLASSES = {
    "background": BACKGROUND,
    "floor": FLOOR,
    "table": TABLE,
    "robot": ROBOT,
    "belt": BELT,
    "bin": BIN,
    "target": TARGET,
    **{f"part_class_{c}": PART + c for c in range(4)},
}


def part_class_id(part_class: int) -> int:
    """The segmentation id of a part of class ``part_class`` (0 = good, 1.. = defect kinds)."""
    return PART + int(part_class)


def class_lookup(bodies: Iterable[tuple[int, int]]) -> np.ndarray:
    """A table ``lut`` with ``lut[body_id + 1]`` = class id (int32); index 0 (PyBullet's -1: nothing drawn) and any
    body not listed map to background, and the last entry is background so that ``np.take(..., mode="clip")`` maps
    bodies created after the table was built to background too."""
    pairs = [(int(b), int(c)) for b, c in bodies if b >= 0]
    lut = np.zeros(max((b for b, _ in pairs), default=-1) + 3, dtype=np.int32)
    for body, cls in pairs:
        lut[body + 1] = cls
    return lut


def classes_of(bodies: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Body ids per pixel (PyBullet's segmentation mask, -1 for nothing) -> class ids (int32)."""
    return np.take(lut, bodies + 1, mode="clip")
