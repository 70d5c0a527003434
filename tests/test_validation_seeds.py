"""Model selection never sees a test episode: periodic evaluation seeds (any run seed) and every suite's validation
rows stay apart from every built-in suite's test seeds."""

from __future__ import annotations

import pytest

from lepton_sim.periodic_evaluation import VALIDATION_SEEDS, evaluation_seeds
from lepton_sim.scenario import builtin_names, is_suite, load_suite, suite_items

SUITES = [name for name in builtin_names() if is_suite(name)]
RUN_SEEDS = [0, 1, 7, 42, 49_990, 49_999, 50_000, 50_001, 99_999, 100_000, 150_000, 200_000, 123_456_789, 10**9]


def _seeds(suite: str, split: str) -> set[int]:
    return {seed for item in suite_items(load_suite(suite), split) for seed in item.seeds}  # type: ignore[arg-type]


def test_every_built_in_suite_is_checked() -> None:
    assert {"driving/standard", "manufacturing/standard", "manufacturing/inspection", "traffic/resco"} <= set(SUITES)


@pytest.mark.parametrize("suite", SUITES)
def test_periodic_evaluation_seeds_never_meet_the_test_seeds(suite: str) -> None:
    test = _seeds(suite, "test")
    assert test and min(test) >= VALIDATION_SEEDS.stop  # the built-in test rows start at 100000 or 200000
    for run_seed in RUN_SEEDS:
        for episodes in (1, 10, 100, 1000):
            seeds = evaluation_seeds(run_seed, episodes)
            assert len(set(seeds)) == episodes and all(s in VALIDATION_SEEDS for s in seeds)
            assert not test & set(seeds), (suite, run_seed, episodes)


@pytest.mark.parametrize("suite", SUITES)
def test_validation_rows_never_meet_the_test_seeds(suite: str) -> None:
    assert not _seeds(suite, "validation") & _seeds(suite, "test")


def test_suites_with_validation_rows_keep_them_in_the_validation_range() -> None:
    for suite in ("driving/standard", "manufacturing/standard"):
        seeds = _seeds(suite, "validation")
        assert seeds and all(s in VALIDATION_SEEDS for s in seeds)


def test_the_usual_run_seeds_keep_their_evaluation_seeds() -> None:
    """seed + 50000 + k where that stays below 100000: runs trained before the range was fixed resume on the same
    episodes."""
    assert evaluation_seeds(0, 3) == [50_000, 50_001, 50_002]
    assert evaluation_seeds(3, 2) == [50_003, 50_004]
    assert evaluation_seeds(49_998, 3) == [99_998, 99_999, 50_000]  # wraps instead of reaching the test seeds
