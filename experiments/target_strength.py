"""Does the denoiser use its target at full strength? PSNR on real noisy crops told the class's
centroid carried past it by guidance g (engine.sampler.guided), against g = 0.

    python experiments/target_strength.py [--checkpoint assets/feature_guided] [--per-class 64]

Trained on targets pooled from a few partners (engine/loss.py), a network could learn to trust
its target less than the exact centroid deserves (a regression dilution); guidance g > 0 would
then denoise real crops better than g = 0. Prints, per class and sigma, the mean PSNR change in dB
at each g, and how many of the (class, sigma) points gain at each g: where g = 0 is the best, the
network reads its target at the strength the data supports, and what guidance does to samples is
the walk's doing, not a correction of the denoiser.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import load_dataset
from engine.metrics import psnr
from engine.sampler import guided


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--per-class", type=int, default=64)
    p.add_argument("--guidance", default="-0.25,0.25,0.5,1.0", help="comma-separated g to compare with 0")
    p.add_argument("--sigmas", default="0.05,0.2,0.5,1.0")
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args()
    gs = [float(g) for g in a.guidance.split(",")]
    sigmas = [float(s) for s in a.sigmas.split(",")]
    fg = load_checkpoint(a.checkpoint, device="cpu", kind="feature_guided")
    data = load_dataset(fg.train_config.dataset, "test", fg.config.size, fg.config.channels)
    gen = torch.Generator().manual_seed(a.seed)
    change = {}
    for c, name in enumerate(fg.classes):
        x = torch.from_numpy(data.images[data.labels == c][:a.per_class])
        for sigma in sigmas:
            y = x + sigma * torch.randn(x.shape, generator=gen)
            s = torch.full((len(y),), sigma)
            target = fg.centroid(c, sigma).expand(len(y), -1)
            with torch.no_grad():
                db = lambda g: float(psnr(fg.denoise(y, guided(fg, target, s, g)), x).mean())  # noqa: E731
                base = db(0.0)
                change[f"{name} {sigma:g}"] = {f"{g:g}": round(db(g) - base, 3) for g in gs}
    gains = {f"{g:g}": sum(v[f"{g:g}"] > 0 for v in change.values()) for g in gs}
    best = {f"{g:g}": round(max(v[f"{g:g}"] for v in change.values()), 3) for g in gs}
    print(json.dumps({"checkpoint": str(a.checkpoint), "per_class": a.per_class,
                      "psnr_change_db": change, "points": len(change), "points_that_gain": gains,
                      "largest_gain_db": best,
                      "mean_change_db": {f"{g:g}": round(float(np.mean([v[f"{g:g}"] for v in change.values()])), 3)
                                         for g in gs}}, indent=1))


if __name__ == "__main__":
    main()
