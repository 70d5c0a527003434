"""The ``lepton-sim`` command: train, evaluate, rollout, plot, scenarios."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from lepton_sim.errors import LeptonError


def _cmd_train(args: argparse.Namespace) -> None:
    from lepton_sim.backends import get_backend
    from lepton_sim.runs import RunFolder
    from lepton_sim.training import parse_override, train

    if args.resume is None and args.scenario is None:
        raise LeptonError("train needs a SCENARIO (or --resume RUN_DIR)")
    overrides = dict(parse_override(item) for item in args.set)
    run_dir = train(args.scenario, algo=args.algo, steps=args.steps, seed=args.seed, n_envs=args.n_envs,
                    device=args.device, out=args.out, overrides=overrides, hyperparams_file=args.hyperparams,
                    resume=args.resume, eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
                    checkpoint_freq=args.checkpoint_freq, time_limit=args.time_limit,
                    progress_bar=not args.no_progress, backend=args.backend, multi_agent=args.multi_agent)
    run = get_backend(RunFolder(run_dir).read_config().backend).run_folder(run_dir)
    print(f"run folder: {run.path}")
    print(f"  final model: {run.final_model}")
    if run.best_model.exists():
        print(f"  best model:  {run.best_model}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from lepton_sim.evaluation import evaluate

    if (args.suite is None) == (args.scenario is None):
        raise LeptonError("evaluate needs exactly one of --suite SUITE or --scenario SCENARIO")
    out = args.out or _default_eval_dir(args.policy, args.suite or args.scenario, args.split if args.suite else None)
    report = evaluate(args.policy, suite=args.suite, scenario=args.scenario, split=args.split,
                      episodes=args.episodes, seed=args.seed, num_envs=args.num_envs, out=out, device=args.device,
                      progress=not args.no_progress)
    print(report.to_markdown())
    print(f"report: {Path(out) / 'report.md'} and {Path(out) / 'report.json'}")


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
    from lepton_sim.rollouts import rollout

    result = rollout(args.policy, args.scenario, episodes=args.episodes, out=args.out, seed=args.seed,
                     device=args.device)
    for n, ep in enumerate(result.episodes, 1):
        print(f"episode {n} (seed {ep.seed}): return {ep.episode_return:.2f}, {ep.length} steps, "
              f"{'success' if ep.success else 'no success'}")
    print(f"video: {result.video}\nplot:  {result.plot}")


def _cmd_plot(args: argparse.Namespace) -> None:
    from lepton_sim.plotting import plot_runs

    out = args.out or Path(args.runs[0]) / "learning_curves.png"
    print(f"learning curves: {plot_runs(args.runs, out)}")


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
    names = builtin_names()
    width = max(map(len, names), default=10)
    for kind in ("scenario", "suite"):
        print(f"{kind}s:")
        for name in names:
            if is_suite(name) == (kind == "suite"):
                print(f"  {name:<{width}}  {describe(name)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lepton-sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an agent on a scenario (a run folder holds the result)")
    p.add_argument("scenario", nargs="?", help="scenario name (driving/obstacle-avoid) or path to a YAML file")
    p.add_argument("--algo", default="ppo", help="ppo | sac | td3 | tqc (default ppo)")
    p.add_argument("--backend", default="sb3", help="training back end (default sb3)")
    p.add_argument("--multi-agent", choices=["joint", "shared", "independent"],
                   help="envs with several agents: one joint agent, or one policy shared by every agent "
                        "(default: the hyperparameters' multi_agent, else shared)")
    p.add_argument("--steps", type=int, help="total env steps (default: n_timesteps of the hyperparameters)")
    p.add_argument("--seed", type=int, help="default: the scenario's seed")
    p.add_argument("--n-envs", type=int, help="parallel envs (default: the hyperparameters' n_envs)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present) | cpu | cuda")
    p.add_argument("--out", help="run folder (default runs/<scenario>/<algo>-s<seed>-<time>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter (learning_rate=1e-3) or env param (params.lanes=3)")
    p.add_argument("--hyperparams", help="a hyperparameter YAML file instead of the built-in one")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--eval-freq", type=int, help="evaluate every N env steps (default steps/10; 0 = never)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--checkpoint-freq", type=int, help="checkpoint every N env steps (default steps/5)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="stop after this much wall-clock time")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a policy on a suite or scenario; writes a report")
    p.add_argument("policy", help="run folder, model .zip, or baseline name (random, scripted, max-pressure...)")
    p.add_argument("--suite", help="suite name or YAML path")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--scenario", help="a single scenario instead of a suite")
    p.add_argument("--episodes", type=int, help="episodes per scenario (default: the suite's; 20 for a scenario)")
    p.add_argument("--seed", type=int, help="first seed with --scenario (default scenario seed + 100000)")
    p.add_argument("--num-envs", type=int, help="envs run in parallel")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="report folder (default: <run>/eval/<suite>-<split> or results/<policy>/...)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("rollout", help="record a video and a trajectory plot of a policy")
    p.add_argument("policy", help="run folder, model .zip, or baseline name")
    p.add_argument("--scenario", required=True)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, help="first episode seed (default scenario seed + 100000)")
    p.add_argument("--out", default="rollout.mp4", help="video file, .mp4 or .gif (plot: same name, .png)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_rollout)

    p = sub.add_parser("plot", help="learning curves of one or more runs, overlaid")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", help="PNG file (default <first run>/learning_curves.png)")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("scenarios", help="list scenarios and suites, or show one resolved")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_scenarios)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LeptonError as err:  # exit 2 is argparse's, for command-line syntax; everything else that fails is 1
        print(f"lepton-sim {args.command}: error: {err}", file=sys.stderr)
        return 1
    except ValidationError as err:  # an env's own parameter check, outside a scenario file
        print(f"lepton-sim {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; saved files are intact (checkpoints allow --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
