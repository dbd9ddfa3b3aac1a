"""Does a feature-guided run use its conditioning, and does it denoise at every noise level?

    python experiments/conditioning_check.py RUN [--mixture assets/mixture] [--png samples.png]

Prints, on the first 20 held-out crops of each class, the PSNR of f(y, centroid of the true
class), of f(y, centroid of another class) and of the mixture model at sigma 0.01 .. 1.0, then
the independent classifier's accuracy on 8 samples per class (default sampler). This is the
quick screen behind the "How we got here" table of docs/model.md; `python -m engine evaluate` gives
the full figures.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


from engine.checkpoint import DEFAULT_MIXTURE, load_checkpoint
from engine.classifier import load_classifier
from engine.data import run_crops
from engine.metrics import psnr
from engine.grid import save_grid
from engine.sampler import ClassTarget, run

SIGMAS = (0.01, 0.05, 0.1, 0.5, 1.0)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="feature-guided run folder or model.pt")
    p.add_argument("--mixture", default=DEFAULT_MIXTURE, help="mixture model to compare with")
    p.add_argument("--per-class", type=int, default=20, help="held-out crops per class (default 20)")
    p.add_argument("--samples", type=int, default=8, help="samples per class (default 8)")
    p.add_argument("--png", default=None, help="also save the samples as a grid, one row per class")
    a = p.parse_args()

    ck, mix = load_checkpoint(a.run), load_checkpoint(a.mixture)
    cfg = ck.train_config
    test = run_crops(cfg, "test")
    k = len(ck.classes)
    sel = np.concatenate([np.nonzero(test.labels == c)[0][:a.per_class] for c in range(k)])
    x, lab = torch.from_numpy(test.images[sel]), torch.from_numpy(test.labels[sel])
    wrong = (lab + 3) % k                                    # a fixed other class for each crop
    gen = torch.Generator().manual_seed(0)
    for s in SIGMAS:
        y = x + s * torch.randn(x.shape, generator=gen)
        sv = torch.full((len(x),), s)
        cells = [psnr(ck.denoise(y, ck.centroid(lab, sv)).cpu(), x).mean(),
                 psnr(ck.denoise(y, ck.centroid(wrong, sv)).cpu(), x).mean(),
                 psnr(mix.denoise(y).cpu(), x).mean()]
        print(f"sigma {s}: correct {cells[0]:.2f} wrong {cells[1]:.2f} mixture {cells[2]:.2f} dB")

    clf = load_classifier(ck, progress=False)
    accuracy, samples = [], []
    for c, name in enumerate(ck.classes):
        xs, _ = run(ck, ClassTarget(name), n=a.samples, seed=c)
        accuracy.append(float((clf.predict(xs.cpu().numpy()) == c).mean()))
        samples.append(xs.cpu())
    print("sample accuracy per class", np.round(accuracy, 2), "mean", round(float(np.mean(accuracy)), 4))
    if a.png:
        save_grid(torch.cat(samples), a.png, ncol=a.samples)


if __name__ == "__main__":
    main()
