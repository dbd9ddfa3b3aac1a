"""Do samples keep their class's orientations? Vertical against horizontal edge energy, per class.

    python experiments/orientation.py [--checkpoint assets/feature_guided] [--n 32] [--seed 0]

For real held-out crops and for samples of each class (the default sampler), prints the share of
the image's gradient energy that lies along the vertical axis, E[(dI/dy)^2] / (E[(dI/dy)^2] +
E[(dI/dx)^2]): 0.5 for an isotropic texture, above it where horizontal edges dominate (brick's short
joints between courses, lines of type), below it where vertical ones do (brick's long mortar
lines). docs/model.md ("2026-12-06") quotes it for brick.
"""
from __future__ import annotations

import argparse
import json

import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import run_crops
from engine.sampler import ClassTarget, run


def vertical_share(x: torch.Tensor) -> float:
    """Share of the gradient energy along y of a batch (N, C, H, W)."""
    gy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    gx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    return float(gy / (gy + gx))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--n", type=int, default=32, help="samples and real crops per class")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ckpt = load_checkpoint(args.checkpoint, kind="feature_guided")
    cfg = ckpt.train_config
    test = run_crops(cfg, "test")
    out = {}
    for c, name in enumerate(ckpt.classes):
        real = torch.from_numpy(test.images[test.labels == c][:args.n])
        samples, _ = run(ckpt, ClassTarget(name), n=args.n, seed=args.seed)
        out[name] = {"real": round(vertical_share(real), 3), "samples": round(vertical_share(samples.cpu()), 3)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
