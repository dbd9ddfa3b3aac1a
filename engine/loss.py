"""The one training loss (docs/method.md, "Loss"), its noise law, its partners and their pooling.

Feature-guided:  E || f(x + sigma z, phi(x' + sigma z')) - x ||^2,  x' another image of
                 the same class (a fresh partner every step), phi computed by the same
                 network in the same pass, gradients flowing through both.
Mixture:         E || f(x + sigma z) - x ||^2 on all classes, no projection.
Conditional:     E || f(x + sigma z, e_c) - x ||^2, e_c the embedding of x's class, or of the
                 null class for a dropped fraction (engine/conditional.py).

Noise law (our choice): per image, half the draws log-uniform on [0.005, sigma_max]
(detail at small sigma, where the sampler spends most of its steps) and half uniform on
[0, sigma_max] (coverage of the large sigma where conditioning matters most).

Noise-level weighting (`sigma_data`, our choice): each image's squared error can be weighted by
1 + (sigma_data / sigma)^2 - plain MSE at large sigma, the noise-prediction loss at small sigma
(the weighting of Karras et al. 2022, EDM). Why: the plain MSE is dominated by the large sigma,
and a plainly trained network can damage what it is given at small sigma, so the sampler's last
steps wash the texture out. Trained from scratch with it, the network under-denoised at middle
sigma; as a fine-tuning stage of a plainly trained network it worked. The shipped recipes train
with plain MSE (sigma_data 0; recipes/*.toml say each stage's). What each choice measured, model
by model: docs/model.md ("The models, round by round"). It is still the one denoising loss, with
a weight per noise level.

Pooled targets (`pool`, our choice beyond the paper's single partner): with a single partner,
phi(x' + sigma z') says no more about the class than the image's own phi(x + sigma z), so
replacing one by the other adds no information and the network learns to ignore the means it is
given. Averaging phi over `pool` partners of the class at the same sigma (`pooled`) makes the
target a Monte-Carlo centroid, like the sampler's phibar_c(sigma), so conditioning pays off and
is learned (docs/model.md measures both).
"""
from __future__ import annotations

import contextlib
import math

import torch

SIGMA_MIN_DRAWN = 0.005     # the log-uniform half of the noise law starts here


def _log_uniform(u: torch.Tensor, sigma_max: float) -> torch.Tensor:
    return torch.exp(math.log(SIGMA_MIN_DRAWN) + u * (math.log(sigma_max) - math.log(SIGMA_MIN_DRAWN)))


def sample_sigmas(n: int, sigma_max: float, gen: torch.Generator) -> torch.Tensor:
    """n noise levels of the noise law (module doc)."""
    u = torch.rand(n, generator=gen)
    log_uniform = _log_uniform(u, sigma_max)
    uniform = torch.rand(n, generator=gen) * sigma_max
    pick = torch.rand(n, generator=gen) < 0.5
    return torch.where(pick, log_uniform, uniform)


def stratified_sigmas(n: int, sigma_max: float, gen: torch.Generator) -> torch.Tensor:
    """The same law as sample_sigmas, stratified: half the draws log-uniform and half uniform,
    each spread over equal-probability strata. Grouped batches (pool > 1) have only a few
    distinct sigmas; stratifying keeps every batch's noise levels - and so the batch
    statistics of the bias-free norms - close to the law instead of all high or all low."""
    k = n // 2
    strata = lambda m: (torch.arange(m) + torch.rand(m, generator=gen)) / max(m, 1)
    out = torch.cat([_log_uniform(strata(n - k), sigma_max), strata(k) * sigma_max])
    return out[torch.randperm(n, generator=gen)]


def partners(labels: torch.Tensor, by_class: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """For each label, the index of a random training image of the same class: x' of the loss."""
    out = torch.empty_like(labels)
    for c, idx in enumerate(by_class):
        m = labels == c
        k = int(m.sum())
        if k:
            out[m] = idx[torch.randint(len(idx), (k,), generator=gen)]
    return out


def pooled(phi: torch.Tensor, pool: int) -> torch.Tensor:
    """The partners' phi (B, D) -> each image's target: the mean over its group of `pool`
    consecutive images (i // pool), a Monte-Carlo estimate of the class centroid."""
    if pool == 1:
        return phi
    b = len(phi)
    return phi.view(b // pool, pool, -1).mean(1).repeat_interleave(pool, dim=0)


def loss_weights(sigma: torch.Tensor, sigma_data: float, sigma_min: float = 0.0, cap: float = 0.0) -> torch.Tensor:
    """Per-image weight 1 + (sigma_data / sigma)^2 (module doc); all ones when sigma_data is 0.
    Zero below sigma_min: a round that trains only the noise levels where the sampler's walk
    decides the class, while the batch - and so the norms' statistics - keeps the usual law.
    With `cap` > 0 the added term is capped there, in the manner of min-SNR weighting (Hang et al.
    2023): small noise levels count up to 1 + cap times the large ones, never more, so they are
    trained without the largest ones being starved (the uncapped weight under-denoises there)."""
    extra = (sigma_data / sigma.clamp_min(1e-3)) ** 2
    if cap > 0:
        extra = extra.clamp_max(cap)
    return (1 + extra) * (sigma >= sigma_min)


def denoising_loss(net, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor, reference: torch.Tensor | None = None,
                   pool: int = 1, sigma_data: float = 0.0, sigma_min: float = 0.0, cap: float = 0.0,
                   autocast=contextlib.nullcontext,
                   labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one batch: (weighted mean loss, per-image plain MSE (B,)).

    x: clean images, y = x + sigma z, sigma (B, ...) their noise levels; reference: the partners
    x' + sigma z' (feature-guided) or None (mixture). Each image is conditioned on the pooled phi
    of its group's references, computed by `net` in the same pass (UNet.forward); labels: the
    classes a conditional network is told (ConditionalUNet.forward), or None."""
    with autocast():
        denoised, _ = net(y, reference=reference, pool=pool) if labels is None else net(y, labels=labels)
    mse = ((denoised.float() - x) ** 2).mean(dim=(1, 2, 3))
    return (loss_weights(sigma.flatten(), sigma_data, sigma_min, cap) * mse).mean(), mse
