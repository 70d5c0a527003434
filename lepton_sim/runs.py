"""Run folders: everything needed to reproduce, evaluate and resume a training run lives in one directory, and
this module is the only one that spells its layout.

Layout (rl-baselines3-zoo's, adapted; ``<model>`` is the back end's model file or folder, ``.zip`` for SB3)::

    runs/<scenario>/<algo>-s<seed>-<time>/
        config.yaml      the training configuration (lepton_sim.training_config.TrainConfig)
        command.txt      the command line that started (or resumed) the run
        meta.json        package versions, git commit, Python, platform, start time, device used
        model<sfx>       final model           best_model<sfx>   best periodic evaluation
        checkpoints/     ckpt_<steps>_steps<sfx> (+ back-end state beside it: normalisation stats, replay buffer)
        evaluations.csv  periodic evaluation: timesteps, return, success rate, length, wall time (a resume
                         drops the rows past the checkpoint it starts from: they are evaluated again)
        evaluation_rows.csv  a suite run's periodic evaluation per validation row: timesteps, label, episodes,
                         return, success rate, length (truncated on resume alike)
        logs/part<k>/    the back end's own logs (k counts resumes): progress.csv, monitor.csv, TensorBoard
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import platform
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lepton_sim.errors import LeptonError
from lepton_sim.io import uninterrupted, write_atomic, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from lepton_sim.training_config import TrainConfig

TRACKED_PACKAGES = (
    "lepton-sim",
    "gymnasium",
    "numpy",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "pybullet",
    "eclipse-sumo",
    "libsumo",
    "sumo-rl",
    "pettingzoo",
    "ray",
)
CONFIG = "config.yaml"
COMMAND = "command.txt"
META = "meta.json"
EVALUATIONS = "evaluations.csv"
EVALUATION_FIELDS = ["timesteps", "mean_return", "std_return", "success_rate", "mean_length", "wall_time_s"]
EVALUATION_ROWS = "evaluation_rows.csv"
EVALUATION_ROW_FIELDS = ["timesteps", "label", "episodes", "mean_return", "success_rate", "mean_length"]
CHECKPOINTS = "checkpoints"
LOGS = "logs"
MONITOR = "monitor.csv"
FINAL_STEM, BEST_STEM = "model", "best_model"
_CHECKPOINT_RE = re.compile(r"^ckpt_(\d+)_steps")


class RunFolder:
    """One run folder. ``model_suffix`` is the back end's model file suffix (``.zip``; ``""`` for a folder)."""

    def __init__(self, path: str | Path, model_suffix: str = ".zip") -> None:
        self.path = Path(path)
        self.model_suffix = model_suffix

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # --------------------------------------------------------------------------------------- locating runs
    @staticmethod
    def is_run(path: str | Path) -> bool:
        """A folder is a run folder when it holds a training configuration (not merely when it is a folder)."""
        return (Path(path) / CONFIG).is_file()

    @classmethod
    def containing(cls, model_path: str | Path) -> "RunFolder | None":
        """The run folder a model file (final, best or checkpoint) belongs to, if any."""
        path = Path(model_path)
        for candidate in (path.parent, path.parent.parent):
            if cls.is_run(candidate) and (candidate == path.parent or path.parent.name == CHECKPOINTS):
                return cls(candidate, _suffix_of(path))
        return None

    @classmethod
    def create(cls, path: str | Path, model_suffix: str = ".zip") -> "RunFolder":
        """A new run folder; refuses one that already holds a run."""
        run = cls(path, model_suffix)
        if cls.is_run(run.path):
            raise LeptonError(f"{run.path} already holds a run; choose another --out or --resume it")
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @staticmethod
    def default_path(scenario_name: str, algo: str, seed: int, root: str | Path = "runs") -> Path:
        """``<root>/<scenario>/<algo>-s<seed>-<time>``, made unique with a suffix."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(root) / scenario_name.replace("/", "-") / f"{algo}-s{seed}-{stamp}"
        suffix = 1
        while path.exists():
            path = path.with_name(f"{algo}-s{seed}-{stamp}-{suffix}")
            suffix += 1
        return path

    # --------------------------------------------------------------------------------------- paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def command_path(self) -> Path:
        return self.path / COMMAND

    @property
    def meta_path(self) -> Path:
        return self.path / META

    @property
    def evaluations_path(self) -> Path:
        return self.path / EVALUATIONS

    @property
    def evaluation_rows_path(self) -> Path:
        return self.path / EVALUATION_ROWS

    @property
    def final_model(self) -> Path:
        return self.path / f"{FINAL_STEM}{self.model_suffix}"

    @property
    def best_model(self) -> Path:
        return self.path / f"{BEST_STEM}{self.model_suffix}"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def checkpoint(self, steps: int) -> Path:
        return self.checkpoints_dir / f"ckpt_{int(steps)}_steps{self.model_suffix}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The run's checkpoints as (timesteps, path), oldest first."""
        found = []
        for path in self.checkpoints_dir.glob(f"ckpt_*_steps{self.model_suffix}"):
            match = _CHECKPOINT_RE.match(path.name)
            if match and path.name == f"ckpt_{match.group(1)}_steps{self.model_suffix}":
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def replay_buffer(self, steps: int) -> Path:
        return self.checkpoints_dir / f"replay_buffer_{int(steps)}.pkl"

    def replay_buffers(self) -> list[Path]:
        return sorted(self.checkpoints_dir.glob("replay_buffer_*.pkl"))

    @staticmethod
    def companion(model_path: Path, name: str, suffix: str) -> Path:
        """A file that belongs to one model file: ``<stem>_<name><suffix>`` beside it (normalisation stats)."""
        return model_path.with_name(f"{_stem_of(model_path)}_{name}{suffix}")

    def log_parts(self) -> list[Path]:
        """``logs/part<k>`` folders, in the order the run (and its resumes) wrote them."""
        return sorted((self.path / LOGS).glob("part*"), key=lambda p: int(p.name[4:] or 0))

    def new_log_dir(self) -> Path:
        """The next ``logs/part<k>`` (part0 for a new run, one more per resume), created."""
        path = self.path / LOGS / f"part{len(self.log_parts())}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def monitor_files(self) -> list[Path]:
        """Per-part training-episode logs (SB3's monitor.csv format), in order."""
        return [part / MONITOR for part in self.log_parts() if (part / MONITOR).is_file()]

    # --------------------------------------------------------------------------------------- files
    def read_config(self) -> "TrainConfig":
        from lepton_sim.training_config import TrainConfig

        if not self.is_run(self.path):
            raise LeptonError(f"{self.path} is not a lepton-sim run folder (no {CONFIG})")
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise LeptonError(f"{self.config_path}: cannot read the run's configuration: {err}") from None
        return TrainConfig.from_file_data(data, str(self.config_path))

    def write_record(self, config: "TrainConfig", resumed: bool = False) -> None:
        """Write config.yaml, command.txt and meta.json (a resume appends its command and its meta)."""
        write_text_atomic(self.config_path, yaml.safe_dump(config.to_file_data(), sort_keys=False))
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\n"
        previous = self.command_path.read_text() if resumed and self.command_path.exists() else ""
        write_text_atomic(self.command_path, previous + command)
        meta: dict[str, Any] = {
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
            "versions": package_versions(),
            "git": git_commit(),
            "platform": platform.platform(),
            "argv": sys.argv,
        }
        if resumed and self.meta_path.exists():
            history = json.loads(self.meta_path.read_text())
            meta = {**history, "resumed": [*history.get("resumed", []), meta]}
        write_json_atomic(self.meta_path, meta)

    def record_device(self, device: str) -> None:
        """Note in meta.json the device training actually ran on (config.yaml keeps the one asked for)."""
        meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        target = meta["resumed"][-1] if meta.get("resumed") else meta
        target["device_used"] = device
        write_json_atomic(self.meta_path, meta)

    def read_evaluations(self) -> list[dict[str, str]]:
        if not self.evaluations_path.is_file():
            return []
        with self.evaluations_path.open(newline="") as f:
            return list(csv.DictReader(f))

    def append_evaluation(self, row: dict[str, Any]) -> None:
        """One row of evaluations.csv (the learning curve that ``lepton-sim plot`` reads); a Ctrl-C waits for
        the row to be written whole."""
        _append_csv(self.evaluations_path, EVALUATION_FIELDS, [row])

    def append_row_evaluations(self, rows: list[dict[str, Any]]) -> None:
        """One evaluation's lines of evaluation_rows.csv, one per validation row of a suite run."""
        _append_csv(self.evaluation_rows_path, EVALUATION_ROW_FIELDS, rows)

    def read_row_evaluations(self) -> list[dict[str, str]]:
        if not self.evaluation_rows_path.is_file():
            return []
        with self.evaluation_rows_path.open(newline="") as f:
            return list(csv.DictReader(f))

    def truncate_evaluations(self, steps: int) -> int:
        """Drop the evaluations.csv rows past ``steps``, the checkpoint a resume starts from, and rows cut short
        by a kill mid-write: the resumed run evaluates those steps again, so they would appear twice. Written
        atomically; returns the number of rows dropped (evaluation_rows.csv is truncated alike)."""
        _truncate_csv(self.evaluation_rows_path, EVALUATION_ROW_FIELDS, steps)
        return _truncate_csv(self.evaluations_path, EVALUATION_FIELDS, steps)

    def last_wall_time(self) -> float:
        """Wall time of the last periodic evaluation, so a resumed run's curve continues on the same clock."""
        rows = self.read_evaluations()
        return float(rows[-1]["wall_time_s"]) if rows else 0.0


def _append_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    with uninterrupted():
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerows(rows)


def _truncate_csv(path: Path, default_fields: list[str], steps: int) -> int:
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = list(reader.fieldnames or default_fields)
    if "timesteps" not in fields:
        fields = default_fields  # the header itself was cut short: no row can be read back
    keep = [row for row in rows if (done := _evaluation_steps(row, fields)) is not None and done <= steps]
    if len(keep) == len(rows):
        return 0

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(keep)

    write_atomic(path, write)
    return len(rows) - len(keep)


def _evaluation_steps(row: dict[Any, Any], fields: list[str]) -> int | None:
    """The timesteps of a whole evaluations.csv row; None for a row a kill cut short (or left unreadable)."""
    if None in row or any(row.get(field) is None for field in fields):
        return None
    try:
        return int(float(row["timesteps"]))
    except (KeyError, ValueError):
        return None


def _suffix_of(model_path: Path) -> str:
    return "" if model_path.is_dir() else model_path.suffix


def _stem_of(model_path: Path) -> str:
    return model_path.name if model_path.is_dir() else model_path.stem


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> dict[str, Any]:
    """The lepton-sim source's git commit and whether it had uncommitted changes (None outside a checkout)."""
    src = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=src,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}
