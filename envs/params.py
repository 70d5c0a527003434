"""Shared building blocks for env parameter schemas (pydantic models that validate env keyword arguments).

Every env validates its keyword arguments with a subclass of :class:`EnvParams`, so that
``gymnasium.make("lepton/Driving-v0", lanes=9)`` and a scenario file with ``lanes: 9`` give the same clear message.
"""

from __future__ import annotations

import math
import numbers
from typing import Annotated, Any, ClassVar, Mapping

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,  # noqa: F401  (re-exported for the domain schemas)
    ValidationInfo,
    field_validator,
    model_validator,
)

RENAMED_OBS_MODES = {"rgb": "pixels"}  # old name -> new: an old scenario file fails with a pointer to the new name


class EnvParams(BaseModel):
    """Base class: unknown keys are errors, values are immutable once validated.

    Subclasses with an ``obs_mode`` field list the modes they support in ``OBS_MODES``.
    Numbers must be finite (NaN passes every ``ge``/``le`` test and inf every one-sided bound), and a YAML
    boolean is not a number (``max_speed: yes`` would otherwise drive at 1 m/s).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    OBS_MODES: ClassVar[tuple[str, ...]] = ("state",)
    # allowed [low, high] (None: unbounded) and unit (for messages) of range fields, checked by one validator
    RANGE_BOUNDS: ClassVar[Mapping[str, Bounds]] = {}

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float) or (isinstance(annotation, type) and issubclass(annotation, Range)):
                raise ValueError(f"expected a number, got the boolean {value!r}")
        return value

    @field_validator("obs_mode", check_fields=False)
    @classmethod
    def _supported_obs_mode(cls, value: str) -> str:
        if value in RENAMED_OBS_MODES:
            raise ValueError(
                f"obs_mode {value!r} was renamed to {RENAMED_OBS_MODES[value]!r}; allowed: {', '.join(cls.OBS_MODES)}"
            )
        if value not in cls.OBS_MODES:
            raise ValueError(f"obs_mode {value!r} is not supported; allowed: {', '.join(cls.OBS_MODES)}")
        return value

    @field_validator("*")
    @classmethod
    def _range_within_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        bounds = cls.RANGE_BOUNDS.get(info.field_name or "")
        return value if bounds is None else check_range(info.field_name, value, *bounds)


class Range(BaseModel):
    """A closed interval ``[low, high]`` sampled uniformly at each reset; YAML: ``[0.5, 2.0]`` or a single number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    low: float
    high: float

    @model_validator(mode="before")
    @classmethod
    def _from_list_or_number(cls, value: Any) -> Any:
        if _is_number(value):
            value = [value, value]
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or not all(_is_number(v) for v in value):
                raise ValueError(f"a range is [low, high] (two numbers) or a single number, got {_shown(value)}")
            if not all(_finite(v) for v in value):  # NaN would pass every bound check below
                raise ValueError(f"a range needs finite numbers, got {_shown(value)}")
            return {"low": value[0], "high": value[1]}
        if isinstance(value, (dict, Range)):
            return value
        raise ValueError(f"a range is [low, high] (two numbers) or a single number, got {_shown(value)}")

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.low > self.high:
            raise ValueError(f"range low ({self.low}) is greater than high ({self.high})")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.low if self.low == self.high else rng.uniform(self.low, self.high))

    def within(self, low: float | None = None, high: float | None = None, name: str = "range") -> "Range":
        """Raise ValueError unless the whole range lies inside [low, high] (see :func:`check_range`)."""
        return check_range(name, self, low, high)


Bounds = tuple[float | None, float | None, str]  # (low, high, unit), e.g. (0.0, 0.05, " 1/m")


def check_range(name: str, value: Range, low: float | None, high: float | None, unit: str = "") -> Range:
    """The one range validator: ``value`` unless part of it lies outside [low, high], else a ValueError that
    names the field, the limits and the value (``lanes must be within [1, 4], got [7, 7]``)."""
    if (low is None or value.low >= low) and (high is None or value.high <= high):
        return value
    if low is None:
        limit = f"at most {high:g}{unit}"
    elif high is None:
        limit = f"at least {low:g}{unit}"
    else:
        limit = f"within [{low:g}, {high:g}]{unit}"
    raise ValueError(f"{name} must be {limit}, got [{value.low:g}, {value.high:g}]")


class IntRange(Range):
    """An integer interval ``[low, high]`` (both included), sampled uniformly at each reset.

    Whole numbers only: ``2.0`` is 2, but ``2.5`` is an error rather than silently truncated."""

    @model_validator(mode="after")
    def _whole(self) -> "IntRange":
        if not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"an integer range needs whole numbers, got [{self.low:g}, {self.high:g}]")
        return self

    def sample(self, rng: np.random.Generator) -> int:  # type: ignore[override]
        return int(rng.integers(int(self.low), int(self.high) + 1))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _shown(value: Any) -> str:
    """A short rendering of a bad value for messages (a huge list must not flood the terminal)."""
    if isinstance(value, (list, tuple)):
        items = [_shown(v) if not isinstance(v, (list, tuple, dict)) else "..." for v in value[:4]]
        return "[" + ", ".join(items + (["..."] if len(value) > 4 else [])) + "]"
    text = f"{value:g}" if isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


ObsMode = Annotated[str, "observation mode: 'state', or a camera mode such as 'pixels' where the env has cameras"]
