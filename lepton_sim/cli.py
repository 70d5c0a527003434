"""The ``lepton-sim`` command: train, evaluate, rollout, plot, scenarios, export, serve.

Conventions: a malformed command line (unknown flag, missing or malformed value) is argparse's usage error, exit 2;
anything else that fails is one line on stderr and exit 1, found before any work where it can be (values, device,
whether the output can be written, so results are never lost at the end); Ctrl-C exits 130; a closed stdout
(``lepton-sim scenarios | head -1``) ends quietly with 141, as a tool killed by SIGPIPE would.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lepton_sim import __version__
from lepton_sim.arg_types import int_in, number_above, positive_number
from lepton_sim.errors import LeptonError
from lepton_sim.perception.commands import add_perception_commands
from lepton_sim.scenario import MAX_EPISODES, MAX_SEED, SuiteSplit
from lepton_sim.training_config import DEVICE_PATTERN

if TYPE_CHECKING:
    from lepton_sim.evaluation import EpisodeExecutor

DEVICES = "auto, cpu, cuda or cuda:N"
EXIT_FAILED, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 130, 141


# ------------------------------------------------------------------------------------------- option values
positive_int = int_in(1)
non_negative_int = int_in(0)
seed_value = int_in(0, MAX_SEED)  # the scenario files' bound: seed + episodes stays a 32-bit int
episodes_value = int_in(1, MAX_EPISODES)
positive_seconds = number_above(0, what="a number of seconds")  # a time limit
non_negative_number = number_above(0, inclusive=True)  # GPUs per learner may be a share of one, 0.5
MAX_VIDEO_FPS = 240.0


def video_fps(text: str) -> float:
    """An argparse ``type=`` for --fps: a finite number > 0, at most MAX_VIDEO_FPS."""
    value = positive_number(text)
    if value > MAX_VIDEO_FPS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_VIDEO_FPS:g} frames per second, got {text!r}")
    return value


def device_name(text: str) -> str:
    """An argparse ``type=``: the device spellings the training configuration accepts."""
    if not re.fullmatch(DEVICE_PATTERN, text):
        raise argparse.ArgumentTypeError(f"must be {DEVICES}, got {text!r}")
    return text


# ------------------------------------------------------------------------------------------- checks before work
def check_device(device: str) -> None:
    """A CUDA device that is not there fails now: SB3 would silently fall back to the CPU (``cuda``) or fail
    after the run folder exists (``cuda:7``)."""
    if not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(device.partition(":")[2] or 0) >= count:
        here = "no CUDA device on this machine" if not count else f"this machine has {count} CUDA device(s)"
        allowed = ", ".join(["auto", "cpu", *(f"cuda:{i}" for i in range(count))])
        raise LeptonError(f"--device {device}: {here}; allowed here: {allowed}")


def check_writable(path: Path, what: str, folder: bool) -> None:
    """Fail before the work when ``path`` (a folder, or a file when not ``folder``) cannot be written, instead of
    after every episode has run. Creates nothing, so a failed command leaves no half-made folder behind."""
    if path.exists() and path.is_dir() != folder:
        raise LeptonError(
            f"{what} {path}: " + ("is a file, expected a folder" if folder else "is a folder, expected a file name")
        )
    start = path if folder else path.parent
    existing = next(p for p in (start, *start.parents) if p.exists())
    if not existing.is_dir():
        raise LeptonError(f"{what} {path}: cannot be created, {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise LeptonError(f"{what} {path}: cannot write in {existing} ({err.strerror or err})") from None


# ------------------------------------------------------------------------------------------- commands
RESUME_FIXED = (
    ("SCENARIO", "scenario"),
    ("--suite", "suite"),
    ("--split", "split"),
    ("--rows", "rows"),
    ("--algo", "algo"),
    ("--backend", "backend"),
    ("--multi-agent", "multi_agent"),
    ("--seed", "seed"),
    ("--seeds", "seeds"),
    ("--num-envs", "num_envs"),
    ("--out", "out"),
    ("--set", "set"),
    ("--hyperparams", "hyperparams"),
    ("--eval-freq", "eval_freq"),
    ("--eval-episodes", "eval_episodes"),
    ("--checkpoint-freq", "checkpoint_freq"),
    ("--time-limit", "time_limit"),
    ("--env-runners", "env_runners"),
    ("--envs-per-runner", "envs_per_runner"),
    ("--learners", "learners"),
    ("--gpus-per-learner", "gpus_per_learner"),
)
SCALE_OUT = RESUME_FIXED[-4:]  # train options of the rllib back end, passed on as its hyperparameters


def _scale_out_options(args: argparse.Namespace, overrides: dict) -> None:
    """--env-runners, --envs-per-runner, --learners, --gpus-per-learner as the rllib back end's hyperparameters
    (refused for other back ends), and --ray-address checked before any work."""
    given = [(flag, dest) for flag, dest in SCALE_OUT if getattr(args, dest, None) is not None]
    rllib = (args.backend or "sb3") == "rllib"
    if args.resume is None and not rllib and (given or args.ray_address):
        flags = [flag for flag, _ in given] + (["--ray-address"] if args.ray_address else [])
        backend = args.backend or "sb3"
        raise LeptonError(f"{', '.join(flags)}: for --backend rllib only (this run trains with {backend})")
    for _flag, dest in given:
        overrides[dest] = getattr(args, dest)
    _use_ray_address(args.ray_address)


def _use_ray_address(address: str | None) -> None:
    """Check a Ray cluster address now (a short TCP connect: seconds, not Ray's ~14 minutes of retries) and
    hand it to Ray as RAY_ADDRESS."""
    if address is None:
        return
    try:
        from lepton_sim.agents.rllib.cluster import ADDRESS_ENV, check_address, cluster_address
    except ImportError as err:
        raise LeptonError(f"--ray-address needs Ray ({err}); install lepton-sim[rllib]") from None
    joined = cluster_address(address)
    if joined is not None:
        check_address(joined)
    os.environ[ADDRESS_ENV] = address


def _cmd_train(args: argparse.Namespace) -> None:
    from lepton_sim.backends import get_backend
    from lepton_sim.runs import RunFolder
    from lepton_sim.training import parse_override, train

    if args.resume is not None:
        fixed = [flag for flag, dest in RESUME_FIXED if getattr(args, dest) not in (None, [])]
        if fixed:  # train(resume=...) takes the rest from the run's config.yaml; ignoring them would be silent
            raise LeptonError(
                f"--resume continues a run with its own settings; drop {', '.join(fixed)} "
                "(allowed with --resume: --steps, --device, --no-progress; --workers for an experiment)"
            )
        out, what = Path(args.resume), "--resume"
    elif args.scenario is None and args.suite is None:
        raise LeptonError("train needs a SCENARIO or --suite SUITE (or --resume RUN_DIR)")
    elif args.scenario is not None and args.suite is not None:
        raise LeptonError("train takes a SCENARIO or --suite SUITE, not both")
    else:
        if args.suite is None and (args.split is not None or args.rows is not None):
            raise LeptonError(f"{'--split' if args.split is not None else '--rows'} applies to --suite only")
        out, what = (Path(args.out), "--out") if args.out else (Path("runs"), "runs folder")
    overrides = dict(parse_override(item) for item in args.set)
    _scale_out_options(args, overrides)
    if _train_experiment(args, overrides, out, what):
        return
    check_device(args.device)
    check_writable(out, what, folder=True)
    run_dir = train(
        args.scenario,
        algo=args.algo or "ppo",
        steps=args.steps,
        seed=args.seed,
        n_envs=args.num_envs,
        device=args.device,
        out=args.out,
        overrides=overrides,
        hyperparams_file=args.hyperparams,
        resume=args.resume,
        eval_freq=args.eval_freq,
        eval_episodes=10 if args.eval_episodes is None else args.eval_episodes,
        checkpoint_freq=args.checkpoint_freq,
        time_limit=args.time_limit,
        progress_bar=not args.no_progress,
        backend=args.backend or "sb3",
        multi_agent=args.multi_agent,
        **_suite_options(args),
    )
    run = get_backend(RunFolder(run_dir).read_config().backend).run_folder(run_dir)
    print(f"run folder: {run.path}")
    print(f"  final model: {run.final_model}")
    if run.best_model.exists():
        print(f"  best model:  {run.best_model}")


def _suite_options(args: argparse.Namespace) -> dict:
    """train's --suite, --split and --rows as keyword arguments (none for a scenario or a resume)."""
    if args.suite is None:
        return {}
    return {"suite": args.suite, "split": args.split or "train", "rows": args.rows}


def _train_experiment(args: argparse.Namespace, overrides: dict, out: Path, what: str) -> bool:
    """``train --seeds`` and ``train --resume EXP``: one run per training seed in one experiment folder. Returns
    whether this was such a command; refuses experiment options on a single run."""
    from lepton_sim.experiments import is_experiment, resume_experiment, seed_runs, train_experiment

    if args.seeds is not None and args.seed is not None:
        raise LeptonError("give --seeds (an experiment: one run per seed) or --seed (one run), not both")
    resuming = args.resume is not None and is_experiment(args.resume)
    if args.seeds is None and not resuming:
        if args.workers is not None:
            raise LeptonError("--workers applies to --seeds (or --resume EXPERIMENT); one run trains in one process")
        if args.resume is None and args.out and is_experiment(args.out):
            raise LeptonError(f"--out {args.out} holds an experiment; choose another --out or --resume it")
        return False
    check_device(args.device)
    check_writable(out, what, folder=True)
    workers = args.workers or 1
    if resuming:
        path = resume_experiment(
            args.resume, steps=args.steps, device=args.device, progress_bar=not args.no_progress, workers=workers
        )
    else:
        path = train_experiment(
            args.scenario,
            seeds=args.seeds,
            algo=args.algo or "ppo",
            steps=args.steps,
            n_envs=args.num_envs,
            device=args.device,
            out=args.out,
            overrides=overrides,
            hyperparams_file=args.hyperparams,
            eval_freq=args.eval_freq,
            eval_episodes=10 if args.eval_episodes is None else args.eval_episodes,
            checkpoint_freq=args.checkpoint_freq,
            time_limit=args.time_limit,
            progress_bar=not args.no_progress,
            backend=args.backend or "sb3",
            multi_agent=args.multi_agent,
            workers=workers,
            **_suite_options(args),
        )
    print(f"experiment folder: {path}")
    for seed, run in seed_runs(path).items():
        print(f"  seed {seed}: {run}")
    return True


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from lepton_sim.evaluation import evaluate
    from lepton_sim.scenario import is_suite

    if (args.suite is None) == (args.scenario is None):
        raise LeptonError("evaluate needs exactly one of --suite SUITE or --scenario SCENARIO")
    if args.suite is not None and args.seed is not None:
        raise LeptonError(
            "--seed applies to --scenario only; a suite sets the seeds of each entry (pick them "
            "with --split train|test|validation)"
        )
    if args.scenario is not None and args.split is not None and not is_suite(args.scenario):
        raise LeptonError("--split applies to --suite only; a scenario has no splits (set its seeds with --seed)")
    split: SuiteSplit = args.split or "test"
    check_device(args.device)
    out = (
        Path(args.out)
        if args.out
        else _default_eval_dir(args.policy, args.suite or args.scenario, split if args.suite else None)
    )
    check_writable(out, "--out" if args.out else "report folder", folder=True)
    from lepton_sim.experiments import SEEDS, evaluate_experiment, is_experiment

    experiment = is_experiment(args.policy)  # every seed's model on the same episodes, per seed and aggregated
    executor = _episode_executor(args, experiment)
    try:
        report = _evaluate_with(executor, evaluate_experiment if experiment else evaluate, args, split, out)
    finally:
        if executor is not None:
            executor.close()
    print(report.to_markdown())
    seeds = f"; each seed's: {out / SEEDS}/s<seed>/" if experiment else ""
    print(f"report: {out / 'report.md'} and {out / 'report.json'}{seeds}")


def _episode_executor(args: argparse.Namespace, experiment: bool) -> EpisodeExecutor | None:
    """``evaluate --workers N [--ray-address ADDR]``: the episodes of each row spread over N Ray workers."""
    if args.workers is None:
        if args.ray_address is not None:
            raise LeptonError("--ray-address applies to --workers N (episodes spread over Ray workers)")
        return None
    if experiment:
        raise LeptonError("--workers applies to run folders, model files and baselines, not to experiment folders")
    try:
        from lepton_sim.agents.rllib.distributed import RayEpisodeExecutor
    except ImportError as err:
        raise LeptonError(f"evaluate --workers runs on Ray ({err}); install lepton-sim[rllib]") from None
    _use_ray_address(args.ray_address)
    return RayEpisodeExecutor(workers=args.workers)


def _evaluate_with(
    executor: EpisodeExecutor | None, run: Callable[..., Any], args: argparse.Namespace, split: str, out: Path
) -> Any:
    extra: dict[str, Any] = {} if executor is None else {"executor": executor}
    return run(
        args.policy,
        suite=args.suite,
        scenario=args.scenario,
        split=split,
        episodes=args.episodes,
        seed=args.seed,
        num_envs=args.num_envs,
        out=out,
        device=args.device,
        progress=not args.no_progress,
        trust_pickle=args.trust_pickle,
        **extra,
    )


def _default_eval_dir(policy: str, target: str, split: str | None) -> Path:
    name = Path(target).stem if target.endswith((".yaml", ".yml")) else target.replace("/", "-")
    name += f"-{split}" if split else ""
    policy_path = Path(policy)
    if policy_path.is_dir():
        return policy_path / "eval" / name
    if policy_path.is_file():
        return policy_path.parent / "eval" / f"{policy_path.stem}-{name}"
    return Path("results") / policy / name


def _cmd_rollout(args: argparse.Namespace) -> None:
    from lepton_sim.rollouts import VIDEO_SUFFIXES, rollout

    out = Path(args.out)
    if out.suffix not in VIDEO_SUFFIXES:
        raise LeptonError(f"--out {out}: video must end in {' or '.join(VIDEO_SUFFIXES)}")
    check_device(args.device)
    check_writable(out, "--out", folder=False)
    result = rollout(
        _rollout_policy(args.policy, args.seed_run),
        args.scenario,
        episodes=args.episodes,
        out=out,
        seed=args.seed,
        device=args.device,
        trust_pickle=args.trust_pickle,
        fps=args.fps,
        speed=args.speed,
    )
    for n, ep in enumerate(result.episodes, 1):
        print(
            f"episode {n} (seed {ep.seed}): return {ep.episode_return:.2f}, {ep.length} steps, "
            f"{'success' if ep.success else 'no success'}"
        )
    seconds = result.frames / result.fps
    print(
        f"video: {result.video} ({result.frames} frames at {result.fps:g} fps, {seconds:.1f} s; "
        f"{result.speed:g} simulated s per video s)\nplot:  {result.plot}"
    )


def _rollout_policy(policy: str, seed_run: int | None) -> str:
    """A run folder for an experiment folder: the first training seed's run, or ``--seed-run``'s."""
    from lepton_sim.experiments import is_experiment, seed_runs

    if not is_experiment(policy):
        if seed_run is not None:
            raise LeptonError(f"--seed-run picks a training seed of an experiment folder; {policy} is not one")
        return policy
    runs = seed_runs(policy)
    if seed_run is None:
        seed_run = next(iter(runs))
        print(f"{policy} is an experiment: rolling out its first seed's run, s{seed_run} (choose with --seed-run)")
    if seed_run not in runs:
        raise LeptonError(f"--seed-run {seed_run}: {policy} has training seeds {', '.join(map(str, runs))}")
    return str(runs[seed_run])


def _cmd_plot(args: argparse.Namespace) -> None:
    from lepton_sim.plotting import plot_format, plot_runs

    out = Path(args.out) if args.out else Path(args.runs[0]) / "learning_curves.png"
    try:
        plot_format(out)
    except LeptonError as err:
        raise LeptonError(f"--out {err}") from None
    check_writable(out, "--out", folder=False)
    print(f"learning curves: {plot_runs(args.runs, out, aggregate=args.aggregate)}")


def _cmd_compare(args: argparse.Namespace) -> None:
    from lepton_sim.compare import compare
    from lepton_sim.compare_output import save_comparison, to_markdown

    if args.out:
        check_writable(Path(args.out), "--out", folder=True)
    comparison = compare(args.inputs, baseline=args.baseline, metric=args.metric)
    first = comparison.inputs[0].path  # a report.json, or an experiment's evaluation folder
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "compare"
    check_writable(out, "--out" if args.out else "compare folder", folder=True)
    paths = save_comparison(comparison, out, args.figure)
    print(to_markdown(comparison))
    print(f"tables: {paths['markdown']}, {paths['csv']}, {paths['latex']}\nfigure: {paths['figure']}")


def _cmd_tune(args: argparse.Namespace) -> None:
    from lepton_sim.training import parse_override
    from lepton_sim.tuning import tune

    overrides = dict(parse_override(item) for item in args.set)
    check_device(args.device)
    check_writable(Path(args.out) if args.out else Path("runs"), "--out" if args.out else "runs folder", folder=True)
    result = tune(
        args.scenario,
        algo=args.algo,
        trials=args.trials,
        sampler=args.sampler,
        pruner=args.pruner,
        storage=args.storage,
        study_name=args.study_name,
        space=args.space,
        objective=args.objective,
        steps=args.steps,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        episodes=args.episodes,
        seed=args.seed,
        n_envs=args.num_envs,
        device=args.device,
        overrides=overrides,
        hyperparams_file=args.hyperparams,
        out=args.out,
        backend=args.backend,
        sampler_seed=args.sampler_seed,
    )
    print(result.table.read_text())
    print(
        f"trials: {result.table} and {result.table.with_suffix('.csv')}; run folders: {result.out / 'trials'}/<trial>"
    )
    if result.best is None or result.best_hyperparams is None:
        raise LeptonError(f"no trial of study {result.study_name!r} has completed yet; {result.table} says why")
    print(f"best: trial {result.best.number}; hyperparameters: {result.best_hyperparams}")


def _cmd_export(args: argparse.Namespace) -> None:
    from lepton_sim.export_format import read_spec
    from lepton_sim.exporting import default_out, export_policy

    out = Path(args.out) if args.out else default_out(args.run, args.format)
    if Path(args.run).exists():  # (a missing source is reported as such by export_policy)
        check_writable(out, "--out" if args.out else "export folder", folder=True)
    spec = read_spec(export_policy(args.run, fmt=args.format, out=out))
    graph, check = spec.graph, spec.data["check"]
    inputs = ", ".join(f"{i.name} {i.dtype}{tuple(i.shape)}" for i in graph.inputs).replace("None", "N")
    print(f"exported {graph.policy_name} as {graph.format}: {spec.path}")
    output = f"{graph.output.dtype}{tuple(graph.output.shape)}".replace("None", "N")
    print(f"  graph:  {spec.graph_path.name} ({inputs} -> action {output})")
    print("  inside: " + "; ".join(graph.includes))
    print(
        f"  checked: same actions as the run's policy on {check['observations']} sampled observations "
        f"(max |difference| {check['max_abs_diff']:.3g})"
    )


def _cmd_serve(args: argparse.Namespace) -> None:
    from lepton_sim.serving import Limits, is_loopback, listen, make_app, serve, served_policy

    token = args.token or os.environ.get("LEPTON_SIM_TOKEN") or None
    # requests are answered one at a time: a torch model gains nothing from a thread pool, which on a busy machine
    # waits for its threads to get a core (p50 33 ms instead of 7 ms at batch 64 on 2 loaded cores)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    check_device(args.device)
    served = served_policy(args.policy, device=args.device)
    app = make_app(served, token=token, limits=Limits(args.max_body_bytes, args.max_batch, args.max_sessions))
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if token is None and not is_loopback(args.host):
        print(
            f"lepton-sim serve: warning: listening on {args.host} without --token: anyone who reaches this port "
            "can query the policy",
            file=sys.stderr,
        )
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    auth = "; bearer token required" if token else ""
    print(f"serving {served.policy.name} on {url} (POST /act, GET /spec, GET /health{auth})", flush=True)
    serve(app, sock)


def _cmd_scenarios(args: argparse.Namespace) -> None:
    import yaml

    from lepton_sim.scenario import builtin_names, describe, is_suite, load_scenario, load_suite

    if args.action == "show":
        if not args.name:
            raise LeptonError("scenarios show needs a NAME (see `lepton-sim scenarios`)")
        if is_suite(args.name):
            suite = load_suite(args.name)
            print(yaml.safe_dump(suite.model_dump(exclude={"suite"}), sort_keys=False))
        else:
            scenario = load_scenario(args.name)
            resolved = scenario.model_dump()
            resolved["params"] = scenario.spec.params_model(**scenario.params).model_dump(mode="json")
            print(f"# {scenario.source}\n# params shown with every default filled in")
            print(yaml.safe_dump(resolved, sort_keys=False))
        return
    if args.name:
        raise LeptonError(f"scenarios list takes no NAME; to see one: lepton-sim scenarios show {args.name}")
    names = builtin_names()
    width = max(map(len, names), default=10)
    for kind in ("scenario", "suite"):
        print(f"{kind}s:")
        for name in names:
            if is_suite(name) == (kind == "suite"):
                print(f"  {name:<{width}}  {describe(name)}")


# ------------------------------------------------------------------------------------------- parser
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each default, except where there is none or the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action) or ""


def _add_num_envs(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--num-envs`` (Gymnasium's word) everywhere; ``--n-envs``, train's old spelling, still works, unlisted."""
    p.add_argument("--num-envs", type=positive_int, metavar="N", help=help_text)
    p.add_argument("--n-envs", dest="num_envs", type=positive_int, help=argparse.SUPPRESS)


def _add_device(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--device", type=device_name, default="auto", help=help_text)


def _add_trust_pickle(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a model by unpickling its files (SB3's own loader; runs code from them): only for old "
        "files from a trusted source that cannot be loaded otherwise",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lepton-sim",
        description="Train, evaluate, watch and plot RL agents on lepton-sim's scenarios.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lepton-sim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    p = command("train", "train an agent on a scenario or a suite's train split (a run folder holds the result)")
    p.add_argument("scenario", nargs="?", help="scenario name (driving/obstacle-avoid) or path to a YAML file")
    p.add_argument(
        "--suite",
        help="train on a suite's rows in one vector env instead of one scenario (driving/standard); periodic "
        "evaluation on its validation rows",
    )
    p.add_argument(
        "--split", choices=["train", "validation"], help="with --suite: the split to train on (default: train)"
    )
    p.add_argument(
        "--rows",
        nargs="+",
        metavar="LABEL[=WEIGHT]",
        help="with --suite: train on these rows only (report labels), envs shared by weight (default: every row, 1)",
    )
    p.add_argument("--algo", help="ppo | sac | td3 | tqc (default: ppo)")
    p.add_argument("--backend", help="training back end (default: sb3)")
    p.add_argument(
        "--env-runners",
        type=non_negative_int,
        metavar="N",
        help="rllib: env runner processes that sample (0: in the training process; default: the hyperparameters')",
    )
    p.add_argument(
        "--envs-per-runner", type=positive_int, metavar="K", help="rllib: envs each env runner steps (a vector env)"
    )
    p.add_argument(
        "--learners", type=non_negative_int, metavar="L", help="rllib: learner processes (0: in the training process)"
    )
    p.add_argument(
        "--gpus-per-learner",
        type=non_negative_number,
        metavar="G",
        help="rllib: GPUs per learner (1: each learner runs on a GPU)",
    )
    p.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="rllib: train on this Ray cluster (default: $RAY_ADDRESS, else a private local Ray instance)",
    )
    p.add_argument(
        "--multi-agent",
        choices=["joint", "shared", "independent"],
        help="envs with several agents: one joint agent, or one policy shared by every agent "
        "(default: the hyperparameters' multi_agent, else shared)",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="total env steps, e.g. 300000 or 3e5 (default: n_timesteps of the hyperparameters)",
    )
    p.add_argument("--seed", type=seed_value, help="the run's random seed (default: the scenario's seed)")
    p.add_argument(
        "--seeds",
        type=seed_value,
        nargs="+",
        metavar="SEED",
        help="an experiment: one run per training seed in one folder (runs/<scenario>/<algo>-seeds-<time>)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="with --seeds: train N runs at a time, each in its own process (default: 1, one after another)",
    )
    _add_num_envs(p, "parallel training envs (default: the hyperparameters' n_envs)")
    _add_device(p, f"{DEVICES}; auto uses CUDA if present")
    p.add_argument("--out", help="run folder (default: runs/<scenario>/<algo>-s<seed>-<time>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (learning_rate=1e-3) or env param (params.lanes=3); repeatable",
    )
    p.add_argument("--hyperparams", metavar="FILE", help="a hyperparameter YAML file instead of the built-in one")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run (or every run of an experiment) from its latest checkpoint"
    )
    p.add_argument(
        "--eval-freq",
        type=non_negative_int,
        metavar="N",
        help="evaluate every N env steps, 0 = never (default: steps/10)",
    )
    p.add_argument(
        "--eval-episodes", type=episodes_value, metavar="N", help="episodes per periodic evaluation (default: 10)"
    )
    p.add_argument(
        "--checkpoint-freq", type=positive_int, metavar="N", help="checkpoint every N env steps (default: steps/5)"
    )
    p.add_argument(
        "--time-limit",
        type=positive_seconds,
        metavar="SECONDS",
        help="stop after this much wall-clock time (default: no limit)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = command("evaluate", "evaluate a policy on a suite or scenario; writes a report")
    p.add_argument(
        "policy",
        help="run or experiment folder, model .zip, or baseline name (random, scripted, max-pressure...)",
    )
    p.add_argument("--suite", help="suite name or YAML path")
    p.add_argument("--split", choices=["train", "test", "validation"], help="the suite's split (default: test)")
    p.add_argument("--scenario", help="a single scenario instead of a suite")
    p.add_argument(
        "--episodes",
        type=episodes_value,
        metavar="N",
        help="episodes per scenario (default: the suite's; 20 for a scenario)",
    )
    p.add_argument("--seed", type=seed_value, help="first seed with --scenario (default: scenario seed + 100000)")
    _add_num_envs(p, "envs run in parallel (default: up to 16, one per core for SUMO)")
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="spread each row's episodes over N Ray worker processes (the report equals the single-process one)",
    )
    p.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="with --workers: run them on this Ray cluster (default: $RAY_ADDRESS, else a local Ray instance)",
    )
    _add_device(p, f"{DEVICES}, for a trained model")
    p.add_argument("--out", help="report folder (default: <run>/eval/<suite>-<split> or results/<policy>/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_trust_pickle(p)
    p.set_defaults(func=_cmd_evaluate)

    p = command("rollout", "record a video and a trajectory plot of a policy")
    p.add_argument("policy", help="run or experiment folder, model .zip, or baseline name")
    p.add_argument("--scenario", required=True, help="scenario name or YAML path")
    p.add_argument(
        "--seed-run",
        type=seed_value,
        metavar="SEED",
        help="for an experiment folder: the training seed whose run to roll out (default: its first)",
    )
    p.add_argument("--episodes", type=episodes_value, default=1, metavar="N", help="episodes to record")
    p.add_argument("--seed", type=seed_value, help="first episode seed (default: scenario seed + 100000)")
    p.add_argument("--out", default="rollout.mp4", help="video file, .mp4 or .gif (plot: same name, .png)")
    p.add_argument(
        "--speed",
        type=positive_number,
        metavar="S",
        help="simulated seconds per video second: frames are dropped above 30 fps (default: 1, real time; "
        "traffic 60, a 1 h episode in 1 min)",
    )
    p.add_argument(
        "--fps",
        type=video_fps,
        metavar="F",
        help="the video's frame rate; alone it keeps every frame (plays F x step length simulated s per s), "
        "with --speed frames are picked (or repeated) to play S simulated s per s at F fps",
    )
    _add_device(p, f"{DEVICES}, for a trained model")
    _add_trust_pickle(p)
    p.set_defaults(func=_cmd_rollout)

    p = command("plot", "learning curves of one or more runs or experiments, overlaid")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders or experiment folders")
    p.add_argument(
        "--aggregate",
        choices=["iqm", "mean"],
        default="iqm",
        help="an experiment's curve over its seeds, with a 95%% bootstrap band",
    )
    p.add_argument("--out", help="image file, .png, .svg or .pdf (default: <first run>/learning_curves.png)")
    p.set_defaults(func=_cmd_plot)

    p = command("compare", "compare policies on the same suite rows, paired on episode seeds, against a baseline")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="REPORT_OR_EXPERIMENT",
        help="report.json, a folder holding one, an experiment folder or its eval/<target> folder",
    )
    p.add_argument(
        "--baseline", metavar="NAME_OR_INDEX", help="input the others are compared with (0 = the first; default)"
    )
    p.add_argument("--metric", default="success", help="success, return or a scenario metric (mean_delay, ...)")
    p.add_argument("--out", help="folder for the tables and figure (default: compare/ beside the first report)")
    p.add_argument("--figure", type=str.lower, choices=["png", "svg", "pdf"], default="png", help="figure format")
    p.set_defaults(func=_cmd_compare)

    p = command("tune", "search hyperparameters with Optuna; every trial is a run folder, scored on held-out seeds")
    p.add_argument("scenario", help="scenario name (driving/lane-keep) or path to a YAML file")
    p.add_argument("--algo", default="ppo", help="ppo | sac | td3 | tqc (default: ppo)")
    p.add_argument("--backend", default="sb3", help="training back end (default: sb3)")
    p.add_argument(
        "--trials",
        type=positive_int,
        default=10,
        metavar="N",
        help="trials this process runs; processes sharing a --storage add theirs to one study (default: 10)",
    )
    p.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe", help="Optuna sampler (default: tpe)")
    p.add_argument(
        "--sampler-seed", type=seed_value, metavar="N", help="seed of the sampler (default: none, so processes differ)"
    )
    p.add_argument(
        "--pruner",
        choices=["median", "none"],
        default="median",
        help="stop trials whose periodic evaluations fall below the median of earlier trials (default: median)",
    )
    p.add_argument(
        "--objective",
        choices=["success", "return"],
        default="success",
        help="held-out success rate or mean return of the final model (default: success)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage, e.g. sqlite:///study.db or postgresql://... (default: DIR/study.db)",
    )
    p.add_argument("--study-name", metavar="NAME", help="study to create or continue (default: <scenario>-<algo>)")
    p.add_argument("--space", metavar="FILE", help="search-space YAML (default: the back end's for --algo)")
    p.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="training steps per trial (default: n_timesteps of the hyperparameters)",
    )
    p.add_argument(
        "--eval-freq",
        type=non_negative_int,
        metavar="N",
        help="periodic evaluation (and pruning) every N env steps, 0 = never (default: steps/5)",
    )
    p.add_argument(
        "--eval-episodes",
        type=episodes_value,
        default=5,
        metavar="N",
        help="episodes per periodic evaluation (default: 5)",
    )
    p.add_argument(
        "--episodes",
        type=episodes_value,
        default=20,
        metavar="N",
        help="held-out episodes scoring each trial, the same seeds for all (default: 20)",
    )
    p.add_argument("--seed", type=seed_value, help="training seed of every trial (default: the scenario's seed)")
    _add_num_envs(p, "parallel training envs per trial (default: the hyperparameters' n_envs)")
    _add_device(p, f"{DEVICES}; auto uses CUDA if present")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a hyperparameter (or params.<name>) for every trial; repeatable",
    )
    p.add_argument("--hyperparams", metavar="FILE", help="a hyperparameter YAML file for what is not searched")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="study folder: trials/<n>/ run folders, trials.md/.csv, best_hyperparams.yaml "
        "(default: runs/<scenario>/tune-<algo>)",
    )
    p.set_defaults(func=_cmd_tune)

    p = command("export", "export a trained policy as an ONNX or TorchScript graph in a self-describing folder")
    p.add_argument("run", metavar="RUN", help="run folder (its final model) or a model file inside one")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="graph format")
    p.add_argument("--out", metavar="DIR", help="export folder (default: <run>/export/<format>)")
    p.set_defaults(func=_cmd_export)

    p = command("serve", "serve a policy over HTTP: POST /act, GET /spec, GET /health")
    p.add_argument("policy", metavar="RUN_OR_EXPORT", help="run folder, model file inside one, or export folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback unless you say otherwise)")
    p.add_argument("--port", type=int_in(0, 65535), default=8000, help="port (0: any free one)")
    p.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on every route but /health (default: $LEPTON_SIM_TOKEN, "
        "else no token)",
    )
    p.add_argument("--max-batch", type=positive_int, default=1024, metavar="N", help="most observations a request")
    p.add_argument("--max-body-bytes", type=positive_int, default=8 << 20, metavar="N", help="largest request body")
    p.add_argument(
        "--max-sessions", type=positive_int, default=1024, metavar="N", help="client sessions kept (least recent go)"
    )
    p.add_argument("--device", type=device_name, default="cpu", help=f"{DEVICES}, for a run folder's model")
    p.set_defaults(func=_cmd_serve)

    p = command("perception", "perception models: collect labelled camera frames, pretrain, train, evaluate")
    add_perception_commands(p, _HelpFormatter)

    p = command("scenarios", "list scenarios and suites, or show one resolved")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list", help="what to do")
    p.add_argument("name", nargs="?", help="scenario or suite to show")
    p.set_defaults(func=_cmd_scenarios)
    return parser


# ------------------------------------------------------------------------------------------- running
def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status (argparse itself exits 2 for a malformed command line)."""
    args = build_parser().parse_args(argv)
    prefix = f"lepton-sim {args.command}: "
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here rather than at interpreter exit
    except BrokenPipeError as err:
        if not _stdout_closed():
            return _fail(prefix, _os_message(err))
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:  # short on purpose: training prints what it saved itself
        print(f"{prefix}interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LeptonError as err:
        return _fail(prefix, str(err))
    except ValidationError as err:  # an env's own parameter check, outside a scenario file
        return _fail(prefix, _validation_message(err))
    except OSError as err:  # a file or folder the command needed (permission, missing, disk full)
        return _fail(prefix, _os_message(err))
    return 0


def _fail(prefix: str, message: str) -> int:
    print(f"{prefix}error: {message}", file=sys.stderr)
    return EXIT_FAILED


def _validation_message(err: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in err.errors())
    return f"invalid {err.title}: {problems}"


def _os_message(err: OSError) -> str:
    names = [str(name) for name in (err.filename, err.filename2) if name is not None]
    reason = err.strerror or str(err)
    return f"{' -> '.join(names)}: {reason}" if names else reason


def _stdout_closed() -> bool:
    """Whether stdout is a pipe nobody reads any more (POLLERR), as opposed to some other pipe breaking."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again (Python's own recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
