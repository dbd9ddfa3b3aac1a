"""One image denoised with and without knowing its class (paper figure 2, for a single image).

The image is noised once at sigma (seed fixes the noise); the feature-guided model denoises it
under every class centroid phibar_q(sigma), the mixture model without a target. PSNR against the
clean image says, class by class, whether knowing that class helped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .analysis import conditioned_outputs, noisy, plain_denoise
from .metrics import psnr


@dataclass
class OneImage:
    """The outputs and their PSNR in dB; the mixture's are None without a mixture model."""
    clean: np.ndarray                   # (C, H, W)
    noisy: np.ndarray                   # (C, H, W)
    by_class: np.ndarray                # (K, C, H, W): conditioned on each class centroid
    mixture: np.ndarray | None          # (C, H, W)
    psnr_noisy: float
    psnr_by_class: np.ndarray           # (K,)
    psnr_mixture: float | None

    @property
    def reference(self) -> float:
        """What a class's output is measured against: the mixture's PSNR, else the noisy input's."""
        return self.psnr_mixture if self.psnr_mixture is not None else self.psnr_noisy

    @property
    def gain_db(self) -> np.ndarray:
        """PSNR of each class's output minus the reference's (positive: knowing the class helped)."""
        return self.psnr_by_class - self.reference


@torch.no_grad()
def denoise_one(fg, mixture, image: np.ndarray, sigma: float, seed: int = 0) -> OneImage:
    """Denoise image (C, H, W) in [0, 1] at noise level sigma under every class, and by the mixture."""
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
    y = noisy(x, sigma, torch.Generator().manual_seed(seed))
    k = len(fg.classes)
    outs = conditioned_outputs(fg, y, sigma, k)[:, 0]                     # (K, C, H, W)
    p_cond = psnr(outs, x.expand(k, -1, -1, -1)).numpy().astype(float)
    mixed = plain_denoise(mixture, y)[0] if mixture is not None else None
    return OneImage(x[0].numpy(), y[0].numpy(), outs.numpy(), None if mixed is None else mixed.numpy(),
                    float(psnr(y, x)[0]), p_cond,
                    None if mixed is None else float(psnr(mixed[None], x)[0]))
