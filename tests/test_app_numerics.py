"""The numerics the app shows, computed in the engine: crops at an image's own scale, where images
lie against the class centroids, phi along trajectories, one image denoised under every class, and
the one palette of classes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.atlas import ALL
from engine.comparison import denoise_one
from engine.palette import CLASS_COLOURS, class_colour, colour_of, series_style
from engine.placement import crops_at_scale, place_images, trajectory_phi


def test_a_large_image_is_cut_into_crops_at_its_own_scale():
    image = np.random.default_rng(0).random((1, 70, 100)).astype(np.float32)
    crops = crops_at_scale(image, 32)
    assert crops.cut and crops.source == (70, 100) and crops.images.shape == (6, 1, 32, 32)   # 2 rows x 3
    tops, lefts = [0, 38], [0, 34, 68]                       # evenly spread, the last flush with the edge
    for k, (t, l) in enumerate((t, l) for t in tops for l in lefts):
        np.testing.assert_array_equal(crops.images[k], image[:, t:t + 32, l:l + 32])   # pixels unscaled
    assert len(crops_at_scale(np.zeros((1, 320, 320), np.float32), 32, most=4).images) == 4
    small = crops_at_scale(image[:, :20, :30], 32)
    assert not small.cut and small.images.shape == (1, 1, 32, 32)
    assert "cut into 6 crops of 32 pixels" in crops.describe(32) and "fitted to 32" in small.describe(32)


def test_a_class_s_own_images_are_placed_nearest_its_centroid(tiny_fg, tiny_atlas):
    """The mean features of a class's held-out images lie nearest that class's centroid for most
    classes (chance: one in eight), and the distance is measured in units of the class's spread."""
    right = 0
    for c in range(len(tiny_fg.classes)):
        images = tiny_atlas.images[tiny_atlas.labels == c]
        placed = place_images(tiny_atlas, tiny_fg, "feature_guided", images)
        assert placed.sigma == tiny_atlas.sigmas[0] and placed.layer == ALL
        assert placed.phi.shape == (len(images), tiny_atlas.phi["feature_guided"].shape[2])
        near = placed.nearest
        assert near.ratio == pytest.approx(near.distance / near.spread) and near.far == (near.ratio > 1)
        right += near.index == c
    assert right >= len(tiny_fg.classes) // 2, right


def test_phi_along_trajectories_is_phi_of_every_step(tiny_fg):
    y = np.random.default_rng(1).random((2, 3, *tiny_fg.shape)).astype(np.float32)
    phi = trajectory_phi(tiny_fg, y)
    assert phi.shape == (2, 3, tiny_fg.model.phi_dim)
    np.testing.assert_allclose(phi[1, 2], tiny_fg.phi(torch.from_numpy(y[1, 2:3])).numpy()[0], atol=1e-5)


def test_one_image_denoised_under_every_class_and_by_the_mixture(tiny_fg, tiny_mixture, tiny_atlas):
    x = tiny_atlas.images[0]
    r = denoise_one(tiny_fg, tiny_mixture, x, 0.5, seed=3)
    k = len(tiny_fg.classes)
    assert r.by_class.shape == (k, *tiny_fg.shape) and r.mixture.shape == tiny_fg.shape
    noise = r.noisy - x
    assert abs(10 * math.log10(1 / float((noise ** 2).mean())) - r.psnr_noisy) < 1e-3
    assert abs(noise.std() - 0.5) < 0.1                              # noise of level sigma
    assert r.psnr_by_class.max() > r.psnr_noisy                      # denoising helps at this noise level
    np.testing.assert_allclose(r.gain_db, r.psnr_by_class - r.psnr_mixture)
    again = denoise_one(tiny_fg, tiny_mixture, x, 0.5, seed=3)
    np.testing.assert_array_equal(again.noisy, r.noisy)               # the seed fixes the noise
    alone = denoise_one(tiny_fg, None, x, 0.5, seed=3)
    assert alone.mixture is None and alone.psnr_mixture is None
    np.testing.assert_allclose(alone.gain_db, alone.psnr_by_class - alone.psnr_noisy)   # against the input


def test_one_palette_of_classes_and_greys_for_what_is_not_a_class():
    classes = ["brick", "grass", "stars"]
    assert colour_of("stars", classes) == class_colour(2) == CLASS_COLOURS[2]
    assert class_colour(len(CLASS_COLOURS)) == class_colour(0)
    assert len(set(CLASS_COLOURS)) == len(CLASS_COLOURS)
    styles = [series_style(i) for i in range(15)]
    assert len(set(styles)) == 15 and not {c for c, _ in styles} & set(CLASS_COLOURS)
