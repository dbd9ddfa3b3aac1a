"""Is the small large-sigma gain a mismatch between training targets and the sampler's?

    python experiments/target_noise.py [--checkpoint assets/feature_guided] [--mixture assets/mixture]

The network is trained on targets that are the mean phi of `pool` noisy partners (train.py), but
the sampler and the analyses condition it on the centroid table (256 images per class). If the
targets seen in training are too noisy at large sigma, the network learns to trust them little
and the table's better centroids are wasted. This prints, on 30 held-out crops per class, the
PSNR gain over the mixture model of the feature-guided denoiser conditioned on: the table's
centroid; the mean phi of 1, 4 or 16 noisy training images of the true class at the same sigma
(fresh noise); and the noisy image's own phi. About a minute on 2 cores.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, load_checkpoint
from engine.data import run_crops
from engine.metrics import psnr

SIGMAS = (0.1, 0.5, 1.0)
POOLS = (1, 4, 16)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--mixture", default=DEFAULT_MIXTURE)
    p.add_argument("--per-class", type=int, default=30)
    a = p.parse_args()
    ck, mix = load_checkpoint(a.checkpoint), load_checkpoint(a.mixture)
    cfg = ck.train_config
    train = run_crops(cfg, "train", cfg.n_per_class)
    test = run_crops(cfg, "test")
    by_class = [np.nonzero(train.labels == c)[0] for c in range(len(ck.classes))]
    sel = np.concatenate([np.nonzero(test.labels == c)[0][:a.per_class] for c in range(len(ck.classes))])
    x, lab = torch.from_numpy(test.images[sel]), test.labels[sel]
    gen = torch.Generator().manual_seed(0)
    print("gain over the mixture model (dB) with the target taken from:")
    print("sigma  table  " + "  ".join(f"pool {k:<2d}" for k in POOLS) + "  own phi")
    for s in SIGMAS:
        y = x + s * torch.randn(x.shape, generator=gen)
        base = psnr(mix.denoise(y).cpu(), x).mean()

        def gain(target):
            return float(psnr(ck.denoise(y, target).cpu(), x).mean() - base)
        cells = [gain(ck.centroid(torch.from_numpy(lab), torch.full((len(x),), s)))]
        for k in POOLS:
            pick = np.stack([by_class[c][torch.randint(len(by_class[c]), (k,), generator=gen).numpy()] for c in lab])
            xp = torch.from_numpy(train.images[pick.reshape(-1)])
            phi = ck.phi(xp + s * torch.randn(xp.shape, generator=gen)).cpu()
            cells.append(gain(phi.view(len(x), k, -1).mean(1)))
        cells.append(gain(ck.phi(y)))
        print(f"{s:<6g} " + "  ".join(f"{v:+.3f}" for v in cells))


if __name__ == "__main__":
    main()
