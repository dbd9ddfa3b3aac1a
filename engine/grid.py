"""Image grids for PNG output (command line, app, report)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image


def make_grid(images, ncol: int | None = None, pad: int = 2, scale: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> uint8 (rows*H, cols*W[, 3]) grid, upscaled by nearest neighbour."""
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=np.float32)
    n, c, h, w = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = np.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), pad_value, np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = x[i]
    grid = np.clip(grid, 0, 1)
    if scale > 1:
        grid = grid.repeat(scale, 1).repeat(scale, 2)
    out = (grid * 255 + 0.5).astype(np.uint8)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def save_grid(images, path, ncol: int | None = None, scale: int = 4) -> None:
    Image.fromarray(make_grid(images, ncol=ncol, scale=scale)).save(path)
