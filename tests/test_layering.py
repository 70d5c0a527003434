"""Layering you can see: the core runs without any learning back end, and Ray is an optional extra.
(import-linter checks the static imports in CI: scripts/check-code.sh and pyproject.toml's contracts.)"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
BACK_END_MODULES = ("stable_baselines3", "sb3_contrib", "ray", "torch")


def test_evaluating_a_baseline_loads_no_learning_back_end() -> None:
    code = (
        "import sys, lepton_sim\n"
        "lepton_sim.evaluate('scripted', scenario='driving/lane-keep', episodes=1, progress=False)\n"
        f"print(sorted(m for m in {BACK_END_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stdout


def test_ray_is_an_optional_extra_installed_by_the_setup_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("ray") for dep in project["dependencies"])
    assert project["optional-dependencies"]["rllib"] == ["ray[rllib]>=2.60,<2.61"]
    assert metadata.version("ray").startswith("2.60")  # scripts/setup-venv.sh installs lepton-sim[test,rllib]


def test_back_ends_and_baselines_are_found_through_entry_points() -> None:
    from lepton_sim import plugins
    from lepton_sim.backends import available_backends, get_backend

    assert "sb3" in available_backends() and get_backend("sb3").algorithms == ("ppo", "sac", "td3", "tqc")
    assert {"random", "driving", "manufacturing", "traffic"} <= set(plugins.entry_points(plugins.BASELINES))
