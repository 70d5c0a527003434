"""Gymnasium spaces as plain JSON and back, so an exported policy's ``spec.json`` (and the server's ``GET /spec``)
declares its spaces in a form any language reads, with no pickle.

Box bounds that are one number everywhere are written once; infinite bounds as the strings ``"inf"`` and
``"-inf"`` (JSON has no infinity). Dict spaces keep their key order as a list of ``{"key", "space"}`` entries: that
order is the order of the exported graph's inputs. Reading back gives an equal space (float32 bounds included).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.errors import LeptonError

SPACE_TYPES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple")


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A JSON-ready description of ``space``; spaces other than SPACE_TYPES are refused."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _bound_to_json(space.low),
            "high": _bound_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [{"key": k, "space": space_to_json(s)} for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    raise LeptonError(f"cannot describe a {type(space).__name__} space as JSON (supported: {', '.join(SPACE_TYPES)})")


def space_from_json(data: Any, where: str = "space") -> spaces.Space:
    """The space that :func:`space_to_json` described; a malformed description is one LeptonError naming
    ``where``."""
    try:
        return _from_json(data, where)
    except LeptonError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise LeptonError(f"{where}: not a space description ({type(err).__name__}: {err})") from None


def _from_json(data: Any, where: str) -> spaces.Space:
    if not isinstance(data, dict) or data.get("type") not in SPACE_TYPES:
        raise LeptonError(f"{where}: not a space description (expected an object with a type in {SPACE_TYPES})")
    kind = data["type"]
    if kind == "Box":
        shape = tuple(int(n) for n in data["shape"])
        dtype = np.dtype(data["dtype"])
        low, high = _bound_from_json(data["low"], shape, dtype), _bound_from_json(data["high"], shape, dtype)
        return spaces.Box(low, high, shape, dtype.type)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(
            np.asarray(data["nvec"], np.int64), dtype=data.get("dtype", "int64"), start=data.get("start")
        )
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        items = [(str(e["key"]), _from_json(e["space"], f"{where}.{e['key']}")) for e in data["spaces"]]
        return spaces.Dict(items)  # a sequence keeps its order (a mapping would be sorted)
    return spaces.Tuple([_from_json(s, f"{where}[{i}]") for i, s in enumerate(data["spaces"])])


def _bound_to_json(bound: np.ndarray) -> Any:
    flat = np.asarray(bound).ravel()
    if flat.size and np.all(flat == flat[0]):
        return _number_to_json(flat[0])
    return _nested(np.asarray(bound))


def _nested(array: np.ndarray) -> Any:
    if array.ndim == 0:
        return _number_to_json(array)
    return [_nested(row) for row in array]


def _number_to_json(value: Any) -> Any:
    if np.issubdtype(np.asarray(value).dtype, np.integer):
        return int(value)
    number = float(value)
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return number


def _bound_from_json(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    def number(v: Any) -> Any:
        if isinstance(v, list):
            return [number(x) for x in v]
        if v in ("inf", "-inf"):
            return float(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"bound {v!r} is not a number")
        return v

    array = np.asarray(number(value), dtype=np.float64 if np.issubdtype(dtype, np.floating) else None)
    if array.ndim == 0:
        array = np.full(shape, array)
    if array.shape != shape:
        raise ValueError(f"bounds of shape {array.shape} for a space of shape {shape}")
    return array.astype(dtype)
