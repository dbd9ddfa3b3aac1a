"""How much contrast do the denoisers keep at middle noise levels, conditioned and not?

    python experiments/shrinkage.py [--checkpoint assets/feature_guided] [--mixture assets/mixture]
        [--per-class 64]

For held-out test crops x of each class, noised at sigma 0.5, 0.3, 0.2 and 0.1, prints the median
ratio std(f(y)) / std(x) of the feature-guided model conditioned on the true class's centroid and of
the mixture model, with each model's PSNR. An MMSE denoiser shrinks towards the mean where it cannot
place structure; where the conditioned model keeps no more contrast than the mixture, the class
centroid told it little that it could not read from the noisy image itself. docs/model.md quotes it.
"""
from __future__ import annotations

import argparse

import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import run_crops
from engine.metrics import psnr

SIGMAS = (0.5, 0.3, 0.2, 0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--mixture", default="assets/mixture")
    ap.add_argument("--per-class", type=int, default=64)
    args = ap.parse_args()
    fg, mx = load_checkpoint(args.checkpoint), load_checkpoint(args.mixture)
    cfg = fg.train_config
    test = run_crops(cfg, "test")
    gen = torch.Generator().manual_seed(0)
    print(f"{'sigma':>6} {'class':>12} {'contrast fg':>12} {'mixture':>8} {'PSNR fg':>8} {'mixture':>8}")
    for s in SIGMAS:
        for c, name in enumerate(fg.classes):
            x = torch.tensor(test.of_class(c)[:args.per_class])
            y = x + s * torch.randn(x.shape, generator=gen)
            with torch.no_grad():
                f_fg = fg.denoise(y.to(fg.device), fg.centroids.at(c, torch.full((len(x),), s)).to(fg.device)).cpu()
                f_mx = mx.denoise(y.to(mx.device)).cpu()
            keep = [float((f.std((1, 2, 3)) / x.std((1, 2, 3))).median()) for f in (f_fg, f_mx)]
            print(f"{s:>6} {name:>12} {keep[0]:>12.3f} {keep[1]:>8.3f} "
                  f"{float(psnr(f_fg, x).mean()):>8.2f} {float(psnr(f_mx, x).mean()):>8.2f}")


if __name__ == "__main__":
    main()
