"""Which texture classes can phi hold? How stationary each class is at the crop size, and how
well the spatial averages of a crop's features (phi) point to its own class.

    python scripts/stationarity.py [--sigma 0.05] [--per-class 100] [--candidates]

For every class of `textures` (held-out crops): the spread over crops of each crop's mean pixel
and pixel standard deviation - near zero for a stationary texture, whose every crop has the same
statistics - and the nearest-centroid accuracy of phi(crop + sigma z) for the shipped
feature-guided and mixture models, over all blocks and over the matched blocks alone (the
centroids are the classes' mean phi over the same crops). The method conditions on a class
through its centroid of phi; a class whose crops' phi lie nearer another class's centroid
than their own cannot be told apart by it, however well the denoiser is trained.
`--candidates` adds sources from the installed wheels that could replace a class, each placed
against the kept classes (those whose phi accuracy is at least 0.7). About 10 seconds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, load_checkpoint  # noqa: E402
from engine.data import TEXTURES, TextureSource, _skimage, crops_from, downsample  # noqa: E402
from engine.errors import EngineError  # noqa: E402

# Candidate sources, cut by eye from images the wheels ship (rows r0:r1, cols c0:c1).
CANDIDATES = {
    "moon": TextureSource(_skimage("moon"), factor=2),
    "fur (chelsea)": TextureSource(_skimage("chelsea"), region=(0, 120, 60, 280)),
    "field (camera)": TextureSource(_skimage("camera"), region=(330, 512, 300, 512)),
    "wood (coffee)": TextureSource(_skimage("coffee"), region=(0, 400, 0, 90)),
}


def nearest_centroid_accuracy(phi: np.ndarray, labels: np.ndarray, classes: list[int]) -> dict[int, float]:
    """Per class in `classes`: the share of its crops whose phi is nearest its own class mean."""
    centroids = np.stack([phi[labels == c].mean(0) for c in classes])
    out = {}
    for c in classes:
        d = ((phi[labels == c][:, None] - centroids[None]) ** 2).sum(-1)
        out[c] = float((np.array(classes)[d.argmin(1)] == c).mean())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sigma", type=float, default=0.05, help="noise added before phi (default 0.05)")
    p.add_argument("--per-class", type=int, default=100, help="held-out crops per class (default 100)")
    p.add_argument("--candidates", action="store_true", help="also place candidate replacement sources")
    args = p.parse_args()
    try:
        sources = {name: s.image(1) for name, s in TEXTURES.items()}
        if args.candidates:
            sources |= {name: s.image(1) for name, s in CANDIDATES.items()}
            # the two weak classes at half the resolution: a crop then spans twice the source
            sources |= {f"{name} x2": downsample(sources[name], 2) for name in ("petals", "coins")}
        rng = np.random.default_rng(0)
        crops = [crops_from(img, 32, "test", args.per_class, rng) for img in sources.values()]
        x = torch.as_tensor(np.concatenate(crops))
        labels = np.repeat(np.arange(len(sources)), args.per_class)
        y = x + args.sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        models = {"feature-guided": load_checkpoint(DEFAULT_CHECKPOINT, device="cpu"),
                  "mixture": load_checkpoint(DEFAULT_MIXTURE, device="cpu")}
        matched = models["feature-guided"].config.matched_blocks
        slices = models["feature-guided"].layer_slices()
        columns = {}
        with torch.no_grad():
            for name, ckpt in models.items():
                phi = ckpt.phi(y).cpu().numpy()
                columns[f"{name} all"] = phi
                columns[f"{name} matched"] = np.concatenate([phi[:, slices[b]] for b in matched], 1)
        names = list(sources)
        base = list(range(len(TEXTURES)))
        scores = {col: nearest_centroid_accuracy(phi, labels, base) for col, phi in columns.items()}
        kept = [c for c in base if scores["feature-guided all"][c] >= 0.7]
        for c in range(len(TEXTURES), len(names)):          # each candidate against the kept classes
            for col, phi in columns.items():
                scores[col][c] = nearest_centroid_accuracy(phi, labels, kept + [c])[c]
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"phi of held-out crops + noise sigma {args.sigma}, {args.per_class} per class; "
          f"matched blocks {','.join(matched)}")
    print(f"{'class':16s} {'source':>10s} {'crop mean':>14s} {'crop std':>14s}  "
          + "  ".join(f"{col:>22s}" for col in columns))
    for c, name in enumerate(names):
        m, s = x[labels == c].mean((1, 2, 3)).numpy(), x[labels == c].std((1, 2, 3)).numpy()
        h, w = sources[name].shape[1:]
        print(f"{name:16s} {f'{w}x{h}':>10s} {m.mean():7.2f} +-{m.std():5.3f} {s.mean():7.3f} +-{s.std():5.3f}  "
              + "  ".join(f"{scores[col][c]:22.2f}" for col in columns))
    if args.candidates:
        print(f"candidates placed against the kept classes: {', '.join(names[c] for c in kept)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
