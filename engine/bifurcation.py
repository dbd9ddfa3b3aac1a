"""Bifurcation (the paper's fig 1): the same initial noise and noise sequence walked toward two
class targets, and the noise level at which the two trajectories part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import SamplerSettings
from .denoising import progress_bar
from .sampler import ClassTarget, Target, run


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
            for i in progress_bar([ia, ib], "bifurcation", progress)]
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
