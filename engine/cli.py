"""Command line: python -m engine {train,centroids,sample,dataset,evaluate,benchmark,atlas,report}.

Every subcommand turns user mistakes (EngineError) into one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import warnings
from pathlib import Path

from .config import Limits, ModelConfig, TrainConfig
from .distributed import Quiet
from .errors import EngineError
from .paths import writable_file


def _positive(kind, most=None):
    """argparse type: a positive number of `kind` (at most `most`)."""
    return within(kind, Limits(0, math.inf if most is None else most, open_low=True))


def whole_number(low: int = 1, high: int | None = None):
    """argparse type: a whole number from `low` (to `high`), said plainly when it is not."""
    return within(int, Limits(low, math.inf if high is None else high))


def seed_value(text: str) -> int:
    """argparse type for --seed: the library's rule (config.check_seed)."""
    from .config import SEED_LIMITS, check_seed
    try:
        return check_seed(int(text))
    except (ValueError, EngineError):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {SEED_LIMITS.high}, got {text}") from None


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse, with its mistakes said in one line (not the usage block) and where to look."""

    def error(self, message: str):
        from .distributed import speaks         # under torchrun: one line per machine, not per process
        self.exit(2, f"error: {message} (see {self.prog} --help)\n" if speaks() else None)


def within(kind, limits: Limits | None, name: str = ""):
    """argparse type: a value read by `kind` inside `limits` (engine/config.py), in the library's words."""
    def parse(text: str):
        try:
            value = kind(text)
            return value if limits is None else limits.check(name, value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got '{text}'") from None
        except EngineError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def settings_flags(p: argparse.ArgumentParser, cls, names=None, given_only: bool = False) -> None:
    """One flag per field of the config dataclass `cls` that has command-line help (those in `names`
    if given): its reading, default, limits, choices and help are the field's (engine/config.py,
    `setting`). given_only: flags not given leave no attribute (the defaults stay the config's)."""
    from dataclasses import fields
    for f in fields(cls):
        m = f.metadata
        if not m.get("help") or (names is not None and f.name not in names):
            continue
        flag = m["flag"] or "--" + f.name.replace("_", "-")
        default = argparse.SUPPRESS if given_only else f.default
        shown = "" if f.default is None else \
            f" (default {','.join(map(str, f.default)) if isinstance(f.default, tuple) else f.default})"
        if isinstance(f.default, bool):
            p.add_argument(flag, dest=f.name, action="store_true", default=default, help=m["help"])
            continue
        kind = m["parse"] or (int if f.type.startswith("int") else float if f.type.startswith("float") else str)
        limits = m["limits"]
        p.add_argument(flag, dest=f.name, type=within(kind, limits, f.name), default=default, choices=m["choices"],
                       help=m["help"] + (f", {limits}" if limits is not None else "") + shown)


def walk_flags(p: argparse.ArgumentParser, ends: bool = False) -> None:
    """The sampler settings that `sample` and `evaluate` both take (`_settings` reads them);
    with `ends`, also the walk's ends and length (`sample`)."""
    from .config import SamplerSettings
    names = [f for f in SamplerSettings.__dataclass_fields__ if ends or f not in SamplerSettings.ENDS]
    settings_flags(p, SamplerSettings, names)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m engine", description="Feature-guided score diffusion: "
               "train, sample, evaluate (Kadkhodaie, Mallat, Simoncelli, arXiv 2410.11646).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a feature-guided, mixture or conditional denoiser",
                       description="Train a denoiser with the loss of docs/method.md, \"Loss\". "
                       "Writes OUT/train_state.pt "
                       "every --checkpoint-every steps (resumable with --resume) and OUT/model.pt at the end.")
    settings_flags(t, TrainConfig, given_only=True)
    settings_flags(t, ModelConfig, given_only=True)
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with the config saved in it "
                        "(other options are ignored, except --steps)")
    t.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights and network config, with this "
                        "run's steps, schedule and loss (a new run; not with --resume); add --widths to "
                        "grow the network wider first")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--recipe", default=None, metavar="FILE.toml",
                   help="train by a recipe (recipes/*.toml: every setting, stages included); flags given "
                        "here override it")

    c = sub.add_parser("centroids", help="recompute a checkpoint's centroid table",
                       description="Recompute phibar_c(sigma) on the sigma grid from training images "
                       "and store it in the checkpoint.")
    c.add_argument("--checkpoint", required=True, help="run folder or .pt file")
    c.add_argument("--per-class", type=_positive(int), default=256, help="images per class (default 256)")
    c.add_argument("--seed", type=seed_value, default=0)
    c.add_argument("--device", default="auto")

    from .config import ALPHA_LIMITS, SAMPLES_LIMITS
    s = sub.add_parser("sample", help="draw samples with the coarse-to-fine sampler",
                       description="Sample with the stochastic coarse-to-fine sampler of docs/method.md, \"Sampler\". "
                       "Choose exactly one target; the default checkpoint is the shipped model.")
    s.add_argument("--checkpoint", default=None, help="run folder or .pt file (default: assets/feature_guided)")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--class", dest="class_name", metavar="NAME",
                   help="condition on a class centroid (a conditional model: the class's embedding)")
    g.add_argument("--image", nargs="+", metavar="PATH", help="condition on the mean phi of these images")
    g.add_argument("--interpolate", nargs=2, metavar=("A", "B"),
                   help="condition on (1 - alpha) centroid(A) + alpha centroid(B) (a conditional model: "
                        "the embeddings)")
    g.add_argument("--switch", nargs=2, metavar=("A", "B"), help="class A until sigma < --sigma-star, then B")
    g.add_argument("--unconditional", action="store_true", help="no projection (use with a mixture model)")
    s.add_argument("--alpha", type=within(float, ALPHA_LIMITS, "alpha"), default=None,
                   help=f"interpolation weight, {ALPHA_LIMITS} (0 = A, 1 = B; outside [0, 1] extrapolates)")
    s.add_argument("--sigma-star", type=_positive(float), default=None,
                   help="switch level for --switch, between --sigmaL and --sigma0")
    s.add_argument("--n", type=within(int, SAMPLES_LIMITS, "number of samples"), default=16,
                   help=f"number of samples (default 16, at most {SAMPLES_LIMITS.high}: run more seeds for more)")
    s.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    walk_flags(s, ends=True)
    s.add_argument("--out", required=True, help="FILE.png (grid) or FILE.npy (float32 (N, C, H, W) in [0, 1])")
    s.add_argument("--trajectory", default=None, help="FILE.npz: every step's y, f(y), sigma, phi")
    s.add_argument("--device", default="auto")

    d = sub.add_parser("dataset", help="export a dataset split as .npz",
                       description="Write arrays images (N, C, H, W) float32 in [0, 1], labels (N,), classes.")
    d.add_argument("--name", default="textures", help="textures | ovals | a folder (default textures)")
    d.add_argument("--split", default="train", choices=["train", "test"], help="default train")
    d.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    d.add_argument("--channels", type=int, default=1, choices=[1, 3], help="1 grey, 3 colour (default 1)")
    d.add_argument("--n-per-class", type=_positive(int), default=None,
                   help="images per class (default: the dataset's, 2000 training crops for built-ins)")
    d.add_argument("--seed", type=seed_value, default=0, help="default 0")
    d.add_argument("--out", required=True, help="FILE.npz")

    e = sub.add_parser("evaluate", help="measure sample accuracy, diversity, memorisation, PSNR, speed",
                       description="Evaluate a checkpoint (see engine/evaluate.py); prints JSON.")
    e.add_argument("--checkpoint", default=None,
                   help="feature-guided or conditional model (default: the shipped feature-guided one)")
    e.add_argument("--mixture", default=None,
                   help="mixture model for the PSNR comparison (default: the shipped one, with the default checkpoint)")
    e.add_argument("--per-class", type=_positive(int), default=32, help="samples per class (default 32)")
    e.add_argument("--seed", type=seed_value, default=0)
    walk_flags(e)
    e.add_argument("--no-timing", action="store_true", help="skip the speed measurement")
    e.add_argument("--out", default=None, help="also write the JSON to this file")
    e.add_argument("--card", default=None,
                   help="also write a markdown model card to this file (a section from a '## Status' heading "
                        "on, already in it, is kept)")
    e.add_argument("--sheet", default=None,
                   help="also draw FILE.png: per class, 8 real held-out crops beside 8 of the samples")
    e.add_argument("--device", default="auto")

    from .benchmark import precision_flags, register as benchmark
    for parser in (s, e):
        precision_flags(parser)
    EXTRA.update(benchmark(sub))

    if importlib.util.find_spec("engine.report") is not None:
        from .report import register
        EXTRA.update(register(sub))
    return p


def train_settings(a: argparse.Namespace) -> dict:
    """The train settings given on the command line (the flags of `settings_flags`, which leave no
    attribute when not given), as config fields: what overrides a recipe. The model's fields go in
    a "model" table."""
    from dataclasses import fields
    given = vars(a)
    out: dict = {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}
    model = {f.name: given[f.name] for f in fields(ModelConfig) if f.name in given}
    if model:
        out["model"] = model
    return out


def given_train_flags(argv: list[str]) -> dict:
    """train_settings of a `train` command line."""
    return train_settings(build_parser().parse_args(argv))


def cmd_train(a) -> int:
    from .train import train
    given = train_settings(a)
    if a.recipe:
        from .recipe import load_recipe, train_recipe
        if a.init:
            raise EngineError("--init goes without --recipe: a recipe's stages say where each starts")
        train_recipe(load_recipe(a.recipe), a.out, overrides=given, resume=a.resume, progress=not a.quiet)
        return 0
    if a.resume and "steps" not in given:
        given["steps"] = None           # the run's own count (train reads it from the checkpoint)
    model = given.pop("model", {})
    train(TrainConfig(**given, model=ModelConfig(**model)), a.out, resume=a.resume, progress=not a.quiet,
          init=a.init, widths=model.get("widths") if a.init else None)
    return 0


def cmd_centroids(a) -> int:
    from .train import recompute_centroids
    recompute_centroids(a.checkpoint, per_class=a.per_class, seed=a.seed, device=a.device)
    return 0


def _settings(a):
    """SamplerSettings from the flags of `walk_flags` the subcommand has (`evaluate` keeps the
    walk's ends and length at their defaults)."""
    from .config import SamplerSettings
    return SamplerSettings(**{k: getattr(a, k) for k in SamplerSettings.__dataclass_fields__ if hasattr(a, k)})


def cmd_sample(a) -> int:
    import numpy as np
    import torch
    from .checkpoint import load_checkpoint
    from .data import load_image
    from .placement import crops_at_scale
    from .grid import save_grid
    from .sampler import ClassTarget, ImageTarget, Interpolation, Switch, Unconditional, run, trajectory_arrays
    out = Path(a.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise EngineError(f"--out {out}: use a .png (grid) or .npy (array) file name")
    if a.trajectory and Path(a.trajectory).suffix.lower() != ".npz":
        raise EngineError(f"--trajectory {a.trajectory}: use a .npz file name")
    writable_file(out)
    if a.trajectory:
        writable_file(a.trajectory, "--trajectory")
    if a.interpolate and a.alpha is None:
        raise EngineError("--interpolate needs --alpha (0 = first class, 1 = second)")
    if a.switch and a.sigma_star is None:
        raise EngineError("--switch needs --sigma-star (the noise level where the target changes)")
    if a.alpha is not None and not a.interpolate:             # a value silently unused is a mistake
        raise EngineError("--alpha goes with --interpolate A B")
    if a.sigma_star is not None and not a.switch:
        raise EngineError("--sigma-star goes with --switch A B")
    settings = _settings(a)
    ckpt = load_checkpoint(a.checkpoint, a.device)
    ckpt.use_precision(a.precision, a.compile, work=a.n * settings.max_steps)
    if a.class_name is not None:
        ckpt.class_index(a.class_name)
        target = ClassTarget(a.class_name)
    elif a.image:
        c, size = ckpt.config.channels, ckpt.config.size
        # crops of the model's size at each image's own scale, as the app cuts uploads (engine/placement.py)
        target = ImageTarget(torch.from_numpy(np.concatenate([crops_at_scale(load_image(p, c), size).images
                                                              for p in a.image])), seed=a.seed)
    elif a.interpolate:
        for name in a.interpolate:
            ckpt.class_index(name)
        target = Interpolation(*a.interpolate, alpha=a.alpha)
    elif a.switch:
        for name in a.switch:
            ckpt.class_index(name)
        target = Switch(*a.switch, sigma_star=a.sigma_star)
    else:
        target = Unconditional()
    samples, steps = run(ckpt, target, n=a.n, seed=a.seed, settings=settings, record=bool(a.trajectory))
    last = steps[-1]
    x = samples.cpu().numpy().astype(np.float32)
    if out.suffix.lower() == ".npy":
        np.save(out, x)
    else:
        save_grid(x, out)
    if a.trajectory:
        np.savez_compressed(a.trajectory, **trajectory_arrays(steps))
    print(json.dumps({"out": str(out), "n": a.n, "target": target.describe(), "seed": a.seed,
                      "steps": last.t - 1, "nfe_per_sample": last.nfe, "sampler": vars(settings),
                      **ckpt.policy.describe(), "compiled": ckpt.compiled}))
    return 0


def cmd_dataset(a) -> int:
    from .data import load_dataset
    if Path(a.out).suffix.lower() != ".npz":
        raise EngineError(f"--out {a.out}: use a .npz file name")
    writable_file(a.out)
    ds = load_dataset(a.name, a.split, a.size, a.channels, a.n_per_class, a.seed)
    ds.save_npz(a.out)
    print(json.dumps({"out": a.out, "images": list(ds.images.shape), "classes": ds.classes}))
    return 0


def cmd_evaluate(a) -> int:
    from .checkpoint import DEFAULT_MIXTURE, load_checkpoint, load_mixture
    from .evaluate import evaluate, model_card, to_json, write_card
    if a.sheet and Path(a.sheet).suffix.lower() != ".png":
        raise EngineError(f"--sheet {a.sheet}: use a .png file name")
    for path, flag in ((a.out, "--out"), (a.card, "--card"), (a.sheet, "--sheet")):
        if path:
            writable_file(path, flag)
    ckpt = load_checkpoint(a.checkpoint, a.device, kind=("feature_guided", "conditional"))
    mix_path = a.mixture or (DEFAULT_MIXTURE if a.checkpoint is None else None)
    mixture = load_mixture(mix_path, a.device, ckpt) if mix_path else None
    settings = _settings(a)
    for model in (ckpt, mixture):               # the sampling dominates: classes x per_class x steps
        if model is not None:
            model.use_precision(a.precision, a.compile, work=len(ckpt.classes) * a.per_class * settings.max_steps)
    report = evaluate(ckpt, mixture, per_class=a.per_class, seed=a.seed,
                      settings=settings, timing=not a.no_timing, sheet=a.sheet)
    report["precision"] = {**ckpt.policy.describe(), "compiled": ckpt.compiled}
    text = to_json(report)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if a.card:
        write_card(a.card, model_card(ckpt, mixture, report))
    return 0


COMMANDS = {"train": cmd_train, "centroids": cmd_centroids, "sample": cmd_sample, "dataset": cmd_dataset,
            "evaluate": cmd_evaluate}
EXTRA: dict = {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():           # restores the caller's warning settings
            warnings.simplefilter("default")
            warnings.showwarning = _one_line_warning
            return {**COMMANDS, **EXTRA}[args.command](args)
    except Quiet:                 # another process of the torchrun job says it
        return 2
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:          # the disk, not us: say which file and why, in one line
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; ask for fewer samples or images (--n, --n-per-class, --per-class)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
