"""envs/ and agents/ install as lepton_sim.envs / lepton_sim.agents (never as top-level `envs`/`agents`),
in an editable install (this venv) and in a normal one (a wheel built from the repo)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {
    "lepton_sim": "lepton_sim",
    "lepton_sim.envs": "envs",
    "lepton_sim.agents": "agents",
    "lepton_sim.scenarios": "scenarios",
}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for package, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *rel.parts]) if rel.parts else package
            if "__pycache__" not in name:
                assert name in listed, f"{init.parent} is a package but {name} is missing from pyproject packages"
    for folder in (ROOT / "scenarios").iterdir():  # data-only folders must be listed too, or their YAML is lost
        if folder.is_dir() and any(folder.glob("*.yaml")):
            assert f"lepton_sim.scenarios.{folder.name}" in listed, folder


def test_editable_install_maps_envs_and_agents_into_lepton_sim() -> None:
    import lepton_sim.agents
    import lepton_sim.envs

    assert Path(lepton_sim.envs.__file__).resolve() == ROOT / "envs" / "__init__.py"
    assert Path(lepton_sim.agents.__file__).resolve() == ROOT / "agents" / "__init__.py"
    assert importlib.util.find_spec("envs") is None or "lepton" not in str(importlib.util.find_spec("envs").origin)
    assert importlib.util.find_spec("agents") is None or "lepton" not in str(importlib.util.find_spec("agents").origin)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "src"  # a clean copy: a stale build/ folder in the repo must not leak into the wheel
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "runs", "results", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("lepton_sim-*.whl"))


def test_wheel_has_no_top_level_envs_or_agents_and_ships_scenarios(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"lepton_sim"}
    assert "lepton_sim/envs/driving/__init__.py" in names
    assert "lepton_sim/policy.py" in names and "lepton_sim/agents/sb3/backend.py" in names
    assert "lepton_sim/agents/hyperparams/sb3/ppo.yaml" in names
    assert any(n.startswith("lepton_sim/scenarios/driving/") and n.endswith(".yaml") for n in names)


def test_normal_install_imports_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import lepton_sim, lepton_sim.envs, lepton_sim.baselines, lepton_sim.scenario as s;"
        "print(lepton_sim.envs.__file__); print(len(s.builtin_names()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    envs_file, n_scenarios = result.stdout.split()
    assert Path(envs_file).is_relative_to(target)
    assert int(n_scenarios) >= 4
