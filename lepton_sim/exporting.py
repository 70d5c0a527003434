"""``lepton-sim export``: a trained model as a self-describing folder (lepton_sim.export_format) that any ONNX
runtime (or torch.jit) runs without lepton-sim, its back end or a pickle.

The run's back end writes the graph; this module writes spec.json around it (spaces, scenario, training
configuration, versions, the source model's checksum, the multi-agent padding) and checks the export before it
is put in place: on sampled observations, at batch sizes 1 and 64, the exported graph's actions must equal the
back end's own policy's (``load_policy(run).act``): exactly for discrete actions, within 1e-5 otherwise. The
folder appears whole or not at all.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from lepton_sim.backends import get_backend
from lepton_sim.errors import LeptonError
from lepton_sim.export_format import EXPORT_FORMAT, FORMATS, SPEC, GraphSpec, SharedAgents, is_export
from lepton_sim.exported import ExportedPolicy
from lepton_sim.io import current_umask, write_json_atomic
from lepton_sim.policy import Policy
from lepton_sim.runs import META, RunFolder, git_commit, package_versions
from lepton_sim.space_json import space_to_json
from lepton_sim.training_config import TrainConfig

CHECK_SAMPLES = 64
TOLERANCE = 1e-5  # largest difference allowed between exported and original continuous actions
EXPORT_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


def default_out(source: str | Path, fmt: str) -> Path:
    """``<run>/export/<format>`` (beside a model file: ``<run>/export/<model stem>-<format>``)."""
    path = Path(source)
    if path.is_dir():
        return path / "export" / fmt
    run = RunFolder.containing(path)
    return (run.path if run else path.parent) / "export" / f"{path.stem}-{fmt}"


def export_policy(source: str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Path:
    """Export the run folder's final model (or a model file inside a run folder) as format ``fmt`` into ``out``
    (default :func:`default_out`); an existing export there is replaced. Returns the export folder."""
    if fmt not in FORMATS:
        raise LeptonError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    config, run, model_path = _trained_model(Path(source).expanduser())
    backend = get_backend(config.backend)
    if fmt not in backend.export_formats:
        allowed = ", ".join(backend.export_formats) or "none"
        raise LeptonError(f"the {backend.name} back end cannot export {fmt} (it exports: {allowed})")
    target = Path(out).expanduser() if out is not None else default_out(source, fmt)
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        graph = backend.export(model_path, config, fmt, staging)
        spec = _spec(graph, config, run, model_path)
        write_json_atomic(staging / SPEC, spec)
        spec["check"] = _check(ExportedPolicy.load_graph(staging), backend.load_policy(model_path, config, "cpu"))
        write_json_atomic(staging / SPEC, spec)
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's folder is private; an export is not
        _put_in_place(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _trained_model(path: Path) -> tuple[TrainConfig, RunFolder, Path]:
    """The run's configuration, the run folder and the model file to export (the final model of a run folder)."""
    if not path.exists():
        raise LeptonError(f"{path}: no such run folder or model file")
    if is_export(path):
        raise LeptonError(f"{path} is already an exported policy; export its run folder instead")
    if RunFolder.is_run(path):
        run = RunFolder(path)
        config = run.read_config()
        run = get_backend(config.backend).run_folder(path)
        model_path = run.final_model
        if not model_path.exists():
            raise LeptonError(
                f"{path}: run folder has no {model_path.name} (training unfinished?); export a checkpoint "
                f"instead, e.g. {run.checkpoints_dir}/<file>, or resume it"
            )
        return config, run, model_path
    owner = RunFolder.containing(path)
    if owner is None:
        raise LeptonError(
            f"{path} is not inside a lepton-sim run folder (no config.yaml): the network to export is described "
            "by the run's configuration; export the run folder or a model file inside it"
        )
    return owner.read_config(), owner, path


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise LeptonError(f"--out {target}: is a file, expected a folder")
    if target.is_dir() and any(target.iterdir()) and not is_export(target):
        raise LeptonError(f"--out {target}: folder is not empty and holds no export to replace; choose another --out")


def _put_in_place(staging: Path, target: Path) -> None:
    """Rename the finished folder over ``target`` (an earlier export there goes once the new one is in place)."""
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- spec.json
def _spec(graph: GraphSpec, config: TrainConfig, run: RunFolder, model_path: Path) -> dict[str, Any]:
    shared = _shared_agents(graph, config) if config.multi_agent == "shared" else None
    meta = _read_json(run.path / META)
    versions = package_versions()
    for name in EXPORT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "format": EXPORT_FORMAT,
        "exported": _dt.datetime.now().isoformat(timespec="seconds"),
        "how_to_run": "feed graph.inputs (batched along the first axis, in the dtypes given) to graph.file; its "
        "output is the final action: normalisation and action post-processing are inside the graph "
        "(graph.includes, in order)",
        "graph": graph.to_json(),
        # what the exported policy acts on: one env's observation and action (the joint ones for a shared policy)
        "observation_space": space_to_json(shared.joint_observation_space if shared else graph.observation_space),
        "action_space": space_to_json(shared.joint_action_space if shared else graph.action_space),
        "deterministic": True,
        "recurrent": False,
        "multi_agent": shared.to_json() if shared else None,
        "scenario": config.scenario,
        "training_config": config.to_file_data(),
        "source": {
            "run": str(run.path.resolve()),
            "model": str(model_path.resolve().relative_to(run.path.resolve())),
            "sha256": _sha256(model_path),
        },
        "versions": {"training": meta.get("versions", {}), "export": versions},
        "git": {"training": meta.get("git"), "export": git_commit()},
    }


def _shared_agents(graph: GraphSpec, config: TrainConfig) -> SharedAgents:
    """The joint env's spaces and each agent's action count, for a policy shared by every agent."""
    from lepton_sim.make import make
    from lepton_sim.scenario import scenario_from_dict

    scenario = scenario_from_dict(config.scenario, source="config.yaml scenario")
    env = make(scenario)
    try:
        joint_obs, joint_act = env.observation_space, env.action_space
    finally:
        env.close()
    if isinstance(joint_act, spaces.MultiDiscrete):
        num_actions = [int(n) for n in np.asarray(joint_act.nvec).ravel()]
    elif isinstance(joint_act, spaces.Discrete):
        num_actions = [int(joint_act.n)]
    else:
        raise LeptonError(f"a shared policy acts in Discrete or MultiDiscrete action spaces, not {joint_act}")
    width = int(graph.observation_space.shape[0]) if graph.observation_space.shape else 0
    return SharedAgents(width, num_actions, joint_obs, joint_act)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- the check
def _check(exported: Policy, original: Policy, samples: int = CHECK_SAMPLES) -> dict[str, Any]:
    """Both policies act on the same sampled observations (one batch of ``samples``, then each row alone for
    the first few); refuse the export where they disagree."""
    if exported.observation_space is None:
        raise LeptonError("the exported graph declares no observation space")
    batch = sample_observations(exported.observation_space, samples)
    mine, theirs = np.asarray(exported.act(batch)[0]), np.asarray(original.act(batch)[0])
    singles = [_row(batch, i) for i in range(min(4, samples))]
    mine_1 = np.concatenate([np.asarray(exported.act(o)[0]) for o in singles])
    theirs_1 = np.concatenate([np.asarray(original.act(o)[0]) for o in singles])
    if mine.shape != theirs.shape or mine_1.shape != theirs_1.shape:
        raise LeptonError(f"the exported graph gives actions of shape {mine.shape}, the policy {theirs.shape}")
    discrete = np.issubdtype(theirs.dtype, np.integer)
    diff = max(_max_diff(mine, theirs), _max_diff(mine_1, theirs_1))
    if (discrete and diff != 0) or not diff <= TOLERANCE:
        raise LeptonError(
            f"the exported graph's actions differ from the policy's by up to {diff:.3g} on {samples} sampled "
            f"observations (allowed: {0 if discrete else TOLERANCE}); nothing was exported"
        )
    return {"observations": samples, "batch_sizes": [1, samples], "max_abs_diff": diff, "discrete": discrete}


def sample_observations(space: gymnasium.Space, n: int, seed: int = 0) -> Any:
    """``n`` observations of ``space`` stacked along a first axis (per key for a Dict space)."""
    space = copy.deepcopy(space)
    space.seed(seed)
    rows = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        return {k: np.stack([r[k] for r in rows]) for k in space.spaces}
    return np.stack(rows)


def _row(batch: Any, i: int) -> Any:
    if isinstance(batch, dict):
        return {k: v[i : i + 1] for k, v in batch.items()}
    return batch[i : i + 1]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
