"""What every lepton-sim camera returns, and the per-episode camera conditions it is rendered under.

Why one module: the observation pipeline (``pixel_observation``), sensor realism (``sensor_realism``) and
every domain's camera (driving top-down raster, PyBullet cameras, traffic approach images) exchange these two
types, so none of them imports another domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CameraImage:
    """One capture. Arrays may carry a leading batch axis (N, ...) when a native vector env renders N worlds.

    ``rgb``: uint8 (H, W, 3) for colour cameras; ``semantic``: uint8 (H, W, C), one 0/255 channel per class
    (semantic grids such as driving's ``semantic`` camera, where ``rgb`` is None); ``depth``: float32 (H, W)
    metres along the optical axis; ``segmentation``: int32 (H, W) class ids (0 = background). Depth and
    segmentation are filled only when asked for, from the same render call as ``rgb``.
    """

    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    segmentation: np.ndarray | None = None
    semantic: np.ndarray | None = None


@dataclass(frozen=True)
class CameraConditions:
    """How one episode's camera deviates from its nominal pose and lighting (sampled by ``sensor_realism``).

    Each env's camera reads these in its own frame: ``offset`` (metres: x right, y forward/up the image, z
    towards the viewer, for a top-down camera z changes the height, i.e. the zoom), ``rotation`` (degrees:
    roll, pitch, yaw; a top-down camera uses yaw only), ``fov_delta`` (degrees added to the field of view; a
    top-down camera scales its footprint by the same ratio), ``light_direction`` (unit vector towards the light)
    and ``light_color`` (RGB in [0, 1]) where the renderer has lights (PyBullet); None keeps the nominal one.
    """

    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov_delta: float = 0.0
    light_direction: tuple[float, float, float] | None = None
    light_color: tuple[float, float, float] | None = None

    @property
    def nominal(self) -> bool:
        """True when nothing deviates (renderers can take their fast path)."""
        return (
            self.offset == (0.0, 0.0, 0.0)
            and self.rotation == (0.0, 0.0, 0.0)
            and self.fov_delta == 0.0
            and self.light_direction is None
            and self.light_color is None
        )


NOMINAL = CameraConditions()
