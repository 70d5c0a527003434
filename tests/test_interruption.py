"""Interrupting training loses nothing: a real ``lepton-sim train`` subprocess gets a real SIGINT, SIGTERM or
SIGKILL, and ``--resume`` continues the step count with one evaluations.csv row per step; files written
atomically get the user's umask, not mkstemp's 0600."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from lepton_sim.io import current_umask, uninterrupted, write_atomic, write_text_atomic
from lepton_sim.runs import RunFolder

LEPTON = str(Path(sys.executable).with_name("lepton-sim"))
SCENARIO = "driving/lane-keep"  # PPO with VecNormalize (agents/hyperparams/sb3/ppo.yaml)
EVAL_FREQ = 2000
SAVED = re.compile(
    r"interrupted at (\d+) steps: saved checkpoint (\S+) \(with its normalisation statistics\) "
    r"and model (\S+); continue with: lepton-sim train --resume (\S+)"
)


def _child_setup() -> None:
    """A child as if started from a terminal: Ctrl-C is not ignored (as it is for a shell's background job),
    and the umask is the usual 022."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.umask(0o022)


def _start(run: Path, checkpoint_freq: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            LEPTON,
            "train",
            SCENARIO,
            "--algo",
            "ppo",
            "--steps",
            "200000",
            "--n-envs",
            "2",
            "--eval-freq",
            str(EVAL_FREQ),
            "--eval-episodes",
            "2",
            "--checkpoint-freq",
            str(checkpoint_freq),
            "--out",
            str(run),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_child_setup,
    )


def _wait_until(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``ready()`` while the training subprocess runs; fail (and stop it) if it ends or takes too long."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training ended early with {proc.returncode}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"training did not get there within {timeout} s")
        time.sleep(0.05)


def _evaluated_steps(run: Path) -> list[int]:
    return [int(row["timesteps"]) for row in RunFolder(run).read_evaluations() if row.get("wall_time_s")]


def _num_timesteps(model: Path) -> int:
    """The step count stored in an SB3 zip (its ``data`` entry is JSON; the test reads only the plain field)."""
    with zipfile.ZipFile(model) as zf:
        return int(json.loads(zf.read("data"))["num_timesteps"])


def _resume(run: Path, steps: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LEPTON, "train", "--resume", str(run), "--steps", str(steps), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_child_setup,
    )


def _assert_one_row_per_step(run: Path) -> list[int]:
    steps = _evaluated_steps(run)
    assert steps == sorted(set(steps)), f"evaluations.csv timesteps repeat or go back: {steps}"
    return steps


@pytest.mark.parametrize(
    "sig, twice",
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-twice"],
)
def test_interrupt_saves_a_checkpoint_and_resume_continues(tmp_path: Path, sig: signal.Signals, twice: bool) -> None:
    run = tmp_path / "run"
    proc = _start(run, checkpoint_freq=100_000)  # no periodic checkpoint before the interrupt
    _wait_until(proc, lambda: len(_evaluated_steps(run)) >= 2)
    proc.send_signal(sig)
    if twice:  # a second Ctrl-C, most likely while the checkpoint is being written
        time.sleep(0.02)
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)

    # SIGTERM ends training as Ctrl-C does (KeyboardInterrupt, exit 130). A second Ctrl-C waits for the save;
    # one that lands after it, while the CLI exits, may end the process by the signal itself.
    assert proc.returncode in ((130, -signal.SIGINT) if twice else (130,)), err[-2000:]
    match = SAVED.search(err)
    assert match, err[-2000:]
    steps, checkpoint, model = int(match[1]), Path(match[2]), Path(match[3])
    assert steps >= 2 * EVAL_FREQ and Path(match[4]) == run
    assert checkpoint == RunFolder(run).checkpoint(steps) and checkpoint.is_file()
    assert [line for line in err.splitlines() if line.startswith("interrupted at")] == [match[0]]  # one line
    assert model == RunFolder(run).final_model
    from stable_baselines3 import PPO

    assert PPO.load(checkpoint).num_timesteps == _num_timesteps(model) == steps  # whole, loadable files
    for path in (checkpoint, model):  # with the statistics the model was trained with, readable by the group
        stats = RunFolder.companion(path, "vecnormalize", ".pkl")
        assert stats.is_file(), stats
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(stats.stat().st_mode) == 0o644
    assert not list(RunFolder(run).checkpoints_dir.glob(".*"))  # no temporary file left behind
    before = _assert_one_row_per_step(run)

    target = (steps // EVAL_FREQ + 1) * EVAL_FREQ  # the next evaluation step
    resumed = _resume(run, target)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _num_timesteps(RunFolder(run).final_model) >= target
    after = _assert_one_row_per_step(run)
    assert after == [*before, target]  # the earlier rows are kept; the resumed run evaluates on the same grid


def test_killed_between_checkpoints_resumes_without_duplicate_evaluations(tmp_path: Path) -> None:
    run = tmp_path / "run"
    folder = RunFolder(run)
    proc = _start(run, checkpoint_freq=3 * EVAL_FREQ)

    def rows_past_a_checkpoint() -> bool:
        latest = folder.latest_checkpoint()
        return latest is not None and any(s > latest[0] for s in _evaluated_steps(run))

    _wait_until(proc, rows_past_a_checkpoint)
    proc.send_signal(signal.SIGKILL)  # no chance to save anything
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    checkpoint_steps = folder.latest_checkpoint()[0]
    stale = [s for s in _evaluated_steps(run) if s > checkpoint_steps]
    assert stale  # rows the resumed run evaluates again

    target = max(stale) + EVAL_FREQ
    resumed = _resume(run, target)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = _assert_one_row_per_step(run)
    assert set(stale) <= set(steps) and steps[-1] >= target
    assert _num_timesteps(folder.final_model) >= target


def test_resume_refuses_a_normalised_checkpoint_without_its_statistics(tmp_path: Path) -> None:
    import torch

    import lepton_sim

    handler, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    run = lepton_sim.train(
        SCENARIO,
        algo="ppo",
        steps=256,
        n_envs=2,
        out=tmp_path / "run",
        overrides={"n_steps": 64, "batch_size": 64},
        eval_freq=0,
        checkpoint_freq=128,
        progress_bar=False,
    )
    assert signal.getsignal(signal.SIGTERM) is handler  # training from Python leaves the process as it was
    assert torch.get_num_threads() == threads
    folder = RunFolder(run)
    steps, checkpoint = folder.latest_checkpoint()
    RunFolder.companion(checkpoint, "vecnormalize", ".pkl").unlink()
    kept = {path: path.read_bytes() for path in (*folder.checkpoints_dir.iterdir(), folder.final_model)}
    with pytest.raises(
        lepton_sim.LeptonError,
        match=r"normalises observations but .*_vecnormalize.pkl is "
        r"missing; resuming would start fresh statistics",
    ):
        lepton_sim.train(resume=run, steps=512, progress_bar=False)
    assert {path: path.read_bytes() for path in kept} == kept  # the refused resume changed no model file
    assert folder.latest_checkpoint() == (steps, checkpoint)


def test_truncate_evaluations_drops_rows_past_the_checkpoint_and_torn_rows(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    for steps in (1000, 2000, 3000):
        run.append_evaluation(
            {
                "timesteps": steps,
                "mean_return": 1.0,
                "std_return": 0.0,
                "success_rate": 1.0,
                "mean_length": 10.0,
                "wall_time_s": steps / 1000,
            }
        )
    with run.evaluations_path.open("a") as f:
        f.write("2500,0.5")  # a row a kill cut short
    assert run.truncate_evaluations(2000) == 2
    assert [row["timesteps"] for row in run.read_evaluations()] == ["1000", "2000"]
    assert run.last_wall_time() == 2.0
    assert run.truncate_evaluations(2000) == 0
    assert RunFolder(tmp_path / "none").truncate_evaluations(0) == 0


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_get_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        text = write_text_atomic(tmp_path / "report.md", "hello\n")
        model = write_atomic(tmp_path / "model.zip", lambda tmp: tmp.write_bytes(b"zip"))
        write_text_atomic(text, "replaced\n")  # a replaced file too
    finally:
        os.umask(previous)
    assert stat.S_IMODE(text.stat().st_mode) == stat.S_IMODE(model.stat().st_mode) == mode
    assert text.read_text() == "replaced\n"
    assert not list(tmp_path.glob(".*"))


def test_uninterrupted_holds_a_ctrl_c_until_the_block_ends() -> None:
    # Python's own Ctrl-C handler, whatever an earlier test in this worker left installed (ray.init sets its own)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with uninterrupted():
                os.kill(os.getpid(), signal.SIGINT)  # a real signal to this process
                with uninterrupted():  # nested: still held
                    time.sleep(0.05)
                done.append("saved")
        assert done == ["saved"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (from /proc: no psutil needed)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def test_a_training_worker_that_dies_saves_the_run_and_gives_one_line(tmp_path: Path) -> None:
    """A libsumo training env lives in a SubprocVecEnv worker; a killed worker (a crashed simulator) ends
    training with one clear line, after the checkpoint and model are saved, and the run resumes."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            LEPTON,
            "train",
            "traffic/single-intersection",
            "--steps",
            "20000",
            "--num-envs",
            "1",
            "--eval-freq",
            "0",
            "--set",
            "n_steps=64",
            "--set",
            "batch_size=64",
            "--set",
            "params.duration=300",
            "--out",
            str(run),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_child_setup,
    )
    _wait_until(
        proc,
        lambda: (
            (run / "logs" / "part0" / "progress.csv").is_file()
            and len((run / "logs" / "part0" / "progress.csv").read_text().splitlines()) >= 3
        ),
        timeout=90,
    )
    for child in _children(proc.pid):
        os.kill(child, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "training env worker process died" in err
    steps, checkpoint = RunFolder(run).latest_checkpoint()
    assert f"saved checkpoint {checkpoint}" in err and _num_timesteps(run / "model.zip") == steps > 0
    resumed = _resume(run, steps + 128)
    assert resumed.returncode == 0, resumed.stderr
