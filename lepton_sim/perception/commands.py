"""The ``lepton-sim perception`` command group: collect, show, pretrain, train, evaluate.

``lepton_sim.cli`` adds the group with :func:`add_perception_commands` and runs it as any command: a malformed
command line is argparse's usage error (exit 2), anything else that fails one line on stderr (exit 1). Nothing
here imports torch until a command runs, so ``lepton-sim --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from lepton_sim.arg_types import int_in, positive_number

DEVICES = "auto, cpu, cuda or cuda:N"
SET_PREFIXES = ("params.", "env.")


def _fraction(text: str) -> float:
    value = positive_number(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(not math.isfinite(v) or v < 0 for v in parts) or not math.isclose(sum(parts), 1.0):
        raise argparse.ArgumentTypeError(
            f"must be three shares train,val,test summing to 1, e.g. 0.8,0.1,0.1; got {text!r}"
        )
    return parts[0], parts[1], parts[2]


def _device(text: str) -> str:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"must be {DEVICES}, got {text!r}")
    return text


def env_overrides(items: list[str]) -> dict[str, Any]:
    """``--set camera_size=64`` (also ``params.camera_size=64`` / ``env.camera_size=64``): env parameters."""
    from lepton_sim.training import parse_override

    out = {}
    for item in items:
        key, value = parse_override(item)
        for prefix in SET_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _common(p: argparse.ArgumentParser, threads: bool = True) -> None:
    p.add_argument("--device", type=_device, default="auto", help=f"{DEVICES}; auto uses CUDA if present")
    if threads:
        p.add_argument(
            "--threads", type=int_in(1), default=1, metavar="N", help="torch CPU threads (restored afterwards)"
        )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ------------------------------------------------------------------------------------------------- commands
def _cmd_collect(args: argparse.Namespace) -> None:
    from lepton_sim.perception.collection import collect
    from lepton_sim.perception.dataset import load_dataset

    root = collect(
        args.scenario,
        args.frames,
        args.out,
        policy=args.policy,
        overrides=env_overrides(args.set),
        sensors=args.sensor or ["scenario"],
        seed=args.seed,
        fractions=args.split,
        max_episode_frames=args.max_episode_frames,
        stride=args.stride,
        shard_frames=args.shard_frames,
        device=args.device,
        progress=not args.no_progress,
    )
    m = load_dataset(root).manifest
    splits = ", ".join(f"{s} {m['splits'][s]['frames']} ({m['splits'][s]['episodes']} episodes)" for s in m["splits"])
    print(f"dataset: {root}  {m['frames']} frames: {splits}; {m['collection']['seconds']:.1f} s")


def _cmd_show(args: argparse.Namespace) -> None:
    from lepton_sim.perception.show import show

    lines, sheet = show(args.data, args.out)
    print("\n".join(lines))
    print(f"contact sheet: {sheet}")


def _cmd_pretrain(args: argparse.Namespace) -> None:
    import json

    from lepton_sim.perception.pretraining import PRETRAIN_JSON, pretrain

    out = pretrain(
        args.data,
        args.out,
        progress=not args.no_progress,
        method=args.method,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    record = json.loads((Path(out) / PRETRAIN_JSON).read_text())
    print(
        f"encoder: {Path(out) / 'encoder.pt'}  ({record['pretraining']['method']}, "
        f"{record['parameters']} parameters, final loss {record['final_loss']:.4f}, "
        f"{record['images_per_second']:.0f} images/s)"
    )


def _cmd_train(args: argparse.Namespace) -> None:
    import json

    from lepton_sim.perception.training import TRAIN_JSON, train

    heads = [h for item in args.head for h in item.split(",") if h] or None
    out = train(
        args.data,
        args.out,
        progress=not args.no_progress,
        heads=heads,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        encoder_lr=args.encoder_lr,
        linear_probe=args.linear_probe,
        augment=args.augment,
        label_fraction=args.label_fraction,
        val_every=args.val_every,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        init=args.init,
    )
    record = json.loads((Path(out) / TRAIN_JSON).read_text())
    t = record["training"]
    last = record["history"][t["best_epoch"] - 1]
    val = f", val loss {last['val_loss']:.4f}" if "val_loss" in last else ""
    print(
        f"model: {Path(out) / 'model.pt'}  (epoch {t['best_epoch']} of {t['epochs']}{val}; {t['parameters']} "
        f"parameters, {t['labelled_frames']} labelled frames, {t['images_per_second']:.0f} images/s on {t['device_used']})"
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from lepton_sim.perception.evaluation import evaluate, summary

    report = evaluate(
        args.model,
        args.data,
        split=args.split,
        out=args.out,
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress,
    )
    print(f"{report['scenario']}, {report['split']} split, {report['frames']} frames:")
    print("\n".join(summary(report)))
    print(f"report: {report['out']}/report.md (.json, .png)")


# ------------------------------------------------------------------------------------------------- parser
def add_perception_commands(group: argparse.ArgumentParser, formatter: type[argparse.HelpFormatter]) -> None:
    """The subcommands of ``lepton-sim perception`` on ``group`` (the ``perception`` command's parser)."""
    sub = group.add_subparsers(dest="perception_command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=formatter)

    p = command("collect", "roll out a policy with cameras on; write frames with simulator labels from the same step")
    p.add_argument("scenario", help="scenario name (driving/obstacle-avoid) or path to a YAML file")
    p.add_argument("--frames", type=int_in(1), required=True, metavar="N", help="frames to write, e.g. 20000 or 2e4")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder (new or empty)")
    p.add_argument(
        "--policy", default="random", help="random, scripted (or another baseline), or a run folder / model file"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env parameter, e.g. camera_size=64, obs_camera=semantic (params./env. prefixes accepted); repeatable",
    )
    p.add_argument(
        "--sensor",
        action="append",
        metavar="SPEC",
        help="degradation per episode, cycled within each split: clean, scenario, all@SEVERITY or "
        "CORRUPTION[+CORRUPTION]@SEVERITY (blur@3); repeatable (default: the scenario's own sensor)",
    )
    p.add_argument("--seed", type=int_in(0), help="first episode seed (default: the scenario's seed)")
    p.add_argument(
        "--split", type=_fractions, default=(0.8, 0.1, 0.1), metavar="TRAIN,VAL,TEST", help="shares of the frames"
    )
    p.add_argument(
        "--max-episode-frames", type=int_in(1), metavar="K", help="end an episode after K frames (more episodes)"
    )
    p.add_argument("--stride", type=int_in(1), default=1, metavar="K", help="keep every K-th step")
    p.add_argument("--shard-frames", type=int_in(1), default=2048, metavar="N", help="frames per shard file")
    _common(p, threads=False)
    p.set_defaults(func=_cmd_collect)

    p = command("show", "summarise a dataset (counts, label statistics) and write a contact sheet of its frames")
    p.add_argument("data", metavar="DIR", help="dataset folder")
    p.add_argument("--out", metavar="PNG", help="contact sheet file (default: DIR/contact_sheet.png)")
    p.set_defaults(func=_cmd_show)

    p = command("pretrain", "self-supervised encoder from a dataset's frames (SimSiam or a conv autoencoder)")
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for encoder.pt and pretrain.json")
    p.add_argument("--method", choices=["simsiam", "autoencoder"], default="simsiam", help="pretraining method")
    p.add_argument("--arch", choices=["small", "nature", "keypoint"], default="small", help="encoder architecture")
    p.add_argument("--epochs", type=int_in(1), default=20, metavar="N", help="passes over the frames")
    p.add_argument("--batch-size", type=int_in(2), default=128, metavar="N", help="frames per batch")
    p.add_argument(
        "--lr",
        type=positive_number,
        help="learning rate (default: SimSiam 0.05 x batch/256 SGD, autoencoder 1e-3 Adam)",
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="random seed")
    _common(p)
    p.set_defaults(func=_cmd_pretrain)

    p = command("train", "supervised perception heads on a dataset's labels, from scratch or from --init")
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for model.pt, train.json, history.csv")
    p.add_argument(
        "--init", metavar="PRETRAINED", help="start from this encoder (pretrain folder, encoder.pt or a model)"
    )
    p.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="LABEL",
        help="labels to predict (default: all); repeatable or a,b",
    )
    p.add_argument("--arch", choices=["small", "nature", "keypoint"], default="small", help="encoder architecture")
    p.add_argument("--epochs", type=int_in(1), default=20, metavar="N", help="passes over the labelled frames")
    p.add_argument("--batch-size", type=int_in(1), default=128, metavar="N", help="frames per batch")
    p.add_argument("--lr", type=positive_number, default=1e-3, help="Adam learning rate of the heads")
    p.add_argument(
        "--encoder-lr",
        type=positive_number,
        metavar="LR",
        help="encoder learning rate (default: lr, or lr/10 with --init)",
    )
    p.add_argument("--linear-probe", action="store_true", help="freeze the --init encoder; train linear heads only")
    p.add_argument(
        "--augment",
        choices=["none", "shift", "photometric", "shift+photometric", "augmix", "augmix+photometric"],
        default="photometric",
        help="training augmentation (shift and augmix move what positions the labels give)",
    )
    p.add_argument("--label-fraction", type=_fraction, default=1.0, metavar="F", help="share of training labels used")
    p.add_argument(
        "--val-every", type=int_in(1), default=1, metavar="K", help="validate (and keep the best) every K epochs"
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="random seed")
    _common(p)
    p.set_defaults(func=_cmd_train)

    p = command("evaluate", "a perception model's metrics on a dataset split, per degradation and severity")
    p.add_argument("model", metavar="MODEL", help="perception train folder or its model.pt")
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("--split", choices=["train", "val", "test"], default="test", help="split to score")
    p.add_argument("--out", metavar="DIR", help="report folder (default: MODEL/eval-<dataset>-<split>)")
    _common(p)
    p.set_defaults(func=_cmd_evaluate)
