"""What a study leaves behind: the ranked trials table (``trials.md``, ``trials.csv``) and the best trial's
hyperparameters as a block for a hyperparameter file (``best_hyperparams.yaml``, keyed by scenario name, so
``lepton-sim train SCENARIO --hyperparams DIR/best_hyperparams.yaml`` trains with them).

Ranking: completed trials by their held-out objective, best first; then pruned trials by their last periodic
evaluation; then running ones; failed trials last, each with its reason.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from lepton_sim.io import write_atomic, write_text_atomic
from lepton_sim.report import one_line

TABLE, CSV_TABLE, BEST = "trials.md", "trials.csv", "best_hyperparams.yaml"
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed"}
_ORDER = ("complete", "pruned", "running", "waiting", "failed")


@dataclass
class TrialRow:
    number: int
    state: str  # complete | pruned | running | waiting | failed
    value: float  # the held-out objective (complete trials; NaN otherwise)
    last_eval: float  # the last periodic evaluation reported to the pruner (NaN if none)
    last_step: int | None  # its timesteps
    params: dict[str, Any]  # as sampled (categorical labels)
    seconds: float
    run_dir: str
    note: str = ""  # why it was pruned or failed
    hyperparams: dict[str, Any] = field(default_factory=dict, repr=False)  # everything the trial trained with


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """Every trial of the study (all processes), ranked."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = STATES.get(t.state.name, t.state.name.lower())
        last = t.last_step
        rows.append(
            TrialRow(
                number=t.number,
                state=state,
                value=float(t.value) if state == "complete" and t.value is not None else math.nan,
                last_eval=float(t.intermediate_values[last]) if last is not None else math.nan,
                last_step=last,
                params=dict(t.params),
                seconds=t.duration.total_seconds() if t.duration else math.nan,
                run_dir=str(t.user_attrs.get("run_dir", "")),
                note=str(t.user_attrs.get("note", "")),
                hyperparams=dict(t.user_attrs.get("hyperparams") or {}),
            )
        )

    def key(row: TrialRow) -> tuple[int, float, int]:
        score = row.value if row.state == "complete" else row.last_eval
        return (_ORDER.index(row.state) if row.state in _ORDER else len(_ORDER), -_or(score, -math.inf), row.number)

    return sorted(rows, key=key)


def to_markdown(rows: list[TrialRow], out: Path, title: str, summary: str) -> str:
    names = sorted({name for row in rows for name in row.params}, key=lambda n: (n.count("."), n))
    header = ["rank", "trial", "state", "objective", "last eval", "at step", *names, "time [s]", "note", "run folder"]
    lines = [f"# {title}", "", summary, "", _table_row(header), _table_row(["---"] * len(header))]
    for rank, row in enumerate(rows, 1):
        cells = [
            str(rank),
            str(row.number),
            row.state,
            _fmt(row.value),
            _fmt(row.last_eval),
            "-" if row.last_step is None else str(row.last_step),
            *(_fmt(row.params[n], ".4g") if n in row.params else "-" for n in names),
            _fmt(row.seconds, ".1f"),
            row.note or "",
            _relative(row.run_dir, out),
        ]
        lines.append(_table_row(cells))
    return "\n".join(lines) + "\n"


def write_csv(rows: list[TrialRow], path: Path) -> Path:
    names = sorted({name for row in rows for name in row.params})
    fields = ["rank", "trial", "state", "objective", "last_eval", "last_step", *names, "seconds", "note", "run_dir"]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(fields)
            for rank, row in enumerate(rows, 1):
                writer.writerow(
                    [
                        rank,
                        row.number,
                        row.state,
                        _csv(row.value),
                        _csv(row.last_eval),
                        "" if row.last_step is None else row.last_step,
                        *(row.params.get(n, "") for n in names),
                        _csv(row.seconds),
                        row.note,
                        row.run_dir,
                    ]
                )

    return write_atomic(path, write)


def best_hyperparams_yaml(best: TrialRow, scenario: str, comment: str) -> str:
    """The best trial's hyperparameters in the hyperparameter-file format (one entry, keyed by scenario)."""
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    return header + yaml.safe_dump({scenario: best.hyperparams}, sort_keys=False, default_flow_style=None)


def write_results(
    study: optuna.Study, out: Path, scenario: str, algo: str, objective: str, steps: int, episodes: int
) -> tuple[list[TrialRow], TrialRow | None, Path, Path | None]:
    """Write trials.md, trials.csv and (once a trial has completed) best_hyperparams.yaml; return the ranked
    rows, the best row, the table's path and the best file's path."""
    rows = trial_rows(study)
    best = next((row for row in rows if row.state == "complete"), None)
    counts = ", ".join(f"{sum(r.state == s for r in rows)} {s}" for s in _ORDER if any(r.state == s for r in rows))
    measure = "success rate" if objective == "success" else "mean return"
    summary = (
        f"Objective: held-out {measure} on {episodes} episodes after {steps} training steps (higher is better). "
        f"Trials: {counts or 'none yet'}."
        + (f" Best: trial {best.number} ({_fmt(best.value)}), hyperparameters in {BEST}." if best else "")
    )
    title = f"Study {study.study_name!r}: {algo} on {scenario}"
    table = write_text_atomic(out / TABLE, to_markdown(rows, out, title, summary))
    write_csv(rows, out / CSV_TABLE)
    best_file = None
    if best is not None:
        comment = (
            f"Best trial of study {study.study_name!r} (trial {best.number}): held-out {measure} {_fmt(best.value)} "
            f"on {episodes} episodes after {steps} steps.\n"
            f"lepton-sim train {scenario} --algo {algo} --hyperparams {out / BEST}"
        )
        best_file = write_text_atomic(out / BEST, best_hyperparams_yaml(best, scenario, comment))
    return rows, best, table, best_file


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(one_line(c).replace("|", "¦") for c in cells) + " |"


def _fmt(value: Any, spec: str = ".3g") -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else format(value, spec)
    return str(value)


def _csv(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def _or(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def _relative(path: str, out: Path) -> str:
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(out.resolve()))
    except ValueError:
        return path
