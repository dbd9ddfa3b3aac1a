"""Each measurement of analysis.py on the tiny models: shapes and known cases."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from engine import analysis as A
from engine import figures as F
from engine.atlas import held_out
from engine.classifier import train_classifier
from engine.errors import EngineError
from engine.sampler import SamplerSettings

FAST = SamplerSettings(max_steps=25)


@pytest.fixture(scope="module")
def held(tiny_fg):
    images, labels, _ = held_out(tiny_fg, 3)
    return images, labels


def test_denoising_curves(tiny_fg, tiny_mixture, held):
    r = A.denoising(tiny_fg, tiny_mixture, *held, sigmas=(0.1, 1.0))
    for v in (r.psnr_correct, r.psnr_wrong, r.psnr_mixture, r.psnr_noisy, r.gain_db, r.wrong_gain_db):
        assert v.shape == (2,) and np.isfinite(v).all()
    np.testing.assert_allclose(r.gain_db, r.psnr_correct - r.psnr_mixture)
    assert r.n_images == len(held[1]) and r.stderr["correct"].shape == (2,)
    # PSNR of y = x + sigma z is about -20 log10(sigma) (before the clip-free estimate)
    assert abs(r.psnr_noisy[1] - 0.0) < 0.5 and abs(r.psnr_noisy[0] - 20.0) < 0.5
    assert r.at(1.0) == 1
    with pytest.raises(KeyError):
        r.at(0.5)


def test_wrong_classes_are_wrong_and_cover_all():
    labels = np.repeat(np.arange(4), 6)
    wrong = A.wrong_classes(labels, 4)
    assert not np.any(wrong == labels)
    assert all(set(wrong[labels == c]) == set(range(4)) - {c} for c in range(4))


def test_denoising_grid_shapes(tiny_fg, tiny_mixture, held):
    g = A.denoising_grid(tiny_fg, tiny_mixture, *held, classes=["brick", "grass", "stars"], sigma=0.5)
    assert g.conditioned.shape == (3, 3, 1, 16, 16)
    assert g.noisy.shape == g.clean.shape == g.mixture.shape == g.examples.shape == (3, 1, 16, 16)
    assert g.psnr.shape == (3, 3) and g.psnr_mixture.shape == (3,)
    assert list(g.rows) == [tiny_fg.class_index(c) for c in ("brick", "grass", "stars")]


def test_mixture_cannot_be_the_conditional_model(tiny_mixture, held):
    with pytest.raises(EngineError, match="feature-guided"):
        A.denoising(tiny_mixture, tiny_mixture, *held)


def test_separation_known_case():
    # class 0 at (-1, +-s), class 1 at (1, +-s): centroid distance^2 4, spread s^2 each
    s = 0.5
    phi = np.array([[-1, s], [-1, -s], [1, s], [1, -s]], np.float64)
    labels = np.array([0, 0, 1, 1])
    r = A.separation({"m": phi}, labels, {"m": {"all": slice(0, 2)}}, ["all"])
    assert r.pairs.tolist() == [[0, 1]]
    np.testing.assert_allclose(r.pair_d2["m"], [[4.0]])
    np.testing.assert_allclose(r.pair_spread["m"], [[s ** 2]])
    np.testing.assert_allclose(r.separation["m"], [4.0 / s ** 2])
    assert r.best_layer("m") == "all" and r.table() == {"all": {"m": pytest.approx(16.0)}}


def test_embedding_separation_on_tiny_models(tiny_fg, tiny_mixture, held):
    r = A.embedding_separation({"feature_guided": tiny_fg, "mixture": tiny_mixture}, *held, sigma=0.0)
    k = len(tiny_fg.classes)
    assert r.layers == ["enc1", "mid", "dec1", "all"]
    assert r.pair_d2["mixture"].shape == (4, k * (k - 1) // 2)
    assert all(np.isfinite(v).all() and (v > 0).all() for v in r.separation.values())
    assert set(r.table()["mid"]) == {"feature_guided", "mixture"}


def test_integrate_log_sigma_known_integrals():
    s = np.geomspace(1, math.e, 5)
    assert A.integrate_log_sigma(1 / s, s) == pytest.approx(1.0)          # integral of 1/sigma: exact
    s = np.geomspace(1, 2, 200)
    assert A.integrate_log_sigma(s, s) == pytest.approx(1.5, rel=1e-4)     # integral of sigma from 1 to 2


def test_density_distance_shapes_and_identical_classes(tiny_fg, held):
    r = A.density_distance(tiny_fg, *held, sigmas=(0.05, 0.3, 1.0), per_class=2)
    k = len(tiny_fg.classes)
    assert r.density_distance.shape == r.centroid_d2.shape == (k * (k - 1) // 2,)
    assert r.integrand.shape == (3, k * (k - 1) // 2)
    assert (r.density_distance >= 0).all() and (r.density_distance > 0).any()
    m = r.matrix()
    np.testing.assert_allclose(m, m.T)
    assert np.all(np.diag(m) == 0)
    assert np.isfinite(r.pearson) and -1 <= r.spearman <= 1
    assert r.blocks == ["mid", "dec1"] and r.per_class == 2
    # the per-sigma breakdown: the centroid distance at the table's lowest sigma is the headline's,
    # and each pair's parts, weighted as the integral weighs them, add up to its distance
    assert r.centroid_d2_by_sigma.shape == (3, len(r.pairs)) and r.local_pearson.shape == r.share.shape == (3,)
    np.testing.assert_allclose(A.density_distance(tiny_fg, *held, sigmas=(0.01, 1.0), per_class=2)
                               .centroid_d2_by_sigma[0], r.centroid_d2, rtol=1e-6)
    assert r.share.sum() == pytest.approx(1.0) and (r.share >= 0).all()

    # two classes with the same centroid are the same conditional density: distance exactly 0
    twin = copy.deepcopy(tiny_fg)
    twin.centroids.table[1] = twin.centroids.table[0]
    t = A.density_distance(twin, *held, sigmas=(0.05, 0.3, 1.0), per_class=2)
    pair = int(np.nonzero((t.pairs == [0, 1]).all(1))[0][0])
    assert t.density_distance[pair] == 0.0 and t.centroid_d2[pair] == 0.0
    assert (np.delete(t.density_distance, pair) > 0).all()


def test_half_rise_sigma():
    sigma = np.array([1.0, 0.5, 0.1, 0.01])
    # half of the final value reached exactly at step 2
    assert A.half_rise_sigma(sigma, np.array([0, 0, 1.0, 2.0])) == pytest.approx(0.1)
    # reached half-way between steps 1 and 2: the geometric mean of their sigmas
    assert A.half_rise_sigma(sigma, np.array([0, 0, 2.0, 2.0])) == pytest.approx(math.sqrt(0.05))
    assert A.half_rise_sigma(sigma, np.array([0, 0.5, 1.5, 2.0])) == pytest.approx(math.sqrt(0.05))
    assert math.isnan(A.half_rise_sigma(sigma, np.zeros(4)))


def test_bifurcation_same_target_never_separates(tiny_fg):
    r = A.bifurcation(tiny_fg, "brick", "brick", n=2, settings=FAST)
    assert np.all(r.distance_pixels == 0) and np.all(r.distance_phi == 0)
    assert math.isnan(r.bifurcation_sigma)


def test_bifurcation_two_targets(tiny_fg):
    r = A.bifurcation(tiny_fg, "brick", "stars", n=2, settings=FAST)
    t = len(r.sigma)
    assert r.distance_pixels.shape == r.distance_phi.shape == (t,)
    assert r.distance_pixels[0] == 0 and r.distance_pixels[-1] > 0        # same start, different ends
    assert r.sigma[0] == pytest.approx(1.0)
    assert r.samples_a.shape == r.samples_b.shape == (2, 1, 16, 16)
    assert min(r.sigma) <= r.bifurcation_sigma <= max(r.sigma)
    # the report runs 32 images per target for the statistics; its figure shows the first few
    widths = [np.asarray(next(t for t in F.bifurcation_figure(r, scale=1, per_target=k).data
                              if t.type == "image").z).shape[1] for k in (1, 2, 5)]
    assert widths[0] < widths[1] == widths[2]


def test_centroid_path_ends_at_the_centroids(tiny_fg):
    path = A.centroid_path(tiny_fg, "brick", "grass", [0.0, 0.5, 1.0, 1.25], sigma=0.3)
    a, b = tiny_fg.centroid("brick", 0.3).numpy(), tiny_fg.centroid("grass", 0.3).numpy()
    np.testing.assert_array_equal(path[0], a)                    # alpha 0 is the first centroid
    np.testing.assert_allclose(path[2], b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(path[1], (a + b) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(path[3], b + 0.25 * (b - a), rtol=1e-5, atol=1e-6)   # extrapolation


def test_interpolation_with_a_classifier(tiny_fg):
    from engine.classifier import _key
    with torch.no_grad():                     # scripts call it from inside no_grad
        clf = train_classifier(_key(tiny_fg.train_config), steps=5, batch=16, progress=False)
    r = A.interpolation(tiny_fg, "brick", "grass", alphas=(0.0, 0.5, 1.0), n=2, classifier=clf, settings=FAST)
    k = len(tiny_fg.classes)
    assert r.samples.shape == (3, 2, 1, 16, 16) and r.probabilities.shape == (3, 2, k)
    np.testing.assert_allclose(r.probabilities.sum(2), 1, atol=1e-5)
    np.testing.assert_allclose(r.prob_b, r.probabilities[:, :, tiny_fg.class_index("grass")].mean(1))
    assert -1 <= r.spearman_b <= 1
    assert set(r.table()) == {"0", "0.5", "1"} and set(r.table()["0.5"]) == {"brick", "grass"}
    with pytest.raises(EngineError, match="two different"):
        A.interpolation(tiny_fg, "brick", "brick", classifier=clf)
