"""Command line: python -m engine {train,centroids,sample,dataset,evaluate,benchmark,atlas,report}.

Every subcommand turns user mistakes (EngineError) into one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .errors import EngineError


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{s}'") from None


def _names(s: str) -> tuple[str, ...]:
    return tuple(v for v in s.split(",") if v)


def _positive(kind):
    def parse(s: str):
        v = kind(s)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {s}")
        return v
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine", description="Feature-guided score diffusion: "
                                "train, sample, evaluate (Kadkhodaie, Mallat, Simoncelli, arXiv 2410.11646).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a feature-guided or mixture denoiser",
                       description="Train a denoiser with the loss of DESIGN.md 3. Writes OUT/train_state.pt "
                       "every --checkpoint-every steps (resumable with --resume) and OUT/model.pt at the end.")
    t.add_argument("--dataset", default="textures", help="textures | ovals | a folder (default: textures)")
    t.add_argument("--kind", default="feature_guided", choices=["feature_guided", "mixture"],
                   help="feature_guided (projection in the matched blocks) or mixture (no projection)")
    t.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    t.add_argument("--channels", type=int, default=1, choices=[1, 3], help="1 grey, 3 colour (default 1)")
    t.add_argument("--widths", type=_ints, default=(24, 48, 96), help="channels per scale (default 24,48,96)")
    t.add_argument("--matched", type=_names, default=None,
                   help="blocks whose channel means are projected (default: mid and decoder blocks, "
                   "mid,dec2,dec1 for three scales)")
    t.add_argument("--steps", type=_positive(int), default=5000, help="optimizer steps (default 5000)")
    t.add_argument("--batch", type=_positive(int), default=32, help="batch size (default 32)")
    t.add_argument("--lr", type=_positive(float), default=2e-3, help="peak learning rate (default 2e-3)")
    t.add_argument("--n-per-class", type=_positive(int), default=None,
                   help="training images per class (default: the dataset's, 2000 for built-ins)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=_positive(int), default=250)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser("centroids", help="recompute a checkpoint's centroid table",
                       description="Recompute phibar_c(sigma) on the sigma grid from training images "
                       "and store it in the checkpoint.")
    c.add_argument("--checkpoint", required=True, help="run folder or .pt file")
    c.add_argument("--per-class", type=_positive(int), default=256, help="images per class (default 256)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto")
    return p


def cmd_train(a) -> int:
    from .config import ModelConfig, TrainConfig
    from .train import train
    cfg = TrainConfig(dataset=a.dataset, kind=a.kind, steps=a.steps, batch=a.batch, lr=a.lr,
                      n_per_class=a.n_per_class, seed=a.seed, checkpoint_every=a.checkpoint_every,
                      device=a.device, model=ModelConfig(channels=a.channels, size=a.size, widths=a.widths,
                                                         matched_blocks=a.matched))
    train(cfg, a.out, resume=a.resume, progress=not a.quiet)
    return 0


def cmd_centroids(a) -> int:
    from .train import recompute_centroids
    recompute_centroids(a.checkpoint, per_class=a.per_class, seed=a.seed, device=a.device)
    return 0


COMMANDS = {"train": cmd_train, "centroids": cmd_centroids}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return COMMANDS[args.command](args)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
