"""The density distance between classes against the distance of their centroids (the paper's
fig 5; docs/method.md, "Claims as measurements"): a symmetrised KL divergence between two class
densities, estimated from the denoiser's outputs under the two centroids, compared pair by pair
with the squared distance of the centroids.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .denoising import conditioned_denoise, noisy, progress_bar
from .errors import EngineError
from .separation import class_pairs

# Density distance Monte Carlo (documented in docs/analysis.md): sigma grid from the
# sampler's sigma_L to the top of the training noise range, images per class per sigma.
DENSITY_SIGMA_RANGE = (0.01, 1.2)
DENSITY_SIGMAS = 10
DENSITY_PER_CLASS = 12


@dataclass
class DensityResult:
    """Symmetrised-KL estimate D(c, c') for every pair of classes vs ||phibar_c - phibar_c'||^2.

    D(p, q) = integral over sigma of sigma^-3 (E_{y ~ p_sigma} + E_{y ~ q_sigma}) ||f(y, phibar_p) - f(y, phibar_q)||^2
    (docs/method.md, "Claims as measurements"), Monte-Carlo on a log-spaced sigma grid, trapezoid rule in log sigma.
    """
    classes: list[str]
    pairs: np.ndarray              # (P, 2)
    density_distance: np.ndarray   # (P,)
    centroid_d2: np.ndarray        # (P,) squared centroid distance at reference_sigma, matched blocks
    centroid_d2_full: np.ndarray   # (P,) the same over the whole phi vector
    sigmas: np.ndarray             # (M,) Monte-Carlo grid
    integrand: np.ndarray          # (M, P) sigma^-3 (E_p + E_q) ||delta f||^2 at each sigma
    reference_sigma: float
    blocks: list[str]              # the blocks of centroid_d2
    per_class: int                 # images per class per sigma
    pearson: float
    spearman: float
    pearson_full: float
    spearman_full: float
    # Per sigma of the grid (where the headline's mismatch comes from): the squared centroid
    # distance at that sigma (matched blocks), the Pearson correlation of the integrand with it
    # over pairs, and the share of D each sigma contributes (mean over pairs, trapezoid weights).
    centroid_d2_by_sigma: np.ndarray | None = None   # (M, P)
    local_pearson: np.ndarray | None = None          # (M,)
    share: np.ndarray | None = None                  # (M,)

    def matrix(self) -> np.ndarray:
        """(K, K) symmetric matrix of density distances, zero diagonal."""
        k = len(self.classes)
        m = np.zeros((k, k))
        m[self.pairs[:, 0], self.pairs[:, 1]] = m[self.pairs[:, 1], self.pairs[:, 0]] = self.density_distance
        return m


def density_sigmas(n: int = DENSITY_SIGMAS, lo: float = DENSITY_SIGMA_RANGE[0],
                   hi: float = DENSITY_SIGMA_RANGE[1]) -> np.ndarray:
    if n < 2:
        raise EngineError("the density distance needs at least 2 sigma values")
    return np.geomspace(lo, hi, n)


def integrate_log_sigma(values: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """integral of values(sigma) d sigma = integral of values * sigma d(log sigma), trapezoid rule
    (values (M, ...) on an increasing grid)."""
    g = values * sigmas.reshape(-1, *([1] * (values.ndim - 1)))
    dl = np.diff(np.log(sigmas)).reshape(-1, *([1] * (values.ndim - 1)))
    return ((g[1:] + g[:-1]) / 2 * dl).sum(0)


@torch.no_grad()
def conditioned_outputs(fg, y: torch.Tensor, sigma: float, k: int) -> torch.Tensor:
    """f(y, phibar_q(sigma)) for every class q: (K, B, C, H, W), in one batch of K * B images."""
    classes = np.repeat(np.arange(k), len(y))
    return conditioned_denoise(fg, y.repeat(k, 1, 1, 1), classes, sigma).reshape(k, *y.shape)


@torch.no_grad()
def density_distance(fg, images: np.ndarray, labels: np.ndarray, sigmas=None, per_class: int = DENSITY_PER_CLASS,
                     reference_sigma: float | None = None, seed: int = 0, progress: bool = False) -> DensityResult:
    """Estimate D(c, c') for all pairs of classes (see DensityResult) from held-out images.

    At each sigma, `per_class` images of each class get one noise draw y; every y is denoised
    under every class centroid, and the squared difference of two outputs on the SAME y
    estimates E ||f(y, phibar_p) - f(y, phibar_q)||^2 (common random numbers: the noise
    cancels from the difference). A pair of identical classes gives exactly 0.
    """
    sigmas = density_sigmas() if sigmas is None else np.sort(np.asarray(sigmas, np.float64))
    k = len(fg.classes)
    pairs = class_pairs(k)
    by_class = []
    for c in range(k):
        xc = images[labels == c][:per_class]
        if len(xc) == 0:
            raise EngineError(f"class '{fg.classes[c]}' has no held-out images for the density distance")
        by_class.append(torch.from_numpy(xc))
    gen = torch.Generator().manual_seed(seed)
    integrand = np.zeros((len(sigmas), len(pairs)))
    for s, sigma in enumerate(progress_bar(list(sigmas), "density distance", progress)):
        # E_c[q, q'] = mean over y ~ p_c,sigma of ||f(y, q) - f(y, q')||^2, for the pairs only
        expect = np.zeros((k, len(pairs)))
        for c in range(k):
            out = conditioned_outputs(fg, noisy(by_class[c], float(sigma), gen), float(sigma), k)
            diff = (out[pairs[:, 0]] - out[pairs[:, 1]]).flatten(2)          # (P, B, pixels)
            expect[c] = (diff ** 2).sum(2).mean(1).numpy()
        both = expect[pairs[:, 0], np.arange(len(pairs))] + expect[pairs[:, 1], np.arange(len(pairs))]
        integrand[s] = both / sigma ** 3
    distance = integrate_log_sigma(integrand, sigmas)
    matched = matched_dims(fg)
    ref = float(fg.centroids.sigmas[0]) if reference_sigma is None else float(reference_sigma)
    d2, d2_full = centroid_d2(fg, pairs, ref, matched), centroid_d2(fg, pairs, ref)
    r, rho = correlations(d2, distance)
    r_full, rho_full = correlations(d2_full, distance)
    by_sigma = np.stack([centroid_d2(fg, pairs, float(sg), matched) for sg in sigmas])
    local = np.array([correlations(by_sigma[s], integrand[s])[0] for s in range(len(sigmas))])
    # each grid point's trapezoid weight in log sigma, so that the shares sum to 1
    dl = np.diff(np.log(sigmas))
    weight = np.concatenate([[0], dl / 2]) + np.concatenate([dl / 2, [0]])
    part = integrand * sigmas[:, None] * weight[:, None]
    share = (part / np.maximum(part.sum(0), 1e-300)).mean(1)
    return DensityResult(list(fg.classes), pairs, distance, d2, d2_full, sigmas, integrand, ref,
                         list(fg.config.matched_blocks), min(len(b) for b in by_class), r, rho, r_full, rho_full,
                         by_sigma, local, share)


def matched_dims(fg) -> np.ndarray:
    """The entries of phi that belong to the matched blocks (those a centroid fixes)."""
    return np.concatenate([np.arange(s.start, s.stop) for b, s in fg.layer_slices().items()
                           if b in fg.config.matched_blocks])


def centroid_d2(fg, pairs: np.ndarray, sigma: float, dims=slice(None)) -> np.ndarray:
    """(P,) squared distances between the class centroids of each pair at sigma, over `dims` of phi."""
    cents = torch.stack([fg.centroid(c, sigma) for c in range(len(fg.classes))]).cpu().numpy().astype(np.float64)
    return ((cents[pairs[:, 0]][:, dims] - cents[pairs[:, 1]][:, dims]) ** 2).sum(1)


def correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman correlations (nan for fewer than 3 points or constant data)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    from scipy import stats        # here, not at the top: scipy.stats adds a second to every command's start
    return float(stats.pearsonr(x, y)[0]), float(stats.spearmanr(x, y)[0])
