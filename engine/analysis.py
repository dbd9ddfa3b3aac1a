"""The paper's claims as measurements (docs/method.md, "Claims as measurements"). Each function returns plain data
(dataclasses of numpy arrays); figures.py draws them and report.py runs them all.

- denoising:       PSNR vs sigma, correct / wrong conditioning vs the mixture (figs 2, 3)
- separation:      per layer, centroid distances against within-class spread (fig 4)
- density distance: symmetrised KL between class densities vs squared centroid distance (fig 5)
- bifurcation:     two targets, one noise: where the trajectories part (fig 1)
- interpolation:   samples along alpha between two centroids, judged by a classifier

Conventions: images are held-out test images of the checkpoint's dataset; conditioning on a
class uses its centroid phibar_c at the true sigma of the noise added; every random draw
comes from a torch.Generator seeded by the `seed` argument.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from .errors import EngineError
from .config import SamplerSettings
from .metrics import psnr  # noqa: F401 (analysis.psnr: the app's)
from .sampler import ClassTarget, Interpolation, Target, run

PSNR_SIGMAS = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0)
# Density distance Monte Carlo (documented in docs/analysis.md): sigma grid from the
# sampler's sigma_L to the top of the training noise range, images per class per sigma.
DENSITY_SIGMA_RANGE = (0.01, 1.2)
DENSITY_SIGMAS = 10
DENSITY_PER_CLASS = 12
ALPHAS = tuple(np.round(np.arange(-0.2, 1.21, 0.2), 2))


def _progress(items, desc: str, progress: bool):
    return tqdm(items, desc=desc, disable=not progress, file=sys.stderr, leave=False)


def noisy(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=gen)


def wrong_classes(labels: np.ndarray, k: int) -> np.ndarray:
    """A wrong class for each image, cycling through all K - 1 wrong classes over the images."""
    offset = 1 + np.arange(len(labels)) % max(1, k - 1)
    return (labels + offset) % k


@torch.no_grad()
def conditioned_denoise(ckpt, y: torch.Tensor, classes, sigma: float, batch: int = 256) -> torch.Tensor:
    """f(y, phibar_c(sigma)) with c the class of each image (a (B,) array or a single class)."""
    c = torch.as_tensor(np.broadcast_to(np.asarray(classes), (len(y),)).copy(), dtype=torch.long)
    s = torch.full((len(y),), float(sigma))
    return torch.cat([ckpt.denoise(y[i:i + batch], ckpt.centroid(c[i:i + batch], s[i:i + batch])).cpu()
                      for i in range(0, len(y), batch)])


@torch.no_grad()
def plain_denoise(ckpt, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([ckpt.denoise(y[i:i + batch]).cpu() for i in range(0, len(y), batch)])


def held_out_subset(dataset, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` images of each class (test images in a fixed order)."""
    idx = np.concatenate([np.nonzero(dataset.labels == c)[0][:per_class] for c in range(len(dataset.classes))])
    return dataset.images[idx], dataset.labels[idx]


def check_pair(fg, mixture) -> None:
    if fg.kind != "feature_guided":
        raise EngineError(f"{fg.path}: the first model must be feature-guided (it is {fg.kind})")
    if mixture is not None and (mixture.classes != fg.classes or mixture.shape != fg.shape):
        raise EngineError(f"{mixture.path}: the mixture model was trained on other classes or image size "
                          f"than {fg.path}; compare models of the same dataset")


# ----------------------------------------------------------------------------- denoising (figs 2, 3)

@dataclass
class DenoisingResult:
    sigmas: np.ndarray              # (S,)
    psnr_correct: np.ndarray        # (S,) mean PSNR (dB) of f(y, phibar_true class(sigma))
    psnr_wrong: np.ndarray          # (S,) of f(y, phibar_other class(sigma))
    psnr_mixture: np.ndarray        # (S,) of the mixture denoiser f(y)
    psnr_noisy: np.ndarray          # (S,) of y itself, for reference
    stderr: dict[str, np.ndarray]   # standard error of each mean, same keys without "psnr_"
    n_images: int

    @property
    def gain_db(self) -> np.ndarray:
        """Correct conditioning minus mixture, dB (fig 3 left)."""
        return self.psnr_correct - self.psnr_mixture

    @property
    def wrong_gain_db(self) -> np.ndarray:
        """Wrong conditioning minus mixture, dB (negative: wrong conditioning hurts)."""
        return self.psnr_wrong - self.psnr_mixture

    def at(self, sigma: float) -> int:
        i = int(np.argmin(np.abs(self.sigmas - sigma)))
        if not math.isclose(self.sigmas[i], sigma, rel_tol=1e-6):
            raise KeyError(sigma)
        return i


@torch.no_grad()
def denoising(fg, mixture, images: np.ndarray, labels: np.ndarray, sigmas=PSNR_SIGMAS, seed: int = 0,
              progress: bool = False) -> DenoisingResult:
    """Mean PSNR vs sigma of the feature-guided denoiser with correct and wrong conditioning,
    and of the mixture denoiser, all on the same noisy images."""
    check_pair(fg, mixture)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images)
    wrong = wrong_classes(labels, len(fg.classes))
    rows = {k: [] for k in ("correct", "wrong", "mixture", "noisy")}
    for sigma in _progress(list(sigmas), "denoising", progress):
        y = noisy(x, float(sigma), gen)
        rows["correct"].append(psnr(conditioned_denoise(fg, y, labels, sigma), x).numpy())
        rows["wrong"].append(psnr(conditioned_denoise(fg, y, wrong, sigma), x).numpy())
        rows["mixture"].append(psnr(plain_denoise(mixture, y), x).numpy())
        rows["noisy"].append(psnr(y, x).numpy())
    per = {k: np.stack(v) for k, v in rows.items()}                   # (S, N)
    mean = {k: v.mean(1) for k, v in per.items()}
    err = {k: v.std(1, ddof=1) / math.sqrt(v.shape[1]) if v.shape[1] > 1 else np.zeros(len(v))
           for k, v in per.items()}
    return DenoisingResult(np.asarray(sigmas, np.float64), mean["correct"], mean["wrong"], mean["mixture"],
                           mean["noisy"], err, len(x))


@dataclass
class DenoisingGrid:
    """Noisy images (rows) x conditioning classes (columns), plus the mixture (fig 2)."""
    sigma: float
    rows: np.ndarray           # (R,) class of each noisy image
    columns: np.ndarray        # (Q,) conditioning classes
    clean: np.ndarray          # (R, C, H, W)
    noisy: np.ndarray          # (R, C, H, W)
    examples: np.ndarray       # (Q, C, H, W) an example image of each conditioning class
    conditioned: np.ndarray    # (R, Q, C, H, W) f(y_r, phibar_q(sigma))
    mixture: np.ndarray        # (R, C, H, W) f(y_r) of the mixture model
    psnr: np.ndarray           # (R, Q) dB
    psnr_mixture: np.ndarray   # (R,) dB


@torch.no_grad()
def denoising_grid(fg, mixture, images: np.ndarray, labels: np.ndarray, classes=None, sigma: float = 1.0,
                   seed: int = 0) -> DenoisingGrid:
    """One noisy image of each of `classes` (default: the first four) denoised under every one
    of those classes' centroids, and by the mixture. The example of a class is its second
    image, so it is never the noisy image itself."""
    check_pair(fg, mixture)
    classes = np.arange(min(4, len(fg.classes))) if classes is None else \
        np.array([fg.class_index(c) for c in classes])
    firsts, examples = [], []
    for c in classes:
        idx = np.nonzero(labels == c)[0]
        if len(idx) < 2:
            raise EngineError(f"class '{fg.classes[c]}' needs at least 2 held-out images for the grid")
        firsts.append(idx[0])
        examples.append(idx[1])
    x = torch.from_numpy(images[firsts])
    y = noisy(x, sigma, torch.Generator().manual_seed(seed))
    q = len(classes)
    y_rep = y.repeat_interleave(q, 0)                                  # row r, column q at r * Q + q
    cond = conditioned_denoise(fg, y_rep, np.tile(classes, len(classes)), sigma)
    mix = plain_denoise(mixture, y)
    p = psnr(cond, x.repeat_interleave(q, 0)).reshape(len(classes), q).numpy()
    return DenoisingGrid(float(sigma), classes, classes, x.numpy(), y.numpy(), images[examples],
                         cond.reshape(len(classes), q, *x.shape[1:]).numpy(), mix.numpy(), p,
                         psnr(mix, x).numpy())


# ----------------------------------------------------------------------------- separation (fig 4)

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


# ----------------------------------------------------------------------------- density distance (fig 5)

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
    for s, sigma in enumerate(_progress(list(sigmas), "density distance", progress)):
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
    return float(stats.pearsonr(x, y)[0]), float(stats.spearmanr(x, y)[0])


# ----------------------------------------------------------------------------- bifurcation (fig 1)

@dataclass
class BifurcationResult:
    """The same initial noise and noise sequence under targets a and b (one run each).

    At step t: sigma[t] the noise level (geometric mean of both runs' estimates, mean over
    images); distance_pixels[t] = ||y^a_t - y^b_t|| / sqrt(N) (RMS per pixel) and
    distance_phi[t] = ||phi(y^a_t) - phi(y^b_t)|| (plain-pass phi), both means over images.
    The trajectories separate at bifurcation_sigma: the sigma where the distance first reaches
    half its final value (interpolated in log sigma between steps).
    """
    a: str
    b: str
    sigma: np.ndarray               # (T,)
    distance_pixels: np.ndarray     # (T,)
    distance_phi: np.ndarray        # (T,)
    bifurcation_sigma: float
    bifurcation_sigma_phi: float
    samples_a: np.ndarray           # (n, C, H, W) final samples
    samples_b: np.ndarray
    sigma_0: float
    sigma_L: float
    seed: int


def half_rise_sigma(sigma: np.ndarray, distance: np.ndarray) -> float:
    """The sigma where distance first reaches half of its final value (log-sigma interpolation)."""
    half = distance[-1] / 2
    if not half > 0:
        return float("nan")
    t = int(np.argmax(distance >= half))
    if t == 0:
        return float(sigma[0])
    f = (half - distance[t - 1]) / max(distance[t] - distance[t - 1], 1e-30)
    return float(math.exp((1 - f) * math.log(sigma[t - 1]) + f * math.log(sigma[t])))


@torch.no_grad()
def run_trajectory(ckpt, target: Target, n: int, seed: int, settings: SamplerSettings, start=None):
    """Run the sampler, keeping y_t and sigma_t of every step: (ys (T, n, C, H, W), sigmas (T, n), final)."""
    final, steps = run(ckpt, target, n=n, seed=seed, settings=settings, start=start, record=True)
    walk = steps[:-1]
    return (torch.stack([s.y.cpu() for s in walk]), torch.stack([s.sigma.cpu() for s in walk]),
            final.cpu().numpy())


def _pad(x: torch.Tensor, t: int) -> torch.Tensor:
    """Hold the last step (a finished run stays where it stopped) up to t steps."""
    return torch.cat([x, x[-1:].expand(t - len(x), *x.shape[1:])]) if len(x) < t else x


@torch.no_grad()
def bifurcation(fg, a, b, n: int = 8, seed: int = 0, settings: SamplerSettings | None = None,
                progress: bool = False) -> BifurcationResult:
    """Sample n images under class a and under class b with the same seed and start (so the same
    y_0 and noise sequence, see sampler.py) and measure how the trajectories part."""
    settings = settings or SamplerSettings()
    ia, ib = fg.class_index(a), fg.class_index(b)
    # one y_0 for both targets (the data mean, not each class's; sampler.py): only the targets differ
    runs = [run_trajectory(fg, ClassTarget(i), n, seed, settings, start=fg.mean)
            for i in _progress([ia, ib], "bifurcation", progress)]
    t = max(len(r[0]) for r in runs)
    (ya, sa, fa), (yb, sb, fb) = [(_pad(y, t), _pad(s, t), f) for y, s, f in runs]
    pixels = ((ya - yb).flatten(2).norm(dim=2) / math.sqrt(ya[0, 0].numel())).mean(1).numpy()
    phi_a = fg.phi(ya.flatten(0, 1), batch=256).cpu().reshape(t, n, -1)
    phi_b = fg.phi(yb.flatten(0, 1), batch=256).cpu().reshape(t, n, -1)
    phi_d = (phi_a - phi_b).norm(dim=2).mean(1).numpy()
    sigma = torch.sqrt(sa.clamp_min(1e-12) * sb.clamp_min(1e-12)).mean(1).numpy()
    return BifurcationResult(fg.classes[ia], fg.classes[ib], sigma, pixels, phi_d,
                             half_rise_sigma(sigma, pixels), half_rise_sigma(sigma, phi_d), fa, fb,
                             settings.sigma_0, settings.sigma_L, seed)


# ----------------------------------------------------------------------------- interpolation

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
    if classifier is None:
        from .classifier import load_classifier
        classifier = load_classifier(fg, progress=progress)
    alphas = np.asarray(alphas, np.float64)
    samples, probs = [], []
    for al in _progress(list(alphas), "interpolation", progress):
        x = run(fg, Interpolation(ia, ib, float(al)), n=n, seed=seed, settings=settings)[0].cpu().numpy()
        samples.append(x)
        probs.append(classifier.probabilities(x))
    p = np.stack(probs)
    rho = float(stats.spearmanr(alphas, p[:, :, ib].mean(1))[0]) if len(alphas) > 2 else float("nan")
    return InterpolationResult(fg.classes[ia], fg.classes[ib], alphas, np.stack(samples), p,
                               p[:, :, ia].mean(1), p[:, :, ib].mean(1), rho, list(fg.classes))
