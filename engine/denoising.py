"""Denoising held-out images, conditioned and not (the paper's figs 2 and 3; docs/method.md,
"Claims as measurements"): PSNR vs sigma of the feature-guided denoiser under each image's own
class centroid and under a wrong one, against the mixture denoiser on the same noisy images; and
the grid of noisy images denoised under every class. The helpers here (noise, conditioned and
plain denoising in batches, the held-out subset) serve every measurement of analysis.py.

Conventions: images are held-out test images of the checkpoint's dataset; conditioning on a
class uses its centroid phibar_c at the true sigma of the noise added; every random draw comes
from a torch.Generator seeded by the `seed` argument.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .conditional import ClassifierFreeGuidance, condition
from .errors import EngineError
from .metrics import psnr

PSNR_SIGMAS = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0)


def progress_bar(items, desc: str, progress: bool):
    """items, with a progress bar on stderr when `progress`."""
    return tqdm(items, desc=desc, disable=not progress, file=sys.stderr, leave=False)


def noisy(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=gen)


def wrong_classes(labels: np.ndarray, k: int) -> np.ndarray:
    """A wrong class for each image, cycling through all K - 1 wrong classes over the images."""
    offset = 1 + np.arange(len(labels)) % max(1, k - 1)
    return (labels + offset) % k


@torch.no_grad()
def conditioned_denoise(ckpt, y: torch.Tensor, classes, sigma: float, batch: int = 256,
                        cfg: float = 0.0) -> torch.Tensor:
    """f(y, phibar_c(sigma)) with c the class of each image (a (B,) array or a single class); a
    conditional model's f(y, e_c) (engine/conditional.py, `condition`), or with `cfg` > 0 its
    classifier-free guided D_w(y, e_c), the denoiser its guided walk takes."""
    c = torch.as_tensor(np.broadcast_to(np.asarray(classes), (len(y),)).copy(), dtype=torch.long)
    s = torch.full((len(y),), float(sigma))
    if cfg:
        guided = ClassifierFreeGuidance(ckpt, cfg)
        f = lambda y_, told: guided(y_.to(ckpt.device), told)[0]     # noqa: E731
    else:
        f = ckpt.denoise
    return torch.cat([f(y[i:i + batch], condition(ckpt, c[i:i + batch], s[i:i + batch])).cpu()
                      for i in range(0, len(y), batch)])


@torch.no_grad()
def plain_denoise(ckpt, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([ckpt.denoise(y[i:i + batch]).cpu() for i in range(0, len(y), batch)])


GAIN_SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def denoiser_gain(ckpt, images: np.ndarray, labels: np.ndarray, classes: list[str], sigmas=GAIN_SIGMAS,
                  seed: int = 0, cfg: float = 0.0) -> dict:
    """Per class and sigma: the denoised image's PSNR minus the noisy input's (dB), each image
    conditioned on its own class's centroid at the true sigma (dB of one image each, then the
    mean). Below 0 the denoiser returns an image worse than it was given: the sampler's last steps
    and its final f(y_T) run at the smallest sigmas, so there it must be at least 0."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images)
    out = {name: {} for name in classes}
    for sigma in sigmas:
        y = noisy(x, sigma, gen)
        gain = psnr(conditioned_denoise(ckpt, y, labels, sigma, cfg=cfg), x) - psnr(y, x)
        for c, name in enumerate(classes):
            out[name][str(sigma)] = float(gain[torch.from_numpy(labels == c)].mean())
    return out


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
    for sigma in progress_bar(list(sigmas), "denoising", progress):
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
