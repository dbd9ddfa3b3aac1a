"""Class centroids of phi on a grid of noise levels (docs/method.md, "Feature vector phi").

phibar_c(sigma) = E[ phi(x + sigma z) | x in class c ], estimated by averaging over
training images of the class, on a log-spaced sigma grid; between grid points the table
is interpolated linearly in log sigma (and clamped at the ends).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import EngineError

SIGMA_GRID = (0.01, 1.5, 24)     # min, max, count: covers the sampler's sigma_L .. sigma_0


def sigma_grid(lo: float = SIGMA_GRID[0], hi: float = SIGMA_GRID[1], n: int = SIGMA_GRID[2]) -> np.ndarray:
    return np.geomspace(lo, hi, n)


@dataclass
class CentroidTable:
    sigmas: torch.Tensor      # (S,) increasing
    table: torch.Tensor       # (K, S, D): phibar_c(sigma_s)
    spread: torch.Tensor      # (K, S): mean squared distance of phi to its centroid
    classes: list[str]
    # (K, C): mean pixel of each class's training images, where the sampler starts (sampler.py);
    # None in tables written before it was kept (the sampler then starts at the data mean)
    means: torch.Tensor | None = None

    def index(self, name: str | int) -> int:
        if isinstance(name, (int, np.integer)):
            if not 0 <= name < len(self.classes):
                raise EngineError(f"class index {name} out of range 0..{len(self.classes) - 1}")
            return int(name)
        if name in self.classes:
            return self.classes.index(name)
        raise EngineError(f"unknown class '{name}'; classes are: {', '.join(self.classes)}")

    def at(self, c: int | str | torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """phibar_c(sigma) for sigma (B,) -> (B, D); c a class (name or index) or (B,) indices."""
        if not isinstance(c, torch.Tensor):
            c = torch.full(sigma.shape, self.index(c), dtype=torch.long)
        lo, hi, t = self._bracket(sigma)
        c = c.to(self.table.device)
        return (1 - t) * self.table[c, lo] + t * self.table[c, hi]

    def centre(self, sigma: torch.Tensor) -> torch.Tensor:
        """The mixture's centroid (classes weighted equally) at sigma (B,) -> (B, D)."""
        lo, hi, t = self._bracket(sigma)
        m = self.table.mean(0)
        return (1 - t) * m[lo] + t * m[hi]

    def _bracket(self, sigma: torch.Tensor):
        """Grid indices below and above each sigma (B,), and the weight of the one above."""
        ls = torch.log(self.sigmas)
        x = torch.log(sigma.to(ls).clamp(self.sigmas[0], self.sigmas[-1]))
        hi = torch.searchsorted(ls, x).clamp(1, len(ls) - 1)
        lo = hi - 1
        return lo, hi, ((x - ls[lo]) / (ls[hi] - ls[lo]))[:, None]

    def to(self, device) -> "CentroidTable":
        return CentroidTable(self.sigmas.to(device), self.table.to(device), self.spread.to(device), self.classes,
                             None if self.means is None else self.means.to(device))

    def state(self) -> dict:
        return {"sigmas": self.sigmas.cpu(), "table": self.table.cpu(), "spread": self.spread.cpu(),
                "classes": list(self.classes), "means": None if self.means is None else self.means.cpu()}

    @classmethod
    def from_state(cls, s: dict) -> "CentroidTable":
        means = s.get("means")
        return cls(s["sigmas"].float(), s["table"].float(), s["spread"].float(), list(s["classes"]),
                   None if means is None else means.float())


@torch.no_grad()
def compute_centroids(model, images: np.ndarray, labels: np.ndarray, classes: list[str],
                      sigmas: np.ndarray | None = None, per_class: int = 256, seed: int = 0,
                      batch: int = 512, progress=None) -> CentroidTable:
    """Average phi(x + sigma z) over up to `per_class` images of each class, at each sigma."""
    sigmas = sigma_grid() if sigmas is None else np.asarray(sigmas)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    K, S = len(classes), len(sigmas)
    table = torch.zeros(K, S, model.phi_dim)
    spread = torch.zeros(K, S)
    means = torch.zeros(K, images.shape[1])
    was_training = model.training
    model.eval()
    for c in range(K):
        members = torch.from_numpy(images[labels == c])
        if len(members) == 0:
            raise EngineError(f"class '{classes[c]}' has no images to compute its centroid")
        means[c] = members.double().mean(dim=(0, 2, 3)).float()
        x = members[:per_class]
        for s, sigma in enumerate(sigmas):
            phis = []
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                y = xb + float(sigma) * torch.randn(xb.shape, generator=gen)
                phis.append(model.phi(y.to(device)).cpu())
            phi = torch.cat(phis)
            table[c, s] = phi.mean(0)
            spread[c, s] = ((phi - table[c, s]) ** 2).sum(1).mean()
        if progress is not None:
            progress(c + 1, K)
    model.train(was_training)
    return CentroidTable(torch.tensor(sigmas, dtype=torch.float32), table, spread, list(classes), means)
