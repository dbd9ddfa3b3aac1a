"""Image metrics, each written once: PSNR, diversity, nearest-neighbour distance, the kernel
distance (KID's estimator) and the radial power-spectrum error used by evaluation, the analyses,
the app and the experiments."""
from __future__ import annotations

import numpy as np
import torch


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1] (peak 1)."""
    mse = ((x - ref) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1 / mse)


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance between two different images of x (N, ...): the diversity measure."""
    f = torch.from_numpy(x.reshape(len(x), -1))
    d = torch.cdist(f, f)
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def kernel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD between feature sets a (n, D) and b (m, D) with the kernel
    k(u, v) = (u.v / D + 1)^3 of KID: 0 on average for two draws of one distribution."""
    a, b = torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(b, np.float64))
    n, m, d = len(a), len(b), a.shape[1]
    if n < 2 or m < 2:
        raise ValueError("kernel_distance needs at least two points in each set")
    kaa, kbb, kab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    within = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1)) + (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kab.mean())


def nearest_distance(x: np.ndarray, bank: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N,) Euclidean distance of each image of x to its nearest image in `bank` (memorisation)."""
    b = torch.from_numpy(bank.reshape(len(bank), -1))
    out = []
    for i in range(0, len(x), batch):
        q = torch.from_numpy(x[i:i + batch].reshape(-1, b.shape[1]))
        out.append(torch.cdist(q, b).min(1).values)
    return torch.cat(out).numpy()


def radial_power_db(x: np.ndarray) -> np.ndarray:
    """Mean power spectrum of square images x (N, C, H, H), each less its mean, by integer radius
    1 .. H/2 - 1 (colour channels averaged), in dB: a texture's second-order statistics by scale."""
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=(2, 3), keepdims=True)
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(axis=(0, 1))
    n = x.shape[-1]
    f = np.fft.fftfreq(n) * n
    r = np.rint(np.hypot(*np.meshgrid(f, f, indexing="ij"))).astype(int)
    return np.array([10 * np.log10(power[r == k].mean()) for k in range(1, n // 2)])


def spectrum_error_db(x: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference, in dB over the radii, between the radial power spectra of two
    sets of images: 0 for the same texture at the same contrast; two sets of real crops of one
    class differ by a few tenths."""
    return float(np.abs(radial_power_db(x) - radial_power_db(reference)).mean())
