import numpy as np

import pytest

from engine.evaluate import generalisation_gap, misreadings, noise_seen, write_card
from engine.metrics import kernel_distance, radial_power_db, spectrum_error_db


class WhiteGaussian:
    """Images of N(mu, lam I) with their exact (linear) denoiser, dressed as a checkpoint."""
    classes = ["only"]
    mu, lam = 0.5, 0.01

    def __init__(self, n: int, rng: np.random.Generator):
        self.images = (self.mu + np.sqrt(self.lam) * rng.standard_normal((n, 1, 4, 4))).astype(np.float32)

    def of_class(self, c):
        return self.images

    def centroid(self, labels, sigma):
        return sigma[:, None]                   # tells the fake denoiser the noise level

    def denoise(self, y, target):
        s2 = target[:, :1, None, None] ** 2
        return self.mu + self.lam / (self.lam + s2) * (y - self.mu)


def test_noise_seen_by_the_exact_linear_denoiser_is_the_linear_figure():
    g = WhiteGaussian(20000, np.random.default_rng(0))
    sigmas = (0.02, 0.1, 0.5)
    out = noise_seen(g, g.images[:4000], np.zeros(4000, dtype=np.int64), g, sigmas=sigmas)
    expected = [s / np.sqrt(g.lam + s ** 2) for s in sigmas]       # all eigenvalues are lam
    np.testing.assert_allclose(out["linear"], expected, rtol=0.02)
    np.testing.assert_allclose(out["network"], expected, rtol=0.03)
    assert out["sigma"] == list(sigmas)


def test_generalisation_gap_is_zero_for_one_split_and_positive_off_the_learned_density():
    rng = np.random.default_rng(1)
    g = WhiteGaussian(200, rng)
    same = generalisation_gap(g, g, g, per_class=200)
    assert same["per_class"]["only"] == [0.0, 0.0] and same["sigma"] == [0.05, 0.2]
    # held-out images of a brighter texture: the denoiser pulls them towards the learned mean
    other = WhiteGaussian(200, rng)
    other.images = other.images + np.float32(0.3)
    gap = generalisation_gap(g, g, other, per_class=200)["per_class"]["only"]
    assert gap[1] > gap[0] > 0.5


def test_kernel_distance_is_zero_on_average_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    draw = lambda shift=0.0: rng.standard_normal((32, 16)) + shift        # noqa: E731
    same = [kernel_distance(draw(), draw()) for _ in range(200)]
    shifted = [kernel_distance(draw(0.5), draw()) for _ in range(20)]
    spread = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * spread                  # unbiased: no offset for equal distributions
    assert min(shifted) > np.mean(same) + 3 * np.std(same)  # a shift of half a unit stands out of one draw
    a, b = draw(), draw(1.0)
    assert kernel_distance(a, b) == pytest.approx(kernel_distance(b, a))
    with pytest.raises(ValueError, match="at least two"):
        kernel_distance(a[:1], b)


def test_spectrum_error_is_small_for_one_texture_and_reads_scale_and_contrast():
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter

    def texture(n, blur=1.0, contrast=1.0):
        """Blurred white noise: a stationary texture whose scale is the blur."""
        x = gaussian_filter(rng.standard_normal((n, 1, 32, 32)), (0, 0, blur, blur), mode="wrap")
        return 0.5 + contrast * 0.1 * x / x.std()
    a, b = texture(64), texture(64)
    assert spectrum_error_db(a, b) < 0.5                      # two draws of one texture
    assert spectrum_error_db(texture(64, contrast=0.5), b) == pytest.approx(20 * np.log10(2), abs=0.5)
    assert spectrum_error_db(texture(64, blur=2.0), b) > 3    # coarser: power moved to low radii
    # the profile is by radius, 1 .. 15 for 32 pixels, and blind to a brightness offset
    assert radial_power_db(a).shape == (15,)
    assert np.allclose(radial_power_db(a), radial_power_db(a + 0.2))


def test_a_new_card_keeps_the_hand_written_status_section(tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    write_card(card, "# Model card\n\n- accuracy 0.5\n")
    assert card.read_text() == "# Model card\n\n- accuracy 0.5\n"            # nothing to keep yet
    card.write_text(card.read_text() + "\n## Status: by hand\n\nhow it was trained\n")
    write_card(card, "# Model card\n\n- accuracy 0.7\n")
    assert card.read_text() == "# Model card\n\n- accuracy 0.7\n\n## Status: by hand\n\nhow it was trained\n"


def test_the_card_names_where_misread_samples_go_and_only_those():
    report = {"samples_per_class": 4, "class_readings": {"a": {"a": 4}, "b": {"c": 3, "b": 1}, "c": {"c": 4}}}
    assert misreadings(report) == ["  - misread samples, read by the classifier as (counts of 4): b: c 3"]
    report["class_readings"]["b"] = {"b": 4}
    assert misreadings(report) == []
