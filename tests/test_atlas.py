"""The feature atlas on the tiny models: shapes, maps, placement, files."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from engine.atlas import (ALL, Atlas, Embedding, PCAMap, build_atlas, exact_neighbours, place_by_neighbours,
                          smooth_knn_weights)
from engine.errors import EngineError

SIGMAS = (0.1, 0.5)
PER_CLASS = 4


@pytest.fixture(scope="module")
def atlas(tiny_fg, tiny_mixture):
    return build_atlas({"feature_guided": tiny_fg, "mixture": tiny_mixture}, per_class=PER_CLASS,
                       sigmas=SIGMAS, umap=False, progress=False)


def test_atlas_holds_phi_of_held_out_images(atlas, tiny_fg):
    k = len(tiny_fg.classes)
    assert atlas.classes == tiny_fg.classes
    assert atlas.models == ["feature_guided", "mixture"]
    assert atlas.sigmas == list(SIGMAS)
    assert atlas.layers == ["enc1", "mid", "dec1", ALL]
    assert atlas.images.shape == (k * PER_CLASS, 1, 16, 16) and atlas.images.dtype == np.float32
    assert 0 <= atlas.images.min() and atlas.images.max() <= 1
    assert np.bincount(atlas.labels).tolist() == [PER_CLASS] * k
    assert atlas.phi["feature_guided"].shape == (len(SIGMAS), k * PER_CLASS, tiny_fg.model.phi_dim)
    assert atlas.layer_phi("feature_guided", "mid", 0.1).shape == (k * PER_CLASS, 16)
    # the centroids are the checkpoint's own table at each stored sigma
    expected = torch.stack([tiny_fg.centroid(c, 0.5) for c in range(k)]).numpy()
    np.testing.assert_allclose(atlas.layer_centroids("feature_guided", ALL, 0.5), expected, rtol=1e-6)


def test_embedding_falls_back_to_pca_and_snaps_sigma(atlas):
    e = atlas.embedding("feature_guided", "mid", 0.1, method="umap")
    assert isinstance(e, Embedding) and e.method == "pca"         # no UMAP fitted: instant fallback
    assert e.coords.shape == (len(atlas.labels), 2) and e.centroids.shape == (len(atlas.classes), 2)
    assert not atlas.umap_ready("feature_guided", "mid", 0.1)
    snapped = atlas.embedding("feature_guided", "mid", 0.13, method="pca")   # nearest in log sigma: 0.1
    np.testing.assert_array_equal(snapped.coords, e.coords)
    assert atlas.sigma_index(0.3) == 1                              # log-nearest: 0.3 is closer to 0.5
    assert atlas.sigma_index(0.2) == 0


def test_pca_place_reproduces_the_map(atlas):
    s = atlas.sigma_index(0.5)
    full_phi = atlas.phi["mixture"][s]                                # (N, D_full)
    placed = atlas.place("mixture", "dec1", 0.5, full_phi, method="pca")
    np.testing.assert_allclose(placed, atlas.embedding("mixture", "dec1", 0.5, "pca").coords, atol=1e-5)
    single = atlas.place("mixture", "dec1", 0.5, full_phi[3])          # one vector is fine too
    assert single.shape == (1, 2)


def test_pca_axes_capture_most_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1])
    p = PCAMap.fit(x)
    np.testing.assert_allclose(np.abs(p.axes[:, :2]), np.eye(2), atol=0.05)


def test_umap_placement_with_fitted_coordinates(atlas):
    # stand-in map coordinates: placement must follow the neighbours' coordinates
    key = ("feature_guided", "mid", 0)
    ref = atlas.layer_phi(*key[:2], atlas.sigmas[0])
    coords = np.stack([atlas.labels * 10.0, np.zeros(len(ref))], 1).astype(np.float32)
    atlas._umap[key] = coords
    try:
        assert atlas.umap_ready("feature_guided", "mid", 0.1)
        e = atlas.embedding("feature_guided", "mid", 0.1)
        assert e.method == "umap" and e.coords is coords
        placed = atlas.place("feature_guided", "mid", 0.1, atlas.phi["feature_guided"][0])
        assert placed.shape == (len(ref), 2)
        assert np.all(placed[:, 0] >= 0) and np.all(placed[:, 0] <= coords[:, 0].max())
        # an explicit method="pca" stays in the PCA map even when the UMAP exists
        pca = atlas.place("feature_guided", "mid", 0.1, atlas.phi["feature_guided"][0], method="pca")
        np.testing.assert_allclose(pca, atlas.embedding("feature_guided", "mid", 0.1, "pca").coords, atol=1e-5)
    finally:
        del atlas._umap[key]


def test_smooth_knn_weights_sum_to_log2_k():
    d = np.sort(np.random.default_rng(1).uniform(0, 3, size=(6, 15)), axis=1)
    w = smooth_knn_weights(d)
    np.testing.assert_allclose(w.sum(1), np.log2(15), rtol=1e-4)
    assert np.allclose(w[:, 0], 1.0)                     # the nearest neighbour always has weight 1


def test_place_by_neighbours_known_cases():
    ref = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], np.float32)
    coords = np.array([[1.0, 2.0], [5.0, 5.0], [9.0, 9.0]], np.float32)
    # one neighbour: the coordinates of the nearest reference point
    np.testing.assert_allclose(place_by_neighbours(np.array([[1.0, 90.0]]), ref, coords, k=1), coords[2:])
    # on top of reference 0, the two others equally far: weights 1 and (log2 3 - 1) / 2 each
    w = (np.log2(3) - 1) / 2
    expected = (coords[0] + w * coords[1] + w * coords[2]) / (1 + 2 * w)
    np.testing.assert_allclose(place_by_neighbours(ref[:1], ref, coords, k=3), [expected], rtol=1e-4)
    # every reference at the same map position: any point lands there
    same = np.tile([[3.0, -4.0]], (3, 1)).astype(np.float32)
    np.testing.assert_allclose(place_by_neighbours(np.array([[40.0, 40.0]]), ref, same, k=3), [[3.0, -4.0]],
                               atol=1e-5)


def test_save_load_roundtrip(atlas, tmp_path, tiny_fg, tiny_mixture):
    atlas._umap[("mixture", ALL, 1)] = np.arange(2 * len(atlas.labels), dtype=np.float32).reshape(-1, 2)
    try:
        atlas.save(tmp_path / "atlas")
    finally:
        del atlas._umap[("mixture", ALL, 1)]
    back = Atlas.load(tmp_path / "atlas")
    assert back.classes == atlas.classes and back.layers == atlas.layers and back.sigmas == atlas.sigmas
    np.testing.assert_allclose(back.images, atlas.images, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(back.phi["feature_guided"], atlas.phi["feature_guided"])
    for method in ("pca", "umap"):
        np.testing.assert_allclose(back.embedding("feature_guided", "mid", 0.5, method).coords,
                                   atlas.embedding("feature_guided", "mid", 0.5, method).coords, atol=1e-5)
    assert back.umap_ready("mixture", ALL, 0.5) and not back.umap_ready("mixture", ALL, 0.1)
    assert back.matches({"feature_guided": tiny_fg, "mixture": tiny_mixture})
    assert not back.matches({"feature_guided": tiny_fg})


def test_an_atlas_matches_the_weights_not_the_step_count(atlas, tiny_fg, tiny_mixture):
    # a run fine-tuned for as many steps as another (the shipped pairs' last runs are all 6000
    # steps) must not be served the other's maps
    other = copy.deepcopy(tiny_fg)
    with torch.no_grad():
        next(other.model.parameters()).add_(1e-3)
    assert other.step == tiny_fg.step and other.fingerprint != tiny_fg.fingerprint
    assert atlas.matches({"feature_guided": tiny_fg, "mixture": tiny_mixture})
    assert not atlas.matches({"feature_guided": other, "mixture": tiny_mixture})
    # a recomputed centroid table changes what the atlas drew too
    other = copy.deepcopy(tiny_fg)
    other.centroids.table.mul_(1.01)
    assert not atlas.matches({"feature_guided": other, "mixture": tiny_mixture})


def test_user_errors(atlas, tmp_path):
    with pytest.raises(EngineError, match="unknown layer"):
        atlas.embedding("feature_guided", "enc9", 0.1)
    with pytest.raises(EngineError, match="unknown model"):
        atlas.embedding("other", "mid", 0.1)
    with pytest.raises(EngineError, match="unknown projection"):
        atlas.embedding("mixture", "mid", 0.1, method="tsne")
    with pytest.raises(EngineError, match="full phi"):
        atlas.place("mixture", "mid", 0.1, np.zeros((2, 5)))
    with pytest.raises(EngineError, match="no atlas"):
        Atlas.load(tmp_path / "nothing")
    with pytest.raises(EngineError, match="at least one"):
        build_atlas({})


def test_exact_neighbours_put_each_point_first_at_distance_zero():
    """umap-learn takes the first neighbour's distance as each point's own (zero) and the nearest
    non-zero one as its rho: float32 rounding of |x|^2 - 2 x.y + |y|^2 must not leave a residue there."""
    x = (np.random.default_rng(0).standard_normal((60, 40)) * 30 + 100).astype(np.float32)
    idx, dist = exact_neighbours(x, 7)
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))
    assert idx.shape == dist.shape == (60, 7) and dist.dtype == np.float32
    assert (idx[:, 0] == np.arange(60)).all() and (dist[:, 0] == 0).all()
    np.testing.assert_allclose(np.sort(d, axis=1)[:, :7], dist, rtol=1e-6)      # the 7 nearest, in order
    np.testing.assert_allclose(np.take_along_axis(d, idx, 1), dist, rtol=1e-6)


def test_warm_umap_fits_real_maps(tiny_fg, monkeypatch):
    """One real umap-learn fit (the slow part of this file: umap's first import and compilation),
    on neighbours handed to it: its own search (compiled afresh in every process) is never called."""
    import umap.umap_

    def searched(*args, **kwargs):
        raise AssertionError("umap-learn searched for neighbours itself")
    monkeypatch.setattr(umap.umap_, "nearest_neighbors", searched)
    small = build_atlas({"feature_guided": tiny_fg}, per_class=3, sigmas=(0.2,), umap=False, progress=False)
    seen = []
    small.warm_umap(lambda done, total, key: seen.append((done, total, key)))
    assert [s[:2] for s in seen] == [(i, 4) for i in range(1, 5)]
    assert {s[2] for s in seen} == {("feature_guided", layer, 0.2) for layer in small.layers}
    assert small.missing_umaps() == []
    e = small.embedding("feature_guided", "mid", 0.2)
    assert e.method == "umap" and e.coords.shape == (len(small.labels), 2) and np.isfinite(e.coords).all()
    assert e.centroids.shape == (len(small.classes), 2)
