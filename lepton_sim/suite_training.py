"""Training on a suite split: the rows a run trains on, how its envs are shared among them, and the rows its
periodic evaluation selects the best model on. Back ends build the envs from what this module records in the
:class:`~lepton_sim.training_config.TrainConfig` (``rows``, ``validation``, ``train_env_params``).

- Rows: the split's entries (each one's ``params`` merged over its scenario's), all of them or those named
  (``rows=["driving/lane-keep", "driving/obstacle-avoid=2"]``: a label, optionally ``=weight``). Every row must
  give the same observation and action spaces (one policy acts in all of them); otherwise one line names the rows
  and their spaces.
- Envs: ``n_envs`` slots dealt to the rows in proportion to their weights by largest remainder (ties to the
  earlier row; a row too light for one gets one from the row with the most), in row order, so slot i is row r's env j for a fixed r and j: the
  assignment follows from the settings alone, and slot i's first episode has seed ``seed + i`` as in a run on
  one scenario.
- Validation: the suite's ``validation`` split (each row from its own seed), else the rows trained on, on the
  periodic evaluation seeds (lepton_sim.periodic_evaluation): never the test seeds. Rows whose spaces are not
  the training rows' (a policy cannot act there) are left out, as ``evaluate`` skips them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium

from lepton_sim.errors import LeptonError, ScenarioError
from lepton_sim.periodic_evaluation import EvaluationRow, evaluation_seeds
from lepton_sim.scenario import SPLITS, Scenario, Suite, SuiteItem, load_suite, scenario_from_dict, suite_items
from lepton_sim.training_config import TrainConfig, TrainRow, ValidationRow

TRAIN_SPLITS = ("train", "validation")  # a run never trains on the test split it is measured on

Spaces = tuple[gymnasium.Space, gymnasium.Space]


def parse_rows(rows: Sequence[str] | Mapping[str, float] | None) -> dict[str, float] | None:
    """``["a", "b=2"]`` (or ``{"a": 1, "b": 2}``) -> labels and weights; None: every row, weight 1."""
    if rows is None:
        return None
    items: list[tuple[str, Any]]
    if isinstance(rows, Mapping):
        items = [(str(label), weight) for label, weight in rows.items()]
    else:
        items = []
        for text in rows:
            label, sep, given = str(text).rpartition("=")
            items.append((label, given) if sep and label else (str(text), 1.0))
    weights: dict[str, float] = {}
    for label, raw in items:
        try:
            weight = float(raw) if not isinstance(raw, bool) else math.nan
        except (TypeError, ValueError):
            raise LeptonError(f"rows: {label}={raw}: the weight must be a number > 0") from None
        if not math.isfinite(weight) or weight <= 0:
            raise LeptonError(f"rows: {label}={raw}: the weight must be a number > 0")
        if label in weights:
            raise LeptonError(f"rows: {label!r} is given twice; name each row once")
        weights[label] = weight
    if not weights:
        raise LeptonError("rows: name at least one row of the split")
    return weights


def assign_envs(weights: Sequence[float], n_envs: int) -> list[int]:
    """Envs per row: proportional to ``weights`` by largest remainder (ties to the earlier row), each row >= 1."""
    if n_envs < len(weights):
        raise LeptonError(
            f"n_envs {n_envs} is fewer than the {len(weights)} rows trained on; each row needs an env of its own "
            f"(--num-envs {len(weights)} or more, or fewer --rows)"
        )
    total = float(sum(weights))
    quotas = [n_envs * w / total for w in weights]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda r: (-(quotas[r] - counts[r]), r))
    for r in order[: n_envs - sum(counts)]:
        counts[r] += 1
    for r in range(len(counts)):  # a row too light for an env of its own takes one from the row with the most
        if counts[r] == 0:
            donor = max(range(len(counts)), key=lambda k: (counts[k], -k))
            counts[donor] -= 1
            counts[r] = 1
    return counts


def describe_space(space: gymnasium.Space) -> str:
    """A short name of a space for one-line messages (Box(87,) float32, Discrete(5), Dict(a, b))."""
    if isinstance(space, gymnasium.spaces.Box):
        return f"Box{space.shape} {space.dtype}"
    if isinstance(space, gymnasium.spaces.Dict):
        return f"Dict({', '.join(f'{k}: {describe_space(v)}' for k, v in space.spaces.items())})"
    text = str(space)
    return text if len(text) <= 60 else text[:57] + "..."


def env_spaces(scenario: Scenario) -> Spaces:
    """The observation and action spaces of one env of the scenario (built and closed)."""
    from lepton_sim.make import make

    env = make(scenario)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _space_groups(labels: Sequence[str], spaces: Sequence[Spaces]) -> list[tuple[Spaces, list[str]]]:
    groups: list[tuple[Spaces, list[str]]] = []
    for label, pair in zip(labels, spaces):
        for known, members in groups:
            if known[0] == pair[0] and known[1] == pair[1]:
                members.append(label)
                break
        else:
            groups.append((pair, [label]))
    return groups


def check_shared_spaces(suite: str, split: str, labels: Sequence[str], spaces: Sequence[Spaces]) -> Spaces:
    """The rows' common spaces, or one line naming which rows have which spaces and what to train on instead."""
    groups = _space_groups(labels, spaces)
    if len(groups) == 1:
        return groups[0][0]
    parts = []
    for (obs, act), members in groups:
        parts.append(f"{', '.join(members)}: observations {describe_space(obs)}, actions {describe_space(act)}")
    largest = max(groups, key=lambda g: len(g[1]))[1]
    raise LeptonError(
        f"{suite} {split}: the rows trained on must share observation and action spaces (one policy acts in all); "
        f"{'; '.join(parts)}; train on rows that share them, e.g. --rows {' '.join(largest)}"
    )


def select_rows(items: list[SuiteItem], weights: dict[str, float] | None, where: str) -> list[tuple[SuiteItem, float]]:
    if weights is None:
        return [(item, 1.0) for item in items]
    labels = [item.label for item in items]
    unknown = [label for label in weights if label not in labels]
    if unknown:
        raise LeptonError(f"rows: {where} has no row {unknown[0]!r}; its rows: {', '.join(labels)}")
    return [(item, weights[item.label]) for item in items if item.label in weights]


def with_train_params(scenario: Scenario, params: Mapping[str, Any], where: str) -> Scenario:
    """The scenario of a training env: ``train_env_params`` over its params, checked against the env's schema."""
    if not params:
        return scenario
    try:
        return scenario.with_params(params)
    except ScenarioError as err:
        raise LeptonError(f"train_env_params ({where}): {err}") from None


def plan_suite_rows(
    suite: str | Path,
    split: str,
    rows: Sequence[str] | Mapping[str, float] | None,
    train_env_params: Mapping[str, Any],
) -> tuple[Suite, list[tuple[SuiteItem, float]], Spaces]:
    """The suite, the rows a run trains on with their weights, and their common spaces. Builds one env per row
    (and one with ``train_env_params``, where given) to check the spaces."""
    if split not in TRAIN_SPLITS:
        allowed = ", ".join(TRAIN_SPLITS)
        why = "; the test split is what a run is measured on" if split == "test" else ""
        raise LeptonError(f"split: a run trains on one of {allowed}, not {split!r}{why}")
    suite_obj = load_suite(suite)
    items = suite_items(suite_obj, "validation" if split == "validation" else "train")
    if not items:
        raise LeptonError(f"{suite_obj.source}: split {split!r} is empty; nothing to train on")
    chosen = select_rows(items, parse_rows(rows), f"{suite_obj.name} {split}")
    labels = [item.label for item, _ in chosen]
    shared = check_shared_spaces(suite_obj.name, split, labels, [env_spaces(item.scenario) for item, _ in chosen])
    for item, _ in chosen:
        trained = with_train_params(item.scenario, train_env_params, item.label)
        if trained is not item.scenario and env_spaces(trained) != shared:
            raise LeptonError(
                f"train_env_params change the spaces of {item.label}; they may change only what happens in the env"
            )
    return suite_obj, chosen, shared


def train_rows(chosen: Sequence[tuple[SuiteItem, float]], n_envs: int) -> list[TrainRow]:
    """The rows as the run records them, each with its share of the ``n_envs`` envs."""
    counts = assign_envs([w for _, w in chosen], n_envs)
    return [
        TrainRow(label=item.label, scenario=item.scenario.model_dump(), weight=w, n_envs=n)
        for (item, w), n in zip(chosen, counts)
    ]


def plan_validation(suite: Suite, split: str, train_rows: Sequence[TrainRow], spaces: Spaces) -> list[ValidationRow]:
    """The periodic evaluation's rows: the suite's validation split (rows a policy of ``spaces`` can act in),
    else the rows trained on, on the periodic evaluation seeds."""
    if split != "validation" and suite.validation:
        rows = [
            ValidationRow(label=item.label, scenario=item.scenario.model_dump(), seed=item.seed)
            for item in suite_items(suite, "validation")
            if env_spaces(item.scenario) == spaces
        ]
        if rows:
            return rows
    return [ValidationRow(label=row.label, scenario=row.scenario) for row in train_rows]


def training_scenarios(config: TrainConfig, source: str) -> list[tuple[str, Scenario, int]]:
    """(label, scenario with ``train_env_params``, envs) of each row a suite run trains on."""
    assert config.rows is not None
    out = []
    for row in config.rows:
        sc = scenario_from_dict(row.scenario, source=f"{source}: rows[{row.label}]")
        out.append((row.label, with_train_params(sc, config.train_env_params, row.label), row.n_envs))
    return out


def evaluation_rows(config: TrainConfig, source: str) -> list[EvaluationRow] | None:
    """The periodic evaluation's rows of a suite run (None for a run on one scenario): ``eval_episodes`` each."""
    if not config.validation:
        return None
    rows = []
    for row in config.validation:
        sc = scenario_from_dict(row.scenario, source=f"{source}: validation[{row.label}]")
        seeds = (
            evaluation_seeds(config.seed, config.eval_episodes)
            if row.seed is None
            else [row.seed + k for k in range(config.eval_episodes)]
        )
        rows.append(EvaluationRow(row.label, sc, seeds))
    return rows


__all__ = [
    "SPLITS",
    "TRAIN_SPLITS",
    "assign_envs",
    "check_shared_spaces",
    "evaluation_rows",
    "parse_rows",
    "plan_suite_rows",
    "plan_validation",
    "train_rows",
    "training_scenarios",
]
