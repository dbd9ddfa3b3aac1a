"""Does projecting onto the class centroid damage nearly clean images?

    python experiments/projection_cost.py [--checkpoint assets/feature_guided] [--per-class 32]

At small sigma the feature-guided network is told a class average (the centroid table, or in
training the mean phi of `pool` other crops) in place of the image's own channel means. If that
replacement is what makes the denoiser return a nearly clean image worse than it was given, then
telling it the image's *own* clean phi instead should remove the loss. This prints, per sigma, the
denoiser gain (PSNR out minus PSNR in, dB; the worst class and the mean over classes) with three
things told: the class centroid at sigma (what the sampler and `evaluate` use), the clean image's
own phi (an oracle), and nothing (the unprojected pass). Held-out crops of the checkpoint's own
dataset, fp32. About 20 s on one core.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import run_crops
from engine.denoising import held_out_subset, noisy
from engine.metrics import psnr

SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--per-class", type=int, default=32)
    a = p.parse_args()
    ck = load_checkpoint(a.checkpoint, kind="feature_guided")
    ck.use_precision("fp32")
    cfg = ck.train_config
    test = run_crops(cfg, "test")
    images, labels = held_out_subset(test, a.per_class)
    x, c = torch.from_numpy(images), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(0)
    own = ck.phi(x)                              # the clean images' phi: the same at every sigma
    told = {"centroid": lambda y, sigma: ck.denoise(y, torch.stack([ck.centroid(int(k), sigma) for k in c])),
            "own clean phi": lambda y, sigma: ck.denoise(y, own),
            "nothing": lambda y, sigma: ck.denoise(y)}
    print(f"{a.checkpoint} on {cfg.dataset}, {a.per_class} held-out crops per class; "
          "denoiser gain in dB, worst class and mean over classes")
    print("sigma | " + " | ".join(told))
    for sigma in SIGMAS:
        y = noisy(x, sigma, gen)
        cells = []
        for f in told.values():
            gain = psnr(f(y, sigma), x) - psnr(y, x)
            per = np.array([float(gain[c == k].mean()) for k in range(len(ck.classes))])
            cells.append(f"{per.min():+.2f} ({ck.classes[int(per.argmin())]}), mean {per.mean():+.2f}")
        print(f"{sigma} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
