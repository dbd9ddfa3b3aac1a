"""Where images lie in phi space: against the class centroids, in an atlas's maps, and along a
sampling trajectory.

A new image (an upload, a sample) is described by its features phi(x + sigma z) at one of the
atlas's noise levels (docs/method.md, "Feature vector phi"); its nearest class centroid, and the
distance to it in units of that class's own spread (engine.measures.class_spreads), say whether
it looks like a class at all. Images larger than the model's crops are cut into crops at their
own pixel scale first (`crops_at_scale`): the model learnt its classes from crops cut from
photographs without rescaling them, so shrinking a large picture to one crop would show it
textures at a scale it never saw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .atlas import ALL, Atlas, noisy_phi
from .measures import Nearest, class_spreads, nearest_centroid

MOST_CROPS = 16          # crops cut from one large image: evenly spread over it


@dataclass
class Crops:
    """An image as the model sees it: crops of its side, and how they were made."""
    images: np.ndarray          # (M, C, size, size) float32 in [0, 1]
    source: tuple[int, int]     # the image's height and width in pixels
    cut: bool                   # True: cut into crops at the image's own scale; False: fitted whole

    def describe(self, size: int) -> str:
        h, w = self.source
        if self.cut:
            return (f"{w}x{h} pixels, cut into {len(self.images)} crops of {size} pixels at its own scale "
                    "(the scale of the training crops)")
        return f"{w}x{h} pixels, fitted to {size} pixels"


def crops_at_scale(image: np.ndarray, size: int, most: int = MOST_CROPS) -> Crops:
    """(C, H, W) -> crops of `size` pixels at the image's own pixel scale, on a regular grid of at
    most `most` evenly spread over the image; an image no larger than `size` (either side) is
    fitted whole (engine.data.fit_image)."""
    from .data import fit_image
    c, h, w = image.shape
    if min(h, w) <= size:
        return Crops(fit_image(image, size)[None], (h, w), False)
    rows, cols = max(1, h // size), max(1, w // size)
    per_side = int(np.floor(np.sqrt(most)))
    rows, cols = min(rows, per_side), min(cols, per_side)
    tops = np.linspace(0, h - size, rows).round().astype(int)
    lefts = np.linspace(0, w - size, cols).round().astype(int)
    crops = np.stack([image[:, t:t + size, l:l + size] for t in tops for l in lefts])
    return Crops(np.ascontiguousarray(crops, np.float32), (h, w), True)


@dataclass
class Placement:
    """Images' features at one noise level and where their mean lies against the class centroids."""
    phi: np.ndarray             # (M, D_full) phi(x + sigma z) of each image
    nearest: Nearest            # of the mean of phi over the images, in `layer`
    sigma: float
    layer: str


def place_images(atlas: Atlas, ckpt, model: str, images: np.ndarray, layer: str = ALL,
                 sigma: float | None = None, seed: int = 0) -> Placement:
    """phi of images (M, C, H, W) noised at sigma (default: the atlas's smallest) by `ckpt`, the
    atlas's `model`; the nearest centroid of their mean phi in `layer`, with the distance in units
    of that class's spread among the atlas's held-out images."""
    s = atlas.sigmas[atlas.sigma_index(sigma if sigma is not None else atlas.sigmas[0])]
    phi = noisy_phi(ckpt, np.ascontiguousarray(images, np.float32), s, seed=seed)
    cents = atlas.layer_centroids(model, layer, s)
    spreads = class_spreads(atlas.layer_phi(model, layer, s), atlas.labels, cents)
    near = nearest_centroid(atlas.slice_phi(model, layer, phi).mean(0), cents, spreads)
    return Placement(phi, near, s, layer)


@torch.no_grad()
def trajectory_phi(ckpt, y: np.ndarray, batch: int = 256) -> np.ndarray:
    """phi(y_t) along trajectories y (K, T, C, H, W): (K, T, D)."""
    k, t = y.shape[:2]
    flat = torch.from_numpy(np.ascontiguousarray(y.reshape(k * t, *y.shape[2:]), np.float32))
    return ckpt.phi(flat, batch=batch).cpu().numpy().reshape(k, t, -1)
