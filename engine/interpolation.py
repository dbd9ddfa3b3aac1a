"""Interpolation between two classes: samples conditioned on centroids mixed along alpha, judged
by the independent classifier (docs/method.md, "Claims as measurements").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .config import SamplerSettings
from .denoising import progress_bar
from .errors import EngineError
from .sampler import Interpolation, run

ALPHAS = tuple(np.round(np.arange(-0.2, 1.21, 0.2), 2))


@dataclass
class InterpolationResult:
    """Samples conditioned on phi_alpha = (1 - alpha) phibar_a + alpha phibar_b, with the
    independent classifier's probabilities. The same seed at every alpha: same noise."""
    a: str
    b: str
    alphas: np.ndarray              # (A,)
    samples: np.ndarray             # (A, n, C, H, W)
    probabilities: np.ndarray       # (A, n, K) classifier probabilities of every class
    prob_a: np.ndarray              # (A,) mean probability of class a
    prob_b: np.ndarray              # (A,) mean probability of class b
    spearman_b: float               # Spearman correlation of prob_b with alpha
    classes: list[str] = field(default_factory=list)

    def table(self) -> dict[str, dict[str, float]]:
        """alpha -> {a: p_a, b: p_b}."""
        return {f"{al:g}": {self.a: float(pa), self.b: float(pb)}
                for al, pa, pb in zip(self.alphas, self.prob_a, self.prob_b)}


def centroid_path(ckpt, a, b, alphas, sigma: float) -> np.ndarray:
    """phi_alpha(sigma) (A, D) along alpha: the sampler's Interpolation target at one sigma."""
    s = torch.tensor([float(sigma)])
    return np.stack([Interpolation(a, b, float(al)).phi(ckpt, s)[0].cpu().numpy() for al in alphas])


@torch.no_grad()
def interpolation(fg, a, b, alphas=ALPHAS, n: int = 8, seed: int = 0, classifier=None,
                  settings: SamplerSettings | None = None, progress: bool = False) -> InterpolationResult:
    ia, ib = fg.class_index(a), fg.class_index(b)
    if ia == ib:
        raise EngineError("interpolation needs two different classes")
    from scipy import stats        # here, not at the top: scipy.stats adds a second to every command's start
    if classifier is None:
        from .classifier import load_classifier
        classifier = load_classifier(fg, progress=progress)
    alphas = np.asarray(alphas, np.float64)
    samples, probs = [], []
    for al in progress_bar(list(alphas), "interpolation", progress):
        x = run(fg, Interpolation(ia, ib, float(al)), n=n, seed=seed, settings=settings)[0].cpu().numpy()
        samples.append(x)
        probs.append(classifier.probabilities(x))
    p = np.stack(probs)
    rho = float(stats.spearmanr(alphas, p[:, :, ib].mean(1))[0]) if len(alphas) > 2 else float("nan")
    return InterpolationResult(fg.classes[ia], fg.classes[ib], alphas, np.stack(samples), p,
                               p[:, :, ia].mean(1), p[:, :, ib].mean(1), rho, list(fg.classes))
