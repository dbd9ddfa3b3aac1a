"""Class separation in phi, layer by layer (the paper's fig 4; docs/method.md, "Claims as
measurements"): how far apart the class means of phi lie against the spread within each class,
for the feature-guided model and the mixture model alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .denoising import noisy


@dataclass
class SeparationResult:
    """Per layer and model: squared distances between class means of phi, and within-class spread.

    spread_c = E ||phi - mean_c||^2 over held-out images of class c; for a pair (c, c') the
    paper's fig 4 compares ||mean_c - mean_c'||^2 with the geometric mean sqrt(spread_c spread_c').
    separation = mean over pairs of ||mean_c - mean_c'||^2 / mean over pairs of sqrt(spread_c spread_c')
    (dimensionless: independent of the scale of a layer's activations).
    """
    sigma: float
    layers: list[str]
    models: list[str]
    pairs: np.ndarray                          # (P, 2) class indices, c < c'
    pair_d2: dict[str, np.ndarray]             # model -> (L, P) squared centroid distances
    pair_spread: dict[str, np.ndarray]         # model -> (L, P) sqrt(spread_c spread_c')
    separation: dict[str, np.ndarray]          # model -> (L,)

    def best_layer(self, model: str = "feature_guided") -> str:
        return self.layers[int(np.argmax(self.separation[model]))]

    def table(self) -> dict[str, dict[str, float]]:
        """layer -> {model: separation}."""
        return {l: {m: float(self.separation[m][i]) for m in self.models} for i, l in enumerate(self.layers)}


def class_pairs(k: int) -> np.ndarray:
    return np.array([(a, b) for a in range(k) for b in range(a + 1, k)], np.int64).reshape(-1, 2)


def separation(phis: dict[str, np.ndarray], labels: np.ndarray, slices: dict[str, dict[str, slice]],
               layers: list[str], sigma: float = 0.0) -> SeparationResult:
    """The fig 4 statistics from phi vectors (N, D) of each model (pure numpy)."""
    k = int(labels.max()) + 1
    pairs = class_pairs(k)
    d2, spread, sep = {}, {}, {}
    for m, phi in phis.items():
        rows_d, rows_s = [], []
        for layer in layers:
            p = np.asarray(phi[:, slices[m][layer]], np.float64)
            means = np.stack([p[labels == c].mean(0) for c in range(k)])
            within = np.array([((p[labels == c] - means[c]) ** 2).sum(1).mean() for c in range(k)])
            rows_d.append(((means[pairs[:, 0]] - means[pairs[:, 1]]) ** 2).sum(1))
            rows_s.append(np.sqrt(within[pairs[:, 0]] * within[pairs[:, 1]]))
        d2[m], spread[m] = np.stack(rows_d), np.stack(rows_s)
        sep[m] = d2[m].mean(1) / np.maximum(spread[m].mean(1), 1e-30)
    return SeparationResult(float(sigma), list(layers), list(phis), pairs, d2, spread, sep)


@torch.no_grad()
def embedding_separation(checkpoints: dict, images: np.ndarray, labels: np.ndarray, sigma: float = 0.0,
                         seed: int = 0) -> SeparationResult:
    """Separation per layer of each checkpoint's phi of held-out images noised at sigma
    (sigma 0: the clean images, phi(x) as in the paper's fig 4). Layers: the feature blocks
    every model has, then "all" (the whole phi vector)."""
    x = torch.from_numpy(images)
    if sigma > 0:
        x = noisy(x, sigma, torch.Generator().manual_seed(seed))
    phis = {m: c.phi(x, batch=256).cpu().numpy() for m, c in checkpoints.items()}
    slices = {m: {**c.layer_slices(), "all": slice(0, c.model.phi_dim)} for m, c in checkpoints.items()}
    first = next(iter(slices.values()))
    layers = [b for b in first if all(b in s for s in slices.values())]
    return separation(phis, labels, slices, layers, sigma)
