"""Are the misread samples the flat ones, and where in the walk do they go flat?

    python experiments/flat_samples.py [--checkpoint assets/feature_guided] [--per-class 32] [--seed 0]

For each class, samples at the default sampler (the seeds `evaluate` uses: seed + class index) are
read by the independent classifier. A sample is *flat* when its pixel standard deviation is below
the 5th percentile of the class's real held-out crops. Prints, per class, the share of flat
samples, the accuracy on flat and on other samples, and what the misread ones were read as; then,
over all classes, the median contrast of the walk's denoised estimate f(y_t) at a few noise levels
for the samples that end flat and for the others, relative to their final contrast: the noise level
at which the flat ones fall behind is where their structure is lost. docs/model.md quotes it.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.classifier import load_classifier
from engine.data import run_crops
from engine.sampler import ClassTarget, first_steps_below, run

LEVELS = (0.5, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02)


def contrast_at_levels(steps, levels=LEVELS) -> np.ndarray:
    """(len(levels), B): std of each image's denoised estimate at the first step whose noise
    estimate fell below each level (engine.sampler.first_steps_below)."""
    std = np.stack([s.denoised.cpu().numpy().reshape(len(s.sigma), -1).std(1) for s in steps])   # (T, B)
    return std[first_steps_below(steps, levels), np.arange(std.shape[1])].astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ck = load_checkpoint(args.checkpoint)
    cfg = ck.train_config
    test = run_crops(cfg, "test")
    clf = load_classifier(ck, progress=False)
    rows, flat_paths, other_paths = {}, [], []
    for c, name in enumerate(ck.classes):
        x, steps = run(ck, ClassTarget(name), n=args.per_class, seed=args.seed + c, record=True)
        x = x.cpu().numpy()
        real_std = test.of_class(c).std(axis=(1, 2, 3))
        std = x.std(axis=(1, 2, 3))
        flat = std < np.percentile(real_std, 5)
        read = clf.predict(x)
        right = read == c
        rows[name] = {
            "flat_share": float(flat.mean()),
            "accuracy_flat": float(right[flat].mean()) if flat.any() else None,
            "accuracy_other": float(right[~flat].mean()) if (~flat).any() else None,
            "misread_flat": dict(Counter(ck.classes[r] for r in read[flat & ~right])),
            "misread_other": dict(Counter(ck.classes[r] for r in read[~flat & ~right])),
        }
        levels = contrast_at_levels(steps) / np.maximum(std, 1e-8)       # x is the last step's estimate
        flat_paths.append(levels[:, flat])
        other_paths.append(levels[:, ~flat])
    misread = sum(sum(r["misread_flat"].values()) + sum(r["misread_other"].values()) for r in rows.values())
    from_flat = sum(sum(r["misread_flat"].values()) for r in rows.values())
    flat_all, other_all = np.concatenate(flat_paths, 1), np.concatenate(other_paths, 1)
    print(json.dumps({
        "per_class": rows,
        "flat_share": float(np.mean([r["flat_share"] for r in rows.values()])),
        "misread": misread, "misread_flat": from_flat,
        "contrast_relative_to_final": {
            "sigma": list(LEVELS),
            "flat": np.median(flat_all, 1).round(3).tolist() if flat_all.size else None,
            "other": np.median(other_all, 1).round(3).tolist()},
    }, indent=1))


if __name__ == "__main__":
    main()
