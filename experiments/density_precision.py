"""How precise is the density-distance estimate (docs/analysis.md, fig 5)?

    python experiments/density_precision.py [--checkpoint assets/feature_guided]

Estimates D(c, c') for all class pairs three times - the default first 12 held-out images of
each class (noise seed 0), the next 12 with other noise (seed 1), and 36 images (seed 2) - and
prints each estimate's correlation with the squared centroid distance and the correlations of
the estimates with each other over pairs (the Monte-Carlo error against the spread of pairs).
About 2 minutes on 2 cores.
"""
from __future__ import annotations

import argparse

import numpy as np


from engine.analysis import DENSITY_PER_CLASS, density_distance
from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import load_dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    a = p.parse_args()
    fg = load_checkpoint(a.checkpoint, device="cpu")
    data = load_dataset(fg.train_config.dataset, "test", fg.config.size, fg.config.channels)
    n = DENSITY_PER_CLASS
    nxt = np.concatenate([np.nonzero(data.labels == c)[0][n:2 * n] for c in range(len(fg.classes))])
    runs = {"first images, seed 0": (data.images, data.labels, n, 0),
            "next images, seed 1": (data.images[nxt], data.labels[nxt], n, 1),
            f"{3 * n} images, seed 2": (data.images, data.labels, 3 * n, 2)}
    est = {}
    for name, (x, y, per_class, seed) in runs.items():
        r = density_distance(fg, x, y, per_class=per_class, seed=seed)
        est[name] = r.density_distance
        print(f"{name}: {per_class} per class, Pearson with centroid d2 {r.pearson:.3f}, Spearman {r.spearman:.3f}")
    names = list(est)
    for i, u in enumerate(names):
        for v in names[i + 1:]:
            print(f"{u} vs {v}: Pearson {np.corrcoef(est[u], est[v])[0, 1]:.4f}, "
                  f"in log {np.corrcoef(np.log(est[u]), np.log(est[v]))[0, 1]:.4f}")


if __name__ == "__main__":
    main()
