"""Shared building blocks for env parameter schemas (pydantic models that validate env keyword arguments).

Every env validates its keyword arguments with a subclass of :class:`EnvParams`, so that
``gymnasium.make("lepton/Driving-v0", lanes=9)`` and a scenario file with ``lanes: 9`` give the same clear message.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field  # noqa: F401  (re-exported for the domain schemas)

RENAMED_OBS_MODES = {"rgb": "pixels"}  # old name -> new: an old scenario file fails with a pointer to the new name


class EnvParams(BaseModel):
    """Base class: unknown keys are errors, values are immutable once validated.

    Subclasses with an ``obs_mode`` field list the modes they support in ``OBS_MODES``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    OBS_MODES: ClassVar[tuple[str, ...]] = ("state",)

    @field_validator("obs_mode", check_fields=False)
    @classmethod
    def _supported_obs_mode(cls, value: str) -> str:
        if value in RENAMED_OBS_MODES:
            raise ValueError(f"obs_mode {value!r} was renamed to {RENAMED_OBS_MODES[value]!r}; "
                             f"allowed: {', '.join(cls.OBS_MODES)}")
        if value not in cls.OBS_MODES:
            raise ValueError(f"obs_mode {value!r} is not supported; allowed: {', '.join(cls.OBS_MODES)}")
        return value


class Range(BaseModel):
    """A closed interval ``[low, high]`` sampled uniformly at each reset; YAML: ``[0.5, 2.0]`` or a single number."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    low: float
    high: float

    @model_validator(mode="before")
    @classmethod
    def _from_list_or_number(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"low": value, "high": value}
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("a range is [low, high] (two numbers) or a single number")
            return {"low": value[0], "high": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.low > self.high:
            raise ValueError(f"range low ({self.low}) is greater than high ({self.high})")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.low if self.low == self.high else rng.uniform(self.low, self.high))

    def within(self, low: float | None = None, high: float | None = None) -> "Range":
        """Raise ValueError unless the whole range lies inside [low, high] (used by field validators)."""
        if low is not None and self.low < low:
            raise ValueError(f"range [{self.low}, {self.high}] goes below the minimum {low}")
        if high is not None and self.high > high:
            raise ValueError(f"range [{self.low}, {self.high}] goes above the maximum {high}")
        return self


class IntRange(Range):
    """An integer interval ``[low, high]`` (both included), sampled uniformly at each reset."""

    def sample(self, rng: np.random.Generator) -> int:  # type: ignore[override]
        return int(rng.integers(int(self.low), int(self.high) + 1))


ObsMode = Annotated[str, "observation mode: 'state', or a camera mode such as 'pixels' where the env has cameras"]
