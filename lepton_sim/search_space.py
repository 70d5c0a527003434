"""Hyperparameter search spaces as data, the same format for every back end (``lepton-sim tune``).

A space is a mapping of hyperparameter name -> distribution; a dotted name sets one key of a mapping-valued
hyperparameter (``policy_kwargs.net_arch``). Distributions (Optuna's)::

    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}     # optional step (not with log)
    n_epochs: {type: int, low: 1, high: 20}                                 # optional log, step
    gamma: {type: categorical, choices: [0.9, 0.99, 0.999]}
    policy_kwargs.net_arch: {type: categorical, choices: {small: [64, 64], medium: [256, 256]}}

Categorical choices are plain values, or a mapping of label -> value where a value is not a plain number or word
(Optuna stores the label). Grid search uses each categorical's choices, an int range (or a float range with a
step) enumerated, or an explicit ``grid: [...]`` on a float or int entry. This module checks the format; which
names an algorithm accepts is the back end's check (:meth:`lepton_sim.backends.Backend.search_space`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from lepton_sim.errors import LeptonError

TYPES = ("float", "int", "categorical")
FIELDS = {
    "float": ("type", "low", "high", "log", "step", "grid"),
    "int": ("type", "low", "high", "log", "step", "grid"),
    "categorical": ("type", "choices"),
}
MAX_GRID = 1000  # values one range may enumerate for grid search


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter. ``choices``: label -> value for categoricals (labels are the values
    themselves for plain choices)."""

    name: str
    type: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[tuple[Any, Any], ...] = ()
    grid: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """Sample from an Optuna trial (a categorical's label) and return the hyperparameter value."""
        if self.type == "categorical":
            return self.value(trial.suggest_categorical(self.name, [label for label, _ in self.choices]))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def value(self, sampled: Any) -> Any:
        """The hyperparameter value for a sampled value (a categorical label -> its value)."""
        if self.type == "categorical":
            return dict(self.choices)[sampled]
        return sampled

    def candidates(self) -> list[Any]:
        """Values that stand for the whole range when a back end checks names and types."""
        if self.type == "categorical":
            return [value for _, value in self.choices]
        return [int(self.low), int(self.high)] if self.type == "int" else [self.low, self.high]

    def grid_values(self, source: str) -> list[Any]:
        """The values grid search tries (categorical labels, an enumerated range or the explicit grid)."""
        if self.type == "categorical":
            return [label for label, _ in self.choices]
        if self.grid is not None:
            return list(self.grid)
        if self.type == "int" and not self.log:
            step = int(self.step or 1)
            count = (int(self.high) - int(self.low)) // step + 1
            if count <= MAX_GRID:
                return list(range(int(self.low), int(self.high) + 1, step))
        if self.type == "float" and self.step is not None:
            count = int(round((self.high - self.low) / self.step)) + 1
            if count <= MAX_GRID:
                return [round(self.low + k * self.step, 12) for k in range(count)]
        raise LeptonError(
            f"{source}: {self.name}: grid search needs a finite list of values; this {self.type} range has none "
            "(add grid: [...] to the entry, or a step)"
        )


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    source: str

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> "SearchSpace":
        """Parse and check a space (one LeptonError naming the file and the field for the first problem)."""
        if not isinstance(data, Mapping) or not data:
            raise LeptonError(f"{source}: expected a mapping of hyperparameter name -> distribution")
        params = tuple(_param(str(name), spec, source) for name, spec in data.items())
        tops = {p.name for p in params}
        for p in params:
            if "." in p.name and p.name.split(".", 1)[0] in tops:
                raise LeptonError(f"{source}: {p.name}: {p.name.split('.', 1)[0]} is searched as a whole already")
        return cls(params, source)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def to_data(self) -> dict[str, Any]:
        """A JSON-able description (stored with a study, so processes sharing it use the same space)."""
        return {
            p.name: {
                "type": p.type,
                **({"choices": [[label, value] for label, value in p.choices]} if p.type == "categorical" else {}),
                **(
                    {"low": p.low, "high": p.high, "log": p.log, "step": p.step, "grid": p.grid}
                    if p.type != "categorical"
                    else {}
                ),
            }
            for p in self.params
        }

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample every parameter from an Optuna trial; returns name -> hyperparameter value."""
        return {p.name: p.suggest(trial) for p in self.params}

    def grid(self) -> dict[str, list[Any]]:
        """Optuna GridSampler's search space: name -> the values (labels for categoricals) to try."""
        return {p.name: p.grid_values(self.source) for p in self.params}


def nested(values: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Dotted names (``policy_kwargs.net_arch``) as nested hyperparameters, merged into ``base``'s mappings."""
    base = dict(base or {})
    out: dict[str, Any] = {}
    for name, value in values.items():
        if "." in name:
            top, key = name.split(".", 1)
            inner = out.get(top) or dict(base.get(top) or {})
            out[top] = {**inner, key: value}
        else:
            out[name] = value
    return out


def _param(name: str, spec: Any, source: str) -> Param:
    where = f"{source}: {name}"
    if not name or name.startswith(".") or name.endswith(".") or name.count(".") > 1:
        raise LeptonError(f"{where}: a name is a hyperparameter or <hyperparameter>.<key> (policy_kwargs.net_arch)")
    if not isinstance(spec, Mapping):
        raise LeptonError(
            f"{where}: expected a distribution such as {{type: float, low: 1.0e-5, high: 1.0e-2, log: true}}, "
            f"got {spec!r}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise LeptonError(f"{where}.type: unknown distribution type {kind!r}; allowed: {', '.join(TYPES)}")
    unknown = sorted(set(map(str, spec)) - set(FIELDS[kind]))
    if unknown:
        raise LeptonError(
            f"{where}: unknown field(s) {', '.join(unknown)} for {kind}; allowed: {', '.join(FIELDS[kind])}"
        )
    if kind == "categorical":
        return Param(name, kind, choices=_choices(spec.get("choices"), where))
    return _range(name, kind, spec, where)


def _choices(raw: Any, where: str) -> tuple[tuple[Any, Any], ...]:
    if isinstance(raw, Mapping):
        pairs = [(str(label), value) for label, value in raw.items()]
    elif isinstance(raw, list):
        for value in raw:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise LeptonError(
                    f"{where}.choices: {value!r} is not a plain value; name such choices, e.g. "
                    "choices: {small: [64, 64], medium: [256, 256]}"
                )
        pairs = [(value, value) for value in raw]
    else:
        raise LeptonError(f"{where}.choices: expected a list of values or a mapping of label -> value, got {raw!r}")
    if not pairs:
        raise LeptonError(f"{where}.choices: empty; give at least one choice")
    labels = [label for label, _ in pairs]
    if len(set(map(repr, labels))) != len(labels):
        raise LeptonError(f"{where}.choices: a choice appears twice ({labels})")
    return tuple(pairs)


def _range(name: str, kind: str, spec: Mapping[str, Any], where: str) -> Param:
    number = int if kind == "int" else (int, float)
    bounds = {}
    for key in ("low", "high"):
        value = spec.get(key)
        if not isinstance(value, number) or isinstance(value, bool) or not math.isfinite(value):
            raise LeptonError(
                f"{where}.{key}: expected a finite {'whole number' if kind == 'int' else 'number'}, got {value!r}"
            )
        bounds[key] = value
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise LeptonError(f"{where}: low {low} > high {high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise LeptonError(f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise LeptonError(f"{where}: a log range needs low > 0, got low {low}")
    step = spec.get("step")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or not 0 < step < math.inf:
            raise LeptonError(
                f"{where}.step: expected a positive {'whole number' if kind == 'int' else 'number'}, got {step!r}"
            )
        if log and kind == "float":
            raise LeptonError(f"{where}: step and log cannot be combined for a float range")
        if log and step != 1:
            raise LeptonError(f"{where}: a log int range takes step 1 only, got {step}")
    grid = spec.get("grid")
    if grid is not None:
        if not isinstance(grid, list) or not grid:
            raise LeptonError(f"{where}.grid: expected a non-empty list of values, got {grid!r}")
        for value in grid:
            if not isinstance(value, number) or isinstance(value, bool) or not low <= value <= high:
                raise LeptonError(f"{where}.grid: {value!r} is not a {kind} within [{low}, {high}]")
        grid = tuple(grid)
    return Param(name, kind, low=low, high=high, log=log, step=step, grid=grid)
