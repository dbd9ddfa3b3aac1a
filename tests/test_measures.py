"""engine/measures.py: the measures the app shows at once and takes its defaults from."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine import measures
from engine.errors import EngineError


def test_the_default_pair_is_the_best_read_pair_and_ties_go_to_the_furthest_apart():
    classes = ["a", "b", "c", "d"]
    acc = np.array([1.0, 0.25, 0.875, 0.875])
    final = np.ones((4, 4))
    final[0, 2] = final[2, 0] = 0.2
    final[0, 3] = final[3, 0] = 0.4
    final[2, 3] = final[3, 2] = 0.1
    assert measures.choose_pair(acc, final, classes) == ["a", "d"]      # a-c, a-d, c-d tie at 0.875
    acc[1] = 0.0
    acc[3] = 0.5
    assert measures.choose_pair(acc, final, classes) == ["a", "c"]


def test_the_default_targets_are_well_read_classes_whose_samples_end_furthest_apart():
    classes = ["a", "b", "c", "d", "e"]
    acc = np.array([0.9, 0.1, 0.8, 0.7, 0.6])
    rng = np.random.default_rng(0)
    final = rng.random((5, 5))
    final = (final + final.T) / 2
    final[1, :] = final[:, 1] = 10.0                   # b is far from everything, but badly read
    got = measures.choose_targets(acc, final, classes)
    assert "b" not in got and len(got) == 3
    best = max(((i, j, k) for i in (0, 2, 3, 4) for j in (0, 2, 3, 4) for k in (0, 2, 3, 4) if i < j < k),
               key=lambda s: min(final[s[0], s[1]], final[s[0], s[2]], final[s[1], s[2]]))
    assert got == [classes[c] for c in best]
    # fewer well-read classes than targets: the best read are taken
    assert sorted(measures.choose_targets(np.array([0.1, 0.0, 0.3, 0.2, 0.0]), final, classes)) == ["a", "c", "d"]


def test_trajectory_distances_mark_where_each_pair_parts():
    t = np.arange(20)
    sigma = np.tile(np.geomspace(1, 0.01, 20), (3, 1))
    y = np.zeros((3, 20, 1, 2, 2))
    y[1] = (t >= 10)[:, None, None, None] * 1.0        # parts from 0 at step 10
    y[2] = (t >= 5)[:, None, None, None] * 2.0         # parts earlier, at step 5
    curves, marks = measures.trajectory_distances(y, sigma, ["a", "b", "c"])
    assert set(curves) == {"a vs b", "a vs c", "b vs c"}
    assert marks["a vs c"] > marks["a vs b"]           # the earlier parting is at the larger sigma
    assert math.isclose(curves["a vs c"][1][-1], 2.0)


def test_a_point_beyond_its_nearest_class_spread_is_far():
    rng = np.random.default_rng(1)
    centroids = np.array([[0.0, 0.0], [10.0, 0.0]])
    phi = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(0, 1, (200, 2)) + [10, 0]])
    labels = np.repeat([0, 1], 200)
    spreads = measures.class_spreads(phi, labels, centroids)
    assert 1.5 < spreads[0] < 3.5
    inside = measures.nearest_centroid(np.array([1.0, 0.5]), centroids, spreads)
    far = measures.nearest_centroid(np.array([0.0, 4.5]), centroids, spreads)
    assert inside.index == 0 and not inside.far
    assert far.index == 0 and far.far and far.ratio > 1


def test_measures_of_a_model_are_saved_beside_the_atlas_and_read_back(tiny_fg, tiny_atlas, tiny_classifier,
                                                                        tmp_path):
    m = measures.measure(tiny_fg, tiny_atlas.images, tiny_atlas.labels, tiny_classifier, samples=2)
    k = len(tiny_fg.classes)
    assert len(m.density_distance) == k * (k - 1) // 2 and len(m.accuracy) == k
    assert all(0 <= a <= 1 for a in m.accuracy)
    assert len(m.pair) == 2 and m.pair[0] != m.pair[1] and len(set(m.targets)) == 3
    assert m.density_matrix().shape == (k, k) and np.allclose(m.density_matrix(), m.density_matrix().T)
    m.save(tmp_path)
    back = measures.Measures.load(tmp_path)
    assert back.matches(tiny_fg) and back.pair == m.pair and back.targets == m.targets
    np.testing.assert_allclose(back.density_distance, m.density_distance)
    assert np.isnan(back.bifurcation_sigma[0][0])
    with pytest.raises(EngineError, match="measures-only"):
        measures.Measures.load(tmp_path / "elsewhere")
