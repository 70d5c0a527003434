"""The command line's conventions: a malformed command line is argparse's usage error (exit 2); everything else
that fails is one line on stderr and exit 1, found before any work, leaving no half-made run or report folder;
Ctrl-C is 130; a closed stdout pipe is quiet; ``--version``; defaults in ``--help``; ``--num-envs`` everywhere
(``--n-envs`` still accepted); ``--checkpoint-freq`` end to end; ``plot --out`` in the format its suffix names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

import lepton_sim
from lepton_sim.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
GOLDEN_CONFIG = REPO / "tests" / "data" / "golden" / "ppo-lane-keep" / "config.yaml"
S = "driving/lane-keep"
TRAIN = ["train", S, "--no-progress", "--out", "{out}"]
EVAL = ["evaluate", "random", "--scenario", S, "--no-progress", "--out", "{out}"]
ROLL = ["rollout", "random", "--scenario", S, "--out", "{out}.mp4"]


def run_cli(argv: list[str]) -> int:
    """``main`` as the shell sees it: argparse's usage errors (and --help, --version) arrive as SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


# (command line, exit code, fragment of stderr). {out} is a path that must not exist afterwards; {file} a regular
# file (a path under it cannot be created, even by root).
BAD = [
    # command-line syntax: argparse's usage error, exit 2
    ([], 2, "the following arguments are required: COMMAND"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ([*TRAIN, "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    ([*TRAIN, "--steps", "0"], 2, "argument --steps: must be a whole number >= 1, got '0'"),
    ([*TRAIN, "--steps", "-5"], 2, "argument --steps: must be a whole number >= 1, got '-5'"),
    ([*TRAIN, "--steps", "lots"], 2, "argument --steps: must be a whole number >= 1, got 'lots'"),
    ([*TRAIN, "--steps", "2.5"], 2, "argument --steps: must be a whole number"),
    ([*TRAIN, "--num-envs", "0"], 2, "argument --num-envs: must be a whole number >= 1"),
    ([*TRAIN, "--n-envs", "-1"], 2, "argument --n-envs: must be a whole number >= 1"),
    ([*TRAIN, "--seed", "-1"], 2, "argument --seed: must be a whole number in [0, 1000000000], got '-1'"),
    ([*TRAIN, "--eval-freq", "-1"], 2, "argument --eval-freq: must be a whole number >= 0"),
    ([*TRAIN, "--eval-episodes", "0"], 2, "argument --eval-episodes: must be a whole number in [1, 100000]"),
    ([*TRAIN, "--checkpoint-freq", "0"], 2, "argument --checkpoint-freq: must be a whole number >= 1"),
    ([*TRAIN, "--time-limit", "0"], 2, "argument --time-limit: must be a number of seconds > 0"),
    ([*TRAIN, "--time-limit", "nan"], 2, "argument --time-limit: must be a number of seconds > 0"),
    ([*TRAIN, "--device", "tpu"], 2, "argument --device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ([*TRAIN, "--multi-agent", "all"], 2, "argument --multi-agent: invalid choice: 'all'"),
    ([*EVAL, "--episodes", "0"], 2, "argument --episodes: must be a whole number in [1, 100000], got '0'"),
    ([*EVAL, "--episodes", "100001"], 2, "argument --episodes: must be a whole number in [1, 100000]"),
    ([*EVAL, "--num-envs", "-1"], 2, "argument --num-envs: must be a whole number >= 1, got '-1'"),
    ([*EVAL, "--seed", "-1"], 2, "argument --seed: must be a whole number in [0, 1000000000]"),
    ([*EVAL, "--device", "gpu"], 2, "argument --device: must be auto, cpu, cuda or cuda:N"),
    (["evaluate", "--scenario", S, "--out", "{out}"], 2, "the following arguments are required: policy"),
    (["evaluate", "random", "--suite", "driving/standard", "--split", "dev"], 2, "invalid choice: 'dev'"),
    (["rollout", "random", "--out", "{out}.mp4"], 2, "the following arguments are required: --scenario"),
    ([*ROLL, "--episodes", "0"], 2, "argument --episodes: must be a whole number in [1, 100000]"),
    ([*ROLL, "--seed", "-3"], 2, "argument --seed: must be a whole number in [0, 1000000000]"),
    ([*ROLL, "--device", "mps"], 2, "argument --device: must be auto, cpu, cuda or cuda:N"),
    (["plot"], 2, "the following arguments are required: RUN_DIR"),
    (["scenarios", "frob"], 2, "argument action: invalid choice: 'frob'"),
    # everything else that fails: one line, exit 1
    (["train", "--no-progress"], 1, "train needs a SCENARIO or --suite SUITE (or --resume RUN_DIR)"),
    ([*TRAIN, "--suite", "driving/standard"], 1, "train takes a SCENARIO or --suite SUITE, not both"),
    ([*TRAIN, "--rows", "driving/lane-keep"], 1, "--rows applies to --suite only"),
    (["train", "--suite", "driving/standard", "--rows", "nope", "--out", "{out}"], 1, "has no row 'nope'"),
    (["train", "nowhere/none", "--out", "{out}"], 1, "unknown scenario or suite 'nowhere/none'"),
    ([*TRAIN, "--algo", "dqnn"], 1, "unknown algorithm 'dqnn' for the sb3 back end; allowed: ppo"),
    ([*TRAIN, "--set", "lanes"], 1, "--set expects key=value, got 'lanes'"),
    ([*TRAIN, "--hyperparams", "{out}.yaml"], 1, "no hyperparameter file for 'ppo'"),
    ([*TRAIN, "--multi-agent", "shared"], 1, "has a single agent"),
    ([*TRAIN, "--device", "cuda:99"], 1, "--device cuda:99: "),
    (["train", "--resume", "{out}"], 1, "not a run folder"),
    (
        ["train", "--resume", "{out}", "--seed", "3", "--set", "lr=1"],
        1,
        "--resume continues a run with its own settings; drop --seed, --set",
    ),
    (["train", S, "--no-progress", "--out", "{file}/run"], 1, "{file} is a file, not a folder"),
    (["evaluate", "random", "--no-progress", "--out", "{out}"], 1, "exactly one of --suite SUITE or --scenario"),
    (["evaluate", "random", "--suite", "driving/standard", "--scenario", S, "--out", "{out}"], 1, "exactly one of"),
    (
        ["evaluate", "random", "--suite", "driving/standard", "--seed", "3", "--out", "{out}"],
        1,
        "--seed applies to --scenario only",
    ),
    ([*EVAL, "--split", "train"], 1, "--split applies to --suite only"),
    (
        ["evaluate", "fixed-time", "--scenario", S, "--no-progress", "--out", "{out}"],
        1,
        "no baseline named 'fixed-time' for the driving domain (env lepton/Driving-v0); available: random, scripted",
    ),
    (
        ["evaluate", "{out}/run", "--scenario", S, "--no-progress", "--out", "{out}"],
        1,
        "neither an existing run folder or model file nor a baseline",
    ),
    (["evaluate", "random", "--scenario", "nowhere/none", "--out", "{out}"], 1, "unknown scenario or suite"),
    (["evaluate", "random", "--scenario", S, "--out", "{file}/report"], 1, "{file} is a file, not a folder"),
    (["evaluate", "random", "--scenario", S, "--out", "{file}"], 1, "is a file, expected a folder"),
    ([*EVAL, "--device", "cuda:99"], 1, "--device cuda:99: "),
    (["rollout", "random", "--scenario", S, "--out", "{out}.avi"], 1, "video must end in .mp4 or .gif"),
    (["rollout", "random", "--scenario", S, "--out", "{file}/video.mp4"], 1, "{file} is a file, not a folder"),
    (
        ["rollout", "max-pressure", "--scenario", S, "--out", "{out}.mp4"],
        1,
        "no baseline named 'max-pressure' for the driving domain",
    ),
    (["rollout", "random", "--scenario", "nowhere/none", "--out", "{out}.mp4"], 1, "unknown scenario or suite"),
    (["plot", "{out}"], 1, "{out} is not a lepton-sim run folder (no config.yaml)"),
    (
        ["plot", "{out}", "--out", "{out}.jpg"],
        1,
        "--out {out}.jpg: unknown plot format .jpg; allowed: .png, .svg, .pdf",
    ),
    (["plot", "{out}", "--out", "{out}"], 1, "unknown plot format (no suffix)"),
    (["plot", "{out}", "--out", "{file}/curves.png"], 1, "{file} is a file, not a folder"),
    (["scenarios", "show"], 1, "scenarios show needs a NAME"),
    (["scenarios", "show", "nowhere/none"], 1, "unknown scenario or suite 'nowhere/none'"),
    (["scenarios", "list", S], 1, "scenarios list takes no NAME"),
]


@pytest.mark.parametrize("argv, code, fragment", BAD, ids=[" ".join(argv) or "(nothing)" for argv, _, _ in BAD])
def test_a_bad_command_line_is_one_clear_error_and_writes_nothing(
    argv: list[str],
    code: int,
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders (runs/, results/) would land here
    regular_file = tmp_path / "file.txt"
    regular_file.write_text("not a folder\n")
    names = {"out": str(tmp_path / "out"), "file": str(regular_file)}
    assert run_cli([arg.format(**names) for arg in argv]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert fragment.format(**names) in err, err
    lines = err.strip().splitlines()
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith(f"lepton-sim {argv[0]}: error: "), err
    else:  # argparse: the usage, then one error line
        assert lines[0].startswith("usage: lepton-sim") and "error: " in lines[-1], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"], "a failed command left files behind"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out == f"lepton-sim {lepton_sim.__version__}\n"


@pytest.mark.parametrize(
    "command, defaults",
    [
        (
            "train",
            [
                "--algo ALGO ppo | sac | td3 | tqc (default: ppo)",
                "(default: auto)",
                "(default: 10)",
                "(default: steps/5)",
                "(default: n_timesteps of the hyperparameters)",
                "(default: sb3)",
            ],
        ),
        (
            "evaluate",
            [
                "(default: test)",
                "(default: auto)",
                "(default: the suite's; 20 for a scenario)",
                "(default: scenario seed + 100000)",
            ],
        ),
        ("rollout", ["(default: rollout.mp4)", "(default: 1)", "(default: auto)"]),
        ("plot", ["(default: <first run>/learning_curves.png)"]),
        ("scenarios", ["(default: list)"]),
    ],
)
def test_help_shows_the_defaults(
    command: str, defaults: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run_cli([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in defaults:
        assert default in text, f"{default!r} not in {command} --help"
    assert "(default: None)" not in text and "--n-envs" not in text


def test_one_spelling_for_the_number_of_envs_and_the_old_one_still_works() -> None:
    parser = build_parser()
    for command in (["train", S], ["evaluate", "random"]):
        assert parser.parse_args([*command, "--num-envs", "3"]).num_envs == 3
        assert parser.parse_args([*command, "--n-envs", "4"]).num_envs == 4
    assert parser.parse_args(["train", S, "--steps", "2e6"]).steps == 2_000_000  # how step counts get written


def test_a_closed_pipe_is_quiet() -> None:
    exe = Path(sys.executable).with_name("lepton-sim")
    if not exe.is_file():
        pytest.skip(f"no {exe} (lepton-sim not installed into this interpreter's environment)")
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {exe} scenarios | head -1"], capture_output=True, text=True, timeout=120
    )
    assert done.stderr == "" and done.stdout == "scenarios:\n", done.stderr
    assert done.returncode in (0, 141)  # 141: lepton-sim's exit status, as after SIGPIPE


def _raise(error: BaseException):  # noqa: ANN202
    def raiser(*args: object, **kwargs: object) -> None:
        raise error

    return raiser


def _validation_error() -> ValidationError:
    class Params(BaseModel):
        lanes: int

    try:
        Params(lanes="many")
    except ValidationError as err:
        return err
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "error, code, message",
    [
        (KeyboardInterrupt(), 130, "lepton-sim scenarios: interrupted"),
        (
            PermissionError(13, "Permission denied", "/data/runs"),
            1,
            "lepton-sim scenarios: error: /data/runs: Permission denied",
        ),
        (FileNotFoundError(2, "No such file or directory", "a.yaml"), 1, "error: a.yaml: No such file or directory"),
        (_validation_error(), 1, "error: invalid Params: lanes: Input should be a valid integer"),
    ],
)
def test_interrupts_and_os_errors_are_one_line(
    error: BaseException, code: int, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("lepton_sim.scenario.builtin_names", _raise(error))
    assert run_cli(["scenarios"]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "saved" not in err  # training says what it saved itself; the CLI does not claim it


@pytest.fixture(params=["read-only folder", "regular file"])
def blocked(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """(a place --out cannot be created under, the reason the error gives)."""
    if request.param == "regular file":
        path = tmp_path / "file.txt"
        path.write_text("not a folder\n")
        yield path, f"cannot be created, {path} is a file, not a folder"
        return
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o500)
    if os.geteuid() == 0:  # permissions do not stop root: refuse the probe file as the kernel would for others
        real = tempfile.TemporaryFile

        def refuse(*args: object, dir: Path | None = None, **kwargs: object):  # noqa: A002,ANN202
            if dir is not None and Path(dir) == path:
                raise PermissionError(13, "Permission denied", str(path))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr("lepton_sim.cli.tempfile.TemporaryFile", refuse)
    yield path, f"cannot write in {path} (Permission denied)"
    path.chmod(0o700)


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "random", "--scenario", S, "--episodes", "2", "--no-progress", "--out", "{blocked}/report"],
        ["rollout", "random", "--scenario", S, "--out", "{blocked}/video.mp4"],
        ["train", S, "--steps", "64", "--no-progress", "--out", "{blocked}/run"],
        ["plot", str(REPO / "runs" / "none"), "--out", "{blocked}/curves.svg"],
    ],
    ids=["evaluate", "rollout", "train", "plot"],
)
def test_an_unwritable_out_fails_before_any_episode(
    argv: list[str], blocked: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # rollouts first: importing it while evaluation's run_episodes is patched would keep the patch for good
    for module in ("lepton_sim.rollouts", "lepton_sim.evaluation"):
        monkeypatch.setattr(f"{module}.run_episodes", _raise(AssertionError("an episode ran")))
    monkeypatch.setattr("lepton_sim.training.train", _raise(AssertionError("training started")))
    path, reason = blocked
    assert run_cli([arg.format(blocked=path) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert f"error: --out {path}/" in err and reason in err and len(err.splitlines()) == 1, err
    assert not path.is_dir() or list(path.iterdir()) == []


def test_a_nested_new_out_folder_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a" / "b" / "report"
    assert (
        run_cli(
            [
                "evaluate",
                "random",
                "--scenario",
                S,
                "--episodes",
                "2",
                "--num-envs",
                "2",
                "--seed",
                "0",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "report.json").is_file() and f"report: {out / 'report.md'}" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ training and plotting
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 PPO steps on 2 envs with periodic evaluation and checkpoints every 32 steps, through the CLI."""
    run = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(
            [
                "train",
                S,
                "--steps",
                "64",
                "--n-envs",
                "2",
                "--eval-freq",
                "32",
                "--eval-episodes",
                "1",
                "--checkpoint-freq",
                "32",
                "--set",
                "n_steps=32",
                "--set",
                "batch_size=32",
                "--seed",
                "1",
                "--device",
                "cpu",
                "--no-progress",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    return run


def test_train_writes_checkpoints_every_checkpoint_freq_steps(trained_run: Path) -> None:
    assert sorted(p.name for p in (trained_run / "checkpoints").glob("ckpt_*_steps.zip")) == [
        "ckpt_32_steps.zip",
        "ckpt_64_steps.zip",
    ]
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert (config["checkpoint_freq"], config["eval_freq"], config["n_envs"], config["seed"]) == (32, 32, 2, 1)
    assert (trained_run / "model.zip").is_file() and (trained_run / "evaluations.csv").is_file()


MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<svg"}


@pytest.mark.parametrize("suffix", [".svg", ".pdf", ".png", ".SVG"])
def test_plot_writes_the_format_its_suffix_names(
    suffix: str, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"curves{suffix}"
    assert run_cli(["plot", str(trained_run), str(trained_run), "--out", str(out)]) == 0
    assert MAGIC[suffix.lower()] in out.read_bytes()[:400]
    assert f"learning curves: {out}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left beside it


def test_plot_defaults_to_a_png_in_the_first_run(trained_run: Path) -> None:
    assert run_cli(["plot", str(trained_run)]) == 0
    assert (trained_run / "learning_curves.png").read_bytes().startswith(MAGIC[".png"])


@pytest.mark.parametrize(
    "csv_text, message",
    [
        ("timesteps,mean_return\n32,1.0\n", "evaluations.csv: no column std_return, success_rate"),
        ("timesteps,mean_return,std_return,success_rate\n32,lots,0,0\n", "evaluations.csv: not a number: 'lots'"),
    ],
)
def test_plot_of_a_damaged_run_is_one_line(
    csv_text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(GOLDEN_CONFIG, run / "config.yaml")
    (run / "evaluations.csv").write_text(csv_text)
    assert run_cli(["plot", str(run), "--out", str(tmp_path / "c.svg")]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "c.svg").exists()
