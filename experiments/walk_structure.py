"""Does the sampler's walk carry as much structure as real noisy images do, noise level by noise level?

    python experiments/walk_structure.py [--checkpoint assets/feature_guided] [--classes stars,print]
        [--per-class 32] [--seed 0]

The walk's state y_t should be a draw of p_sigma, a real image plus noise of the walk's current
sigma; then its denoised estimate f(y_t) shows what the denoiser shows for real held-out crops
x + sigma z. For each class (conditioned on it, the seeds `evaluate` uses) and a few noise levels,
prints the mean pixel standard deviation of the denoised estimate

- along the walk, at the first step whose noise estimate fell below the level,
- on real held-out crops noised at that level ("real"),
- on a state without structure, the class's mean pixel plus noise ("empty"),

and the mean pixel value of each of the three. A walk whose contrast falls behind "real" at some
level is not building the structure that real images still show there; where it sits near "empty",
it holds next to none. Also prints the calibration slope 1 + E<f - m, x - f> / E|f - m|^2 (m the
image's mean of f) on the real crops: 1 for a denoiser that neither under- nor over-shoots the
structure it is shown, so that a walk behind "real" is not the denoiser flattening what it sees.
docs/model.md quotes it.
"""
from __future__ import annotations

import argparse
import json

import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.conditional import condition
from engine.data import run_crops
from engine.sampler import ClassTarget, first_steps_below, run

LEVELS = (1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05)


def denoised_stats(f: torch.Tensor) -> tuple[float, float]:
    """(mean over images of the pixel std, mean pixel) of a batch of denoised estimates."""
    return float(f.std(dim=(1, 2, 3)).mean()), float(f.mean())


def calibration_slope(f: torch.Tensor, x: torch.Tensor) -> float:
    m = f.mean(dim=(1, 2, 3), keepdim=True)
    return 1 + float(((f - m) * (x - f)).sum() / ((f - m) ** 2).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--classes", default=None, help="comma-separated class names (default: all)")
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ck = load_checkpoint(args.checkpoint)
    cfg = ck.train_config
    test = run_crops(cfg, "test")
    names = args.classes.split(",") if args.classes else list(ck.classes)
    gen = torch.Generator().manual_seed(args.seed)
    out = {}
    for name in names:
        c = ck.classes.index(name)
        _, steps = run(ck, ClassTarget(name), n=args.per_class, seed=args.seed + c, record=True)
        at = first_steps_below(steps, LEVELS).tolist()
        x = torch.as_tensor(test.of_class(c)[:args.per_class]).to(ck.device)
        rows = []
        for level, idx in zip(LEVELS, at):
            walk = torch.stack([steps[t].denoised[b] for b, t in enumerate(idx)])
            z = torch.randn(x.shape, generator=gen).to(ck.device)
            told = condition(ck, c, torch.full((len(x),), level))
            with torch.no_grad():
                real = ck.denoise(x + level * z, told)
                empty = ck.denoise(ck.class_mean(c).to(ck.device)[None, :, None, None] + level * z, told)
            (ws, wm), (rs, rm), (es, em) = map(denoised_stats, (walk, real, empty))
            rows.append({"sigma": level, "contrast_walk": round(ws, 4), "contrast_real": round(rs, 4),
                         "contrast_empty": round(es, 4), "mean_walk": round(wm, 4), "mean_real": round(rm, 4),
                         "mean_empty": round(em, 4), "calibration_slope": round(calibration_slope(real, x), 3)})
        out[name] = {"final_contrast": round(float(steps[-1].denoised.std(dim=(1, 2, 3)).mean()), 4),
                     "real_contrast": round(float(x.std(dim=(1, 2, 3)).mean()), 4), "levels": rows}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
