"""Experiments over several training seeds: ``train --seeds`` writes one experiment folder (a run per seed, the
same whether trained in sequence or by parallel workers), ``evaluate EXP`` writes each seed's ordinary report and
their aggregate (IQM and mean over seeds with stratified-bootstrap intervals, checked against scipy and hand
computations), ``plot EXP`` draws curves over seeds, an interrupted experiment resumes, bad input is one line."""

from __future__ import annotations

import io
import json
import math
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from scipy import stats

import lepton_sim
from lepton_sim.aggregate import iqm, stratified_bootstrap
from lepton_sim.cli import main
from lepton_sim.experiments import evaluate_experiment, is_experiment, seed_reports, seed_runs
from lepton_sim.runs import RunFolder

SCENARIO = "driving/lane-keep"
TINY = ["--steps", "128", "--num-envs", "2", "--eval-freq", "64", "--eval-episodes", "2"]
TINY += ["--set", "n_steps=32", "--set", "batch_size=64", "--no-progress"]
LEPTON = str(Path(sys.executable).with_name("lepton-sim"))
SUITE = """suite: true
description: two lane-keep rows and one the continuous-action policy cannot drive
train:
  - {scenario: driving/lane-keep, episodes: 2, seed: 0}
test:
  - {scenario: driving/lane-keep, episodes: 2, seed: 100000}
  - {scenario: driving/lane-keep, episodes: 2, seed: 200000, label: sharp, params: {lanes: 1, curvature: [0.02, 0.03]}}
  - {scenario: driving/dense-traffic, episodes: 2, seed: 100000}
"""


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    """Inference on these tiny networks with several torch threads is many times slower on a busy machine
    (threads wait on each other); training sets one thread itself. Restored for the tests after these."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ statistics
def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm([1, 2, 3, 4, 100]) == 3.0  # int(0.25 * 5) = 1 cut at each end: mean of 2, 3, 4
    assert iqm([4, 1, 3, 2]) == 2.5  # one cut at each end: mean of 2 and 3
    assert iqm([0.0, 1.0]) == 0.5  # fewer than 4 scores: nothing is cut
    assert iqm(list(range(8)) + [1000.0]) == pytest.approx(np.mean([2, 3, 4, 5, 6]))
    x = np.random.default_rng(3).normal(size=37)
    assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))


def test_bootstrap_over_seeds_is_scipys_percentile_bootstrap() -> None:
    x = np.array([0.1, 0.5, 0.35, 0.9, 0.2, 0.4, 0.45])
    for statistic, fn in (("mean", np.mean), ("iqm", lambda a, axis: stats.trim_mean(a, 0.25, axis=axis))):
        expected = stats.bootstrap(
            (x,), fn, method="percentile", n_resamples=4000, rng=np.random.default_rng(0), vectorized=True
        ).confidence_interval
        estimate, low, high = stratified_bootstrap([x], statistic, reps=4000, seed=0)
        assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
        assert estimate == pytest.approx(fn(x, axis=-1))


def test_bootstrap_hand_computed_cases() -> None:
    # two seeds: a resample's mean is a, (a+b)/2 or b with probabilities 1/4, 1/2, 1/4, so the 95% interval is [a, b]
    assert stratified_bootstrap([[0.2, 0.6]], "mean", reps=2000) == pytest.approx((0.4, 0.2, 0.6))
    assert stratified_bootstrap([[0.7]], "iqm") == (0.7, 0.7, 0.7)  # one seed: no spread to resample
    assert all(math.isnan(v) for v in stratified_bootstrap([[math.nan]], "mean"))
    # strata: seeds are resampled within each task, so tasks with constant scores add no spread of their own
    est, low, high = stratified_bootstrap([[0.0, 0.0], [1.0, 1.0]], "mean")
    assert (est, low, high) == (0.5, 0.5, 0.5)  # a plain bootstrap over the 4 pooled scores would spread
    # only the first task's seeds vary: a resample's mean is (a + b + 1.5) / 5, 0.3, 0.5 or 0.7 (1/4, 1/2, 1/4)
    assert stratified_bootstrap([[0.0, 1.0], [0.5, 0.5, 0.5]], "mean", reps=4000) == pytest.approx((0.5, 0.3, 0.7))
    assert stratified_bootstrap([[0.1, 0.2, 0.9]], "mean") == stratified_bootstrap([[0.1, 0.2, 0.9]], "mean")


# ------------------------------------------------------------------------------------------------ training
def _train(exp: Path, *extra: str) -> None:
    assert main(["train", SCENARIO, "--seeds", "0", "1", *TINY, "--out", str(exp), *extra]) == 0


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = tmp_path_factory.mktemp("sequential") / "exp"
    _train(exp)
    return exp


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = tmp_path_factory.mktemp("parallel") / "exp"
    _train(exp, "--workers", "2")
    return exp


def _weights(model: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(model) as zf:
        return torch.load(io.BytesIO(zf.read("policy.pth")), weights_only=True)


def _curve(run: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in RunFolder(run).read_evaluations()]


def test_an_experiment_folder_holds_one_ordinary_run_per_seed(experiment: Path) -> None:
    data = yaml.safe_load((experiment / "experiment.yaml").read_text())
    assert {k: data[k] for k in ("kind", "scenario", "algo", "backend", "seeds", "runs")} == {
        "kind": "experiment",
        "scenario": SCENARIO,
        "algo": "ppo",
        "backend": "sb3",
        "seeds": [0, 1],
        "runs": {0: "s0", 1: "s1"},
    }
    assert is_experiment(experiment) and not is_experiment(experiment / "s0")
    assert seed_runs(experiment) == {0: experiment / "s0", 1: experiment / "s1"}
    for seed in (0, 1):
        run = RunFolder(experiment / f"s{seed}")
        assert run.read_config().seed == seed and run.final_model.is_file()
        assert [int(r["timesteps"]) for r in run.read_evaluations()] == [64, 128]
    assert _curve(experiment / "s0") != _curve(experiment / "s1")  # seeds differ


def test_workers_train_the_same_runs_as_a_sequence(experiment: Path, parallel: Path) -> None:
    for seed in (0, 1):
        one, other = experiment / f"s{seed}", parallel / f"s{seed}"
        assert _curve(one) == _curve(other)
        a, b = _weights(one / "model.zip"), _weights(other / "model.zip")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert [s for s, _ in RunFolder(one).checkpoints()] == [s for s, _ in RunFolder(other).checkpoints()]


# ------------------------------------------------------------------------------------------------ evaluation
def _plain(value: Any) -> Any:
    """Report data with NaN as None and tuples as lists, so equal reports compare equal."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def test_evaluate_writes_per_seed_reports_and_their_aggregate(
    experiment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "two-rows.yaml"
    suite.write_text(SUITE)
    assert main(["evaluate", str(experiment), "--suite", str(suite), "--no-progress"]) == 0
    out = capsys.readouterr().out
    eval_dir = experiment / "eval" / "two-rows-test"
    assert (eval_dir / "report.json").is_file() and (eval_dir / "report.md").is_file()
    assert (eval_dir / "report.md").read_text() in out

    reports = seed_reports(eval_dir)
    assert sorted(reports) == [0, 1]
    for seed, report in reports.items():  # each seed's report is the run folder's own evaluation
        alone = lepton_sim.evaluate(str(experiment / f"s{seed}"), suite=str(suite), split="test", progress=False)
        assert report.policy == alone.policy and _plain(report.to_dict()["rows"]) == _plain(alone.to_dict()["rows"])
        assert (eval_dir / "seeds" / f"s{seed}" / "report.md").is_file()
    assert [e.seed for e in reports[0].rows[0].episodes] == [e.seed for e in reports[1].rows[0].episodes]

    aggregate = json.loads((eval_dir / "report.json").read_text())
    assert aggregate["kind"] == "experiment-report" and aggregate["seeds"] == [0, 1]
    rows = aggregate["rows"]
    assert [r["label"] for r in rows] == ["driving/lane-keep", "sharp", "driving/dense-traffic"]
    assert rows[2]["skipped"] and rows[2]["aggregate"]["success_rate"] is None
    for i, row in enumerate(rows[:2]):
        seed_rows = [reports[s].rows[i] for s in (0, 1)]
        expected = {
            "success_rate": [r.success_rate for r in seed_rows],
            "return_mean": [r.return_mean for r in seed_rows],
            "length_mean": [r.length_mean for r in seed_rows],
        }
        for name, values in expected.items():
            for statistic in ("iqm", "mean"):
                assert row["aggregate"][name][statistic] == pytest.approx(
                    list(stratified_bootstrap([values], statistic))  # type: ignore[arg-type]
                ), (row["label"], name, statistic)
        for metric, agg in row["aggregate"]["metrics"].items():
            values = [r.metrics[metric][0] for r in seed_rows]
            assert _plain(agg["mean"]) == _plain(list(stratified_bootstrap([values], "mean"))), metric
        assert row["per_seed"]["1"]["return_mean"] == pytest.approx(seed_rows[1].return_mean)
    overall = aggregate["overall"]["success_rate"]["iqm"]
    tasks = [[reports[s].rows[i].success_rate for s in (0, 1)] for i in (0, 1)]
    assert overall == pytest.approx(list(stratified_bootstrap(tasks, "iqm")))
    markdown = (eval_dir / "report.md").read_text()
    for text in ("| s0 |", "| s1 |", "**IQM of 2**", "**mean of 2**", "all scenarios", "stratified bootstrap"):
        assert text in markdown, text

    # from Python, on one scenario: one row, the same episodes as the CLI gives, nothing written without out
    report = evaluate_experiment(experiment, scenario=SCENARIO, episodes=2, progress=False)
    assert len(report.rows) == 1 and report.overall_success is None and report.seeds == [0, 1]
    assert [r.seeds for r in report.rows[0].seed_rows.values()] == [[100000, 100001]] * 2


# ------------------------------------------------------------------------------------------------ plots, rollouts
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF"), (".png", b"\x89PNG")])
def test_plot_overlays_experiments_aggregated_over_seeds(
    experiment: Path, parallel: Path, tmp_path: Path, suffix: str, magic: bytes
) -> None:
    out = tmp_path / f"curves{suffix}"
    assert main(["plot", str(experiment), str(parallel), str(experiment / "s0"), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    if suffix == ".svg":
        text = out.read_text()
        for label in ("env steps", "success rate", "IQM of 2 seeds", "ppo s0 (s0)"):
            assert label in text, label
        assert main(["plot", str(experiment), "--aggregate", "mean", "--out", str(out)]) == 0
        assert "mean of 2 seeds" in out.read_text()


def test_rollout_of_an_experiment_uses_a_seed_run(
    experiment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "one.gif"
    args = ["rollout", str(experiment), "--scenario", SCENARIO, "--out", str(video), "--seed", "5"]
    assert main(args) == 0
    assert "rolling out its first seed's run, s0" in capsys.readouterr().out and video.is_file()
    assert main([*args, "--seed-run", "7"]) == 1
    assert "--seed-run 7: " in capsys.readouterr().err
    assert main(["rollout", str(experiment / "s0"), "--scenario", SCENARIO, "--seed-run", "0"]) == 1
    assert "picks a training seed of an experiment folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ resuming
def test_resume_starts_the_seeds_never_begun_and_finishes_the_others(
    parallel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(parallel, exp)
    shutil.rmtree(exp / "s1")  # never begun (the experiment was stopped before its turn)
    (exp / "s0" / "model.zip").unlink()  # stopped after its last checkpoint
    assert main(["train", "--resume", str(exp), "--no-progress"]) == 0
    a, b = _weights(exp / "s1" / "model.zip"), _weights(parallel / "s1" / "model.zip")
    assert all(torch.equal(a[k], b[k]) for k in a)  # started from experiment.yaml: the same run as before
    assert (exp / "s0" / "model.zip").is_file() and (exp / "s0" / "logs" / "part1").is_dir()
    capsys.readouterr()
    assert main(["train", "--resume", str(exp), "--no-progress"]) == 0  # all finished: nothing is touched
    assert "every seed's run is finished" in capsys.readouterr().err
    assert not (exp / "s0" / "logs" / "part2").exists()


def _child_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as from a terminal (a shell's background job ignores Ctrl-C)


@pytest.mark.parametrize(
    "workers, sig",
    [("2", signal.SIGINT), ("1", signal.SIGTERM)],
    ids=["ctrl-c-parallel", "sigterm-in-sequence"],
)
def test_an_interrupted_experiment_is_consistent_and_resumes(tmp_path: Path, workers: str, sig: int) -> None:
    exp = tmp_path / "exp"
    long = [*TINY[TINY.index("--num-envs") :], "--steps", "200000", "--eval-freq", "0", "--checkpoint-freq", "64"]
    proc = subprocess.Popen(
        [LEPTON, "train", SCENARIO, "--seeds", "3", "4", "--workers", workers, *long, "--out", str(exp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_child_setup,
    )
    running = ("s3", "s4") if workers == "2" else ("s3",)  # in sequence, seed 4 waits for seed 3
    deadline = time.monotonic() + 90
    while not all(RunFolder(exp / s).checkpoints() for s in running):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(sig)  # SIGINT: what Ctrl-C at the terminal does (the runs are in their own process groups)
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired as timeout:
        left = subprocess.run(["ps", "-eo", "pid,ppid,pgid,stat,args"], capture_output=True, text=True).stdout
        proc.kill()
        pytest.fail(f"no exit after {sig!r} (exit {proc.poll()}); stderr: {timeout.stderr!r}; processes:\n{left}")
    assert proc.returncode == 130, err[-2000:]
    assert err.count("interrupted at ") == len(running), err[-2000:]
    assert "continue with: lepton-sim train --resume " + str(exp) in err
    if workers == "1":  # the seed not begun has no folder; resume starts it from experiment.yaml
        assert "not begun: seed 4" in err and not (exp / "s4").exists()
    saved = {s: RunFolder(exp / s).latest_checkpoint() for s in running}
    assert all(ckpt is not None and (exp / s / "model.zip").is_file() for s, ckpt in saved.items())
    target = max(ckpt[0] for ckpt in saved.values() if ckpt) + 64
    assert main(["train", "--resume", str(exp), "--steps", str(target), "--workers", workers, "--no-progress"]) == 0
    for s in ("s3", "s4"):
        run = RunFolder(exp / s)
        latest = run.latest_checkpoint()
        assert latest is not None and latest[0] >= target and run.final_model.is_file()
        assert run.read_config().steps == target and (run.path / "logs" / "part1").is_dir() == (s in running)
    assert yaml.safe_load((exp / "experiment.yaml").read_text())["steps"] == target
    assert not any(p.name.startswith(".") for p in exp.rglob("*"))  # no temporary file left behind


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0", "1", "0"], "--seeds: 0 given more than once"),
        (["--seeds", "0", "--seed", "1"], "give --seeds (an experiment: one run per seed) or --seed (one run)"),
        (["--seeds", "0", "--set", "seed=3"], "--seeds gives the training seeds; drop --set seed"),
        (["--workers", "2"], "--workers applies to --seeds"),
        (["--seeds", "0", "1", "--set", "learning_rat=1"], "unknown hyperparameter(s) learning_rat"),
    ],
)
def test_bad_experiment_settings_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "exp"
    assert main(["train", SCENARIO, *args, "--steps", "64", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_an_existing_experiment_is_refused_and_kept(
    experiment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (experiment / "experiment.yaml").read_text()
    for args in (["--seeds", "5", "6"], []):  # a new experiment or a single run into it
        assert main(["train", SCENARIO, *args, *TINY, "--out", str(experiment)]) == 1
        err = capsys.readouterr().err
        assert "holds an experiment; choose another --out or --resume it" in err and len(err.splitlines()) == 1
    assert main(["train", "--resume", str(experiment), "--seeds", "0"]) == 1
    assert "drop --seeds" in capsys.readouterr().err
    assert (experiment / "experiment.yaml").read_text() == before and not (experiment / "s5").exists()
    with pytest.raises(SystemExit) as exit_status:  # argparse: a malformed command line
        main(["plot", str(experiment), "--aggregate", "median"])
    assert exit_status.value.code == 2 and "invalid choice: 'median'" in capsys.readouterr().err

    unfinished = tmp_path / "unfinished"
    shutil.copytree(experiment, unfinished, ignore=shutil.ignore_patterns("eval"))
    (unfinished / "s1" / "model.zip").unlink()
    assert main(["evaluate", str(unfinished), "--scenario", SCENARIO, "--episodes", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "seed 1's run has no model.zip" in err and "--resume" in err and len(err.splitlines()) == 1
    assert not (unfinished / "eval").exists()
    with pytest.raises(lepton_sim.LeptonError, match="not an experiment folder"):
        seed_runs(tmp_path)
    with pytest.raises(lepton_sim.LeptonError, match="no per-seed reports"):
        seed_reports(tmp_path)


def test_the_python_api_refuses_the_same_input() -> None:
    with pytest.raises(lepton_sim.LeptonError, match="given more than once"):
        lepton_sim.train_experiment(SCENARIO, seeds=[2, 2])
    with pytest.raises(lepton_sim.LeptonError, match="at least one seed"):
        lepton_sim.train_experiment(SCENARIO, seeds=[])
    with pytest.raises(lepton_sim.LeptonError, match="workers must be a whole number >= 1"):
        lepton_sim.train_experiment(SCENARIO, seeds=[0], workers=0)
