"""JSON observations checked against a declared Gymnasium space, and actions back to JSON (``lepton-sim serve``).

Every problem is one :class:`InvalidObservation` whose message names the place (``observations[3][12]``) and
the reason: not a number (strings, null, true/false), ragged nesting, wrong shape, NaN or infinity, a fraction
where the space holds integers, a value outside the space's finite bounds (as ``Space.contains``: an env's
observations stay inside them, so one outside is a client's mistake), missing or unknown Dict keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.errors import LeptonError

_NUMBER_TYPES = frozenset({int, float})  # bool is a subclass of int, but type(True) is bool
SUPPORTED = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)


class InvalidObservation(LeptonError):
    """An observation that does not fit the declared space (the server answers 422 with this message)."""


def check_supported(space: spaces.Space, where: str = "observation space") -> None:
    """Refuse, before serving, a space whose observations cannot be read from JSON here."""
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            if isinstance(sub, spaces.Dict):
                raise LeptonError(f"{where}: nested Dict spaces are not supported ({key!r})")
            check_supported(sub, f"{where}[{key!r}]")
    elif not isinstance(space, SUPPORTED):
        raise LeptonError(
            f"{where}: {type(space).__name__} observations cannot be served (supported: Box, "
            "Discrete, MultiDiscrete, MultiBinary, Dict of those)"
        )


def parse_batch(space: spaces.Space, values: Any, where: str = "observations") -> Any:
    """A JSON list of observations as one batch: an array with a leading batch axis (a dict of them for a Dict
    space), in the space's dtype."""
    if not isinstance(values, list):
        raise InvalidObservation(f"{where}: expected a list of observations, got {_json_type(values)}")
    if not values:
        raise InvalidObservation(f"{where}: the batch is empty")
    if isinstance(space, spaces.Dict):
        for i, value in enumerate(values):
            _check_keys(space, value, f"{where}[{i}]")
        return {key: _leaf(sub, [value[key] for value in values], where, key=key) for key, sub in space.spaces.items()}
    return _leaf(space, values, where)


def parse_single(space: spaces.Space, value: Any, where: str = "observation") -> Any:
    """One JSON observation as a batch of one."""
    if isinstance(space, spaces.Dict):
        _check_keys(space, value, where)
        return {key: _leaf(sub, [value[key]], where, key=key, single=True) for key, sub in space.spaces.items()}
    return _leaf(space, [value], where, single=True)


def action_to_json(action: np.ndarray) -> Any:
    """An action (or a batch of them) as JSON numbers (float32 values keep their exact value)."""
    return np.asarray(action).tolist()


# ---------------------------------------------------------------------------------------------- checks
def _check_keys(space: spaces.Dict, value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise InvalidObservation(f"{where}: expected an object with keys {list(space.spaces)}, got {_json_type(value)}")
    missing = [k for k in space.spaces if k not in value]
    unknown = [k for k in value if k not in space.spaces]
    if missing or unknown:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise InvalidObservation(f"{where}: keys {'; '.join(parts)}; expected {list(space.spaces)}")


def _leaf(space: spaces.Space, rows: list, where: str, key: str | None = None, single: bool = False) -> np.ndarray:
    """``rows`` (one JSON value per observation; of Dict key ``key``) as an array ``(len(rows), *space.shape)``."""
    shape = _shape_of(space)
    here = _Place(where, key, single)
    array = _numbers(rows, shape, here)
    if isinstance(space, spaces.Box):
        low, high, integral = space.low, space.high, np.issubdtype(space.dtype, np.integer)
    elif isinstance(space, spaces.Discrete):
        low, high, integral = np.int64(space.start), np.int64(space.start + space.n - 1), True
    elif isinstance(space, spaces.MultiDiscrete):
        low, high, integral = space.start, space.start + space.nvec - 1, True
    else:  # MultiBinary
        low, high, integral = np.zeros(shape, np.int8), np.ones(shape, np.int8), True
    _check_finite(array, here)
    if integral and array.dtype.kind == "f":
        fractional = array != np.floor(array)
        if fractional.any():
            raise InvalidObservation(
                f"{here.at(fractional)}: {_first(array, fractional)} is not a whole number "
                f"(the space holds {np.dtype(space.dtype).name})"
            )
    _check_bounds(array, np.asarray(low), np.asarray(high), here)
    return array.astype(space.dtype)


def _shape_of(space: spaces.Space) -> tuple[int, ...]:
    return () if isinstance(space, spaces.Discrete) else tuple(space.shape or ())


class _Place:
    """Names a place in the request: ``observations[3]['key'][12]`` (``observation['key'][12]`` for one)."""

    def __init__(self, where: str, key: str | None, single: bool) -> None:
        self.where, self.key, self.single = where, "" if key is None else f"[{key!r}]", single

    def row(self, i: int, rest: str = "") -> str:
        return (self.where if self.single else f"{self.where}[{i}]") + self.key + rest

    def at(self, bad: np.ndarray) -> str:
        index = np.unravel_index(int(np.argmax(bad)), bad.shape)
        return self.row(int(index[0]), "".join(f"[{i}]" for i in index[1:]))

    def whole(self) -> str:
        return self.where + ("[*]" + self.key if self.key else "")


def _numbers(rows: list, shape: tuple[int, ...], here: _Place) -> np.ndarray:
    """Nested JSON lists of numbers (no bool, null or string anywhere) as a float64 or int64 array."""
    for i, row in enumerate(rows):
        problem = _not_numbers(row, len(shape))
        if problem is not None:
            raise InvalidObservation(f"{here.row(i, problem[0])}: {problem[1]}")
    try:
        array = np.asarray(rows)
    except (ValueError, OverflowError):
        array = None
    expected = (len(rows), *shape)
    if array is None or array.shape != expected:
        for i, row in enumerate(rows):
            got = _nested_shape(row)
            if got != shape:
                raise InvalidObservation(f"{here.row(i)}: expected shape {shape}, got {_shape_text(got)}")
        raise InvalidObservation(f"{here.whole()}: expected shape {shape}")
    if array.dtype.kind not in "iuf":  # integers past int64 (object arrays)
        raise InvalidObservation(f"{here.whole()}: numbers out of range (integers must fit in 64 bits)")
    return array


def _not_numbers(value: Any, depth: int) -> tuple[str, str] | None:
    """Where (an index suffix) and why ``value`` is not a ``depth``-deep nesting of JSON numbers, or None."""
    if depth == 0:
        if type(value) in _NUMBER_TYPES:
            return None
        return "", f"expected a number, got {_json_type(value)}"
    if not isinstance(value, list):
        return "", f"expected a list (nested {depth} deep), got {_json_type(value)}"
    if depth == 1:
        if _NUMBER_TYPES.issuperset(map(type, value)):  # the fast path: one pass in C
            return None
        for j, item in enumerate(value):
            if type(item) not in (int, float):
                return f"[{j}]", f"expected a number, got {_json_type(item)}"
        return None
    for j, item in enumerate(value):
        problem = _not_numbers(item, depth - 1)
        if problem is not None:
            return f"[{j}]{problem[0]}", problem[1]
    return None


def _nested_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of regular nested lists, None if ragged."""
    if not isinstance(value, list):
        return ()
    shapes = {_nested_shape(v) for v in value}
    if len(shapes) > 1 or None in shapes:
        return None
    inner = shapes.pop() if shapes else ()
    return None if inner is None else (len(value), *inner)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "ragged nested lists" if shape is None else f"shape {shape}"


def _check_finite(array: np.ndarray, here: _Place) -> None:
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            raise InvalidObservation(f"{here.at(bad)}: {_first(array, bad)} (NaN and infinity are refused)")


def _check_bounds(array: np.ndarray, low: np.ndarray, high: np.ndarray, here: _Place) -> None:
    finite_low, finite_high = np.isfinite(low), np.isfinite(high)
    below = (array < np.where(finite_low, low, -np.inf)) if finite_low.any() else None
    above = (array > np.where(finite_high, high, np.inf)) if finite_high.any() else None
    for bad in (below, above):
        if bad is not None and bad.any():
            index = np.unravel_index(int(np.argmax(bad)), bad.shape)
            lo = np.broadcast_to(low, array.shape[1:])[index[1:]]
            hi = np.broadcast_to(high, array.shape[1:])[index[1:]]
            raise InvalidObservation(
                f"{here.at(bad)}: {array[index]} is outside the space's bounds [{_number(lo)}, {_number(hi)}]"
            )


def _first(array: np.ndarray, bad: np.ndarray) -> Any:
    return array[np.unravel_index(int(np.argmax(bad)), bad.shape)]


def _number(value: Any) -> str:
    return f"{float(value):g}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
