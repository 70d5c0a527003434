"""Parameters of the visual-inspection tasks (``lepton/VisualInspection-v0``, ``lepton/WasteSorting-v0``).

Only pydantic is imported here (registering the envs never starts PyBullet). The appearance fields change only
what cameras see (``appearance``), never the episode's physics, so a suite can test unseen looks on the same
episodes.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from lepton_sim.envs.manufacturing.params import MAX_CLASSES, ConveyorPickParams, ConveyorSortParams, _range_field
from lepton_sim.envs.params import Bounds, Range

DEFECT_KINDS = ("scratch", "dent", "discolouration")
MATERIALS = ("plastic", "paper", "glass", "metal")
MATERIAL_VARIANTS = 3  # looks per material (appearance.MATERIAL_LOOKS)

_ORACLE = (
    "fill the state observation's class one-hot (the ground truth a perception model must supply; off, a state "
    "agent sees positions only and cannot route better than chance)"
)
_JITTER = "part colour shade step: each part's base colour x (1 - j, 1 or 1 + j), drawn per part"


class VisualInspectionParams(ConveyorSortParams):
    """Good and defective parts look alike but for a defect drawn on top (``appearance``); bin 0 accepts, bin 1
    rejects."""

    num_bins: int = Field(2, ge=2, le=4, description="bins beside the belt: bin 0 takes good parts, bin 1 defective")
    num_classes: int = Field(2, ge=2, le=2, description="part classes: 0 = good, 1 = defective")
    defect_rate: float = Field(0.5, ge=0.0, le=1.0, description="probability that a part is defective")
    oracle_class: bool = Field(False, description=_ORACLE)
    defect_kinds: list[str] = Field(
        default_factory=lambda: list(DEFECT_KINDS),
        description=f"defects drawn on defective parts, one per part: {', '.join(DEFECT_KINDS)}",
    )
    defect_size: Range = _range_field([0.5, 0.7], "defect side (scratch: length) as a fraction of the top face")
    defect_contrast: Range = _range_field([0.6, 0.9], "how far a defect's colour is from the part's (0 = invisible)")
    colour_jitter: float = Field(0.05, ge=0.0, le=0.3, description=_JITTER)
    RANGE_BOUNDS: ClassVar[dict[str, Bounds]] = {
        **ConveyorSortParams.RANGE_BOUNDS,
        "defect_size": (0.1, 1.0, ""),
        "defect_contrast": (0.0, 1.0, ""),
    }

    @field_validator("defect_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"defect_kinds: give at least one of {', '.join(DEFECT_KINDS)}")
        for kind in value:
            if kind not in DEFECT_KINDS:
                raise ValueError(f"unknown defect kind {kind!r}; allowed: {', '.join(DEFECT_KINDS)}")
        return value


class WasteSortingParams(ConveyorPickParams):
    """Pieces of waste of ``num_classes`` materials (uniformly often), each in one of its looks; bin c takes
    material c."""

    num_bins: int = Field(4, ge=2, le=4, description="bins beside the belt (bin c takes material c)")
    num_classes: int = Field(
        4, ge=2, le=MAX_CLASSES, description=f"materials, the first of: {', '.join(MATERIALS)} (uniformly often)"
    )
    oracle_class: bool = Field(False, description=_ORACLE)
    material_variants: list[int] = Field(
        default_factory=lambda: [0, 1],
        description=f"which of each material's {MATERIAL_VARIANTS} looks occur (0-{MATERIAL_VARIANTS - 1}); "
        "the others are unseen appearances for test rows",
    )
    colour_jitter: float = Field(0.05, ge=0.0, le=0.3, description=_JITTER)

    @field_validator("material_variants")
    @classmethod
    def _known_variants(cls, value: list[int]) -> list[int]:
        if not value or any(isinstance(v, bool) or not 0 <= v < MATERIAL_VARIANTS for v in value):
            raise ValueError(f"material_variants: a non-empty list of looks 0-{MATERIAL_VARIANTS - 1}, got {value}")
        return value

    @model_validator(mode="after")
    def _classes_fit_bins(self) -> "WasteSortingParams":
        if self.num_classes > self.num_bins:
            raise ValueError(
                f"num_classes: more materials ({self.num_classes}) than bins ({self.num_bins}); each needs its own bin"
            )
        return self
