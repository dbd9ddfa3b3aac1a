import pytest
import torch

from engine.errors import EngineError
from engine.config import SamplerSettings
from engine.sampler import (ClassTarget, ImageTarget, Interpolation, Switch, Unconditional, first_steps_below, guided, run,
                            sample, step)


def test_same_seed_same_samples_other_seed_other_samples(tiny_fg):
    a, _ = run(tiny_fg, ClassTarget(tiny_fg.classes[1]), n=3, seed=5, settings=SamplerSettings(max_steps=20))
    b, _ = run(tiny_fg, ClassTarget(tiny_fg.classes[1]), n=3, seed=5, settings=SamplerSettings(max_steps=20))
    c, _ = run(tiny_fg, ClassTarget(tiny_fg.classes[1]), n=3, seed=6, settings=SamplerSettings(max_steps=20))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_image_i_does_not_depend_on_batch_size(tiny_fg):
    one, _ = run(tiny_fg, ClassTarget(0), n=1, seed=2, settings=SamplerSettings(max_steps=15))
    four, _ = run(tiny_fg, ClassTarget(0), n=4, seed=2, settings=SamplerSettings(max_steps=15))
    assert torch.allclose(one[0], four[0], atol=1e-4)


def test_steps_record_the_trajectory_and_stop(tiny_fg):
    settings = SamplerSettings(max_steps=25, beta=0.5, h0=0.05)
    steps = list(sample(tiny_fg, ClassTarget(0), n=2, seed=0, settings=settings))
    assert steps[0].t == 0 and steps[-1].final and sum(s.final for s in steps) == 1
    assert len(steps) - 2 <= 25
    body = steps[1:-1]
    assert [s.t for s in body] == list(range(1, len(body) + 1))
    assert steps[-1].nfe == len(body) + 1          # one call per step, one for the final f(y_T)
    for s in steps:
        assert s.y.shape == (2, *tiny_fg.shape) and s.phi.shape == (2, tiny_fg.model.phi_dim)
        assert s.sigma.shape == (2,)
    # stopping: an image stops once its sigma is at most sigma_L, or the step limit ends the run
    last = body[-1]
    assert (not last.active.any()) or last.t == 25
    assert torch.equal(last.active, last.sigma > settings.sigma_L)
    assert steps[-1].denoised.min() >= 0 and steps[-1].denoised.max() <= 1


def test_first_steps_below_finds_where_each_image_passes_each_level():
    from types import SimpleNamespace
    sig = [[1.0, 1.0], [0.6, 0.9], [0.3, 0.8], [0.1, 0.7]]          # (T, B): image 1 never passes 0.5
    steps = [SimpleNamespace(sigma=torch.tensor(s)) for s in sig]
    at = first_steps_below(steps, [0.95, 0.5, 0.2])
    assert at.tolist() == [[1, 1], [2, 3], [3, 3]]                    # never below: the last step


def test_stopped_images_are_frozen(tiny_fg):
    # a large sigma_L stops every image after its first steps
    steps = list(sample(tiny_fg, ClassTarget(0), n=3, seed=1, settings=SamplerSettings(sigma_L=0.9, max_steps=50)))
    body = steps[1:-1]
    assert len(body) < 50
    for prev, cur in zip(body, body[1:]):
        frozen = ~prev.active
        assert torch.equal(cur.y[frozen], prev.y[frozen])


def test_targets(tiny_fg):
    a, b = tiny_fg.classes[:2]
    sigma = torch.tensor([0.3, 0.05])
    assert torch.allclose(Interpolation(a, b, 0.0).phi(tiny_fg, sigma), tiny_fg.centroid(a, sigma))
    assert torch.allclose(Interpolation(a, b, 1.0).phi(tiny_fg, sigma), tiny_fg.centroid(b, sigma))
    mid = Interpolation(a, b, 0.5).phi(tiny_fg, sigma)
    assert torch.allclose(mid, (tiny_fg.centroid(a, sigma) + tiny_fg.centroid(b, sigma)) / 2, atol=1e-6)
    sw = Switch(a, b, 0.1).phi(tiny_fg, sigma)
    assert torch.allclose(sw[0], tiny_fg.centroid(a, 0.3)) and torch.allclose(sw[1], tiny_fg.centroid(b, 0.05))
    assert Unconditional().phi(tiny_fg, sigma) is None


def test_guidance_extrapolates_from_the_mixture_centroid(tiny_fg):
    sigma = torch.tensor([0.3, 0.05, 0.012])
    k = len(tiny_fg.classes)
    centre = torch.stack([tiny_fg.centroid(c, sigma) for c in range(k)]).mean(0)
    assert torch.allclose(tiny_fg.centre(sigma), centre, atol=1e-6)
    assert torch.allclose(tiny_fg.centre(0.3), centre[0], atol=1e-6)
    phi = tiny_fg.centroid(1, sigma)
    assert guided(tiny_fg, phi, sigma, 0.0) is phi and guided(tiny_fg, None, sigma, 2.0) is None
    # g: the interpolation from the centre to the target at alpha = 1 + g
    assert torch.allclose(guided(tiny_fg, phi, sigma, 0.5), 1.5 * phi - 0.5 * centre, atol=1e-6)
    # in the sampler: g > 0 changes the samples, reproducibly
    zero, _ = run(tiny_fg, ClassTarget(1), n=2, seed=3, settings=SamplerSettings(max_steps=12, guidance=0.0))
    g1, _ = run(tiny_fg, ClassTarget(1), n=2, seed=3, settings=SamplerSettings(max_steps=12, guidance=1.0))
    g2, _ = run(tiny_fg, ClassTarget(1), n=2, seed=3, settings=SamplerSettings(max_steps=12, guidance=1.0))
    assert torch.equal(g1, g2) and not torch.allclose(zero, g1)
    with pytest.raises(EngineError, match="guidance"):
        SamplerSettings(guidance=-0.5)


def test_epsilon_scaling_divides_the_residual_above_its_sigma(tiny_fg):
    """Epsilon scaling: while sigma > eps_scale_sigma the step uses (f - y) / lambda, and the
    noise estimate it reads is lambda times lower; below it the walk is the paper's."""
    common = dict(n=2, seed=4, record=True)
    _, plain = run(tiny_fg, ClassTarget(1), **common, settings=SamplerSettings(max_steps=6, eps_scale=1.0))
    _, scaled = run(tiny_fg, ClassTarget(1), **common,
                    settings=SamplerSettings(max_steps=6, eps_scale=1.25, eps_scale_sigma=0.0))
    # the same y_0, so the same first denoiser call; its residual read 1.25 times smaller
    assert torch.equal(plain[1].denoised, scaled[1].denoised)
    assert torch.allclose(scaled[1].sigma * 1.25, plain[1].sigma, rtol=1e-5)
    step_plain, step_scaled = plain[1].y - plain[0].y, scaled[1].y - scaled[0].y
    # y_1 - y_0 = h d / lambda + gamma z, gamma proportional to the estimate: 1 / lambda of the plain one
    assert torch.allclose(step_scaled, step_plain / 1.25, atol=1e-5)
    # a threshold above sigma_0 never scales: the walk is the plain one, bit for bit
    never, _ = run(tiny_fg, ClassTarget(1), n=2, seed=4,
                   settings=SamplerSettings(max_steps=6, eps_scale=1.25, eps_scale_sigma=5.0))
    assert torch.equal(never, plain[-1].denoised)
    for bad in (dict(eps_scale=0.9), dict(eps_scale=float("nan")), dict(eps_scale=3.0),
                dict(eps_scale_sigma=-1.0), dict(eps_scale_sigma=float("nan"))):
        with pytest.raises(EngineError, match="eps_scale"):
            SamplerSettings(**bad)


def test_image_target_reproduces_and_counts_evaluations(tiny_fg):
    imgs = torch.rand(2, *tiny_fg.shape)
    x1, s1 = run(tiny_fg, ImageTarget(imgs, seed=3), n=2, seed=0, record=True, settings=SamplerSettings(max_steps=10))
    x2, _ = run(tiny_fg, ImageTarget(imgs, seed=3), n=2, seed=0, settings=SamplerSettings(max_steps=10))
    assert torch.equal(x1, x2)
    # the images' table (2 images x 4 draws x the grid's sigmas) is built once and shared by the
    # two samples; after it, one evaluation per step, as for a class
    table = 2 * 4 * len(tiny_fg.centroids.sigmas)
    assert s1[0].nfe == table // 2 and s1[-1].nfe == table // 2 + len(s1) - 1
    _, s3 = run(tiny_fg, ImageTarget(imgs, seed=3), n=3, seed=0, record=True, settings=SamplerSettings(max_steps=10))
    assert s3[0].nfe == -(-table // 3)                      # its share, rounded up


def test_conditioning_on_a_class_s_images_is_conditioning_on_the_class(tiny_fg):
    """The images' centroid is the class centroid's estimator on other images: given the very
    images the class table averaged (one draw each), it agrees where noise hardly moves phi."""
    from engine.data import load_dataset
    cfg = tiny_fg.train_config
    data = load_dataset(cfg.dataset, "train", cfg.model.size, cfg.model.channels, cfg.n_per_class, cfg.seed)
    c = 2
    target = ImageTarget(torch.from_numpy(data.images[data.labels == c]), draws=1)
    target.prepare(tiny_fg)
    sigma = torch.tensor([0.01])
    got, want = target.phi(tiny_fg, sigma)[0], tiny_fg.centroid(c, sigma)[0]
    others = torch.stack([tiny_fg.centroid(k, sigma)[0] for k in range(len(tiny_fg.classes)) if k != c])
    assert (got - want).norm() < 0.01 * want.norm()
    assert (got - want).norm() < 0.1 * (others - want).norm(dim=1).min()


def test_mixture_cannot_be_conditioned(tiny_mixture):
    with pytest.raises(EngineError, match="mixture"):
        run(tiny_mixture, ClassTarget(0), n=1)
    x, _ = run(tiny_mixture, Unconditional(), n=2, settings=SamplerSettings(max_steps=5))
    assert x.shape == (2, *tiny_mixture.shape)


def test_bad_settings_and_classes(tiny_fg):
    with pytest.raises(EngineError, match="beta"):
        SamplerSettings(beta=0)
    with pytest.raises(EngineError, match="unknown class 'nope'"):
        run(tiny_fg, ClassTarget("nope"), n=1)
    # NaN and infinity slip through `v <= 0` tests and used to give all-NaN samples
    for bad in (dict(sigma_0=float("inf")), dict(sigma_0=float("nan")), dict(beta=float("nan")),
                dict(guidance=float("nan"))):
        with pytest.raises(EngineError):
            SamplerSettings(**bad)
    for alpha in (float("nan"), float("inf"), 1e30):
        with pytest.raises(EngineError, match="alpha must be"):
            Interpolation(0, 1, alpha)
    with pytest.raises(EngineError, match="sigma\\* must lie between"):     # a switch the walk never reaches
        run(tiny_fg, Switch(0, 1, 5.0), n=1)


def test_each_target_starts_at_its_own_mean_pixel(tiny_fg):
    from engine.data import load_dataset
    cfg = tiny_fg.train_config
    data = load_dataset(cfg.dataset, "train", cfg.model.size, cfg.model.channels, cfg.n_per_class, cfg.seed)
    a, b = 0, 3
    class_mean = lambda c: torch.from_numpy(data.images[data.labels == c]).double().mean().float()
    assert torch.allclose(tiny_fg.class_mean(a), class_mean(a).reshape(1), atol=1e-5)
    assert torch.allclose(Interpolation(a, b, 0.25).start(tiny_fg),
                          0.75 * tiny_fg.class_mean(a) + 0.25 * tiny_fg.class_mean(b))
    assert torch.allclose(Switch(a, b, 0.1).start(tiny_fg), tiny_fg.class_mean(a))
    imgs = torch.rand(2, *tiny_fg.shape) * 0.2
    assert torch.allclose(ImageTarget(imgs).start(tiny_fg), imgs.mean(dim=(0, 2, 3)))
    assert torch.equal(Unconditional().start(tiny_fg), tiny_fg.mean)
    # y_0 = start + sigma_0 z with the same z under every target: the starts differ by the means,
    # and an explicit start gives every target the same y_0 (the bifurcation experiment)
    y0 = lambda target, **kw: next(sample(tiny_fg, target, n=2, seed=4, **kw)).y
    diff = y0(ClassTarget(a)) - y0(ClassTarget(b))
    assert torch.allclose(diff, (tiny_fg.class_mean(a) - tiny_fg.class_mean(b)).expand_as(diff), atol=1e-5)
    assert torch.equal(y0(ClassTarget(a), start=tiny_fg.mean), y0(ClassTarget(b), start=tiny_fg.mean))


def test_step_is_the_papers_update():
    gen = torch.Generator().manual_seed(0)
    y, f, z = (torch.randn(2, 1, 4, 4, generator=gen) for _ in range(3))
    ones = torch.ones(2)
    n_pixels = 16
    # beta = 1: deterministic ascent, y_t = y + h_t d_t, and sigma_t the residual's RMS
    y1, sigma1 = step(y, f, z, t=3, h0=0.1, beta=1.0, lam=ones)
    h3 = 0.1 * 3 / (1 + 0.1 * 2)
    assert torch.allclose(y1, y + h3 * (f - y))
    assert torch.allclose(sigma1, (f - y).flatten(1).norm(dim=1) / n_pixels ** 0.5)
    # beta < 1 adds gamma_t z_t; lambda divides the residual (and so sigma_t and gamma_t)
    y2, sigma2 = step(y, f, z, t=3, h0=0.1, beta=0.5, lam=2 * ones)
    gamma = (sigma1 / 2) * ((1 - 0.5 * h3) ** 2 - (1 - h3) ** 2) ** 0.5
    assert torch.allclose(sigma2, sigma1 / 2)
    assert torch.allclose(y2, y + h3 * (f - y) / 2 + gamma[:, None, None, None] * z)


def test_run_shows_every_step_and_returns_the_final_one(tiny_fg):
    seen = []
    x, steps = run(tiny_fg, ClassTarget(0), n=2, seed=1, settings=SamplerSettings(max_steps=8), on_step=seen.append)
    assert seen[0].t == 0 and seen[-1].final and len(seen) >= 3
    assert len(steps) == 1 and steps[0] is seen[-1] and torch.equal(x, seen[-1].denoised)
    _, recorded = run(tiny_fg, ClassTarget(0), n=2, seed=1, settings=SamplerSettings(max_steps=8), record=True)
    assert [s.t for s in recorded] == [s.t for s in seen]


def test_the_walk_on_a_checkpoints_denoiser_and_target_is_what_sample_draws(tiny_fg):
    """sample is only the adapter: the loop fed Checkpoint.network and the target function draws the same."""
    from engine.sampler import _noise, image_generators, target_function, walk
    settings = SamplerSettings(max_steps=20, guidance=1.0)
    target = ClassTarget(tiny_fg.classes[1])
    drawn = list(sample(tiny_fg, target, n=3, seed=4, settings=settings))
    gens = image_generators(4, 3)
    y0 = tiny_fg.class_mean(target.name)[None, :, None, None] + settings.sigma_0 * _noise(gens, tiny_fg.shape)
    walked = list(walk(tiny_fg.network, target_function(tiny_fg, target, settings.guidance), y0, gens, settings,
                       tiny_fg.model.phi_dim))
    assert len(walked) == len(drawn)
    assert all(torch.equal(a.y, b.y) and torch.equal(a.denoised, b.denoised) and torch.equal(a.phi, b.phi)
               for a, b in zip(walked, drawn))


def test_anything_that_denoises_can_be_walked_without_a_checkpoint():
    """A hand-made denoiser (every image denoises to one picture x*) and target function: the walk
    asks the target at each active image's own noise level and returns x*."""
    from engine.sampler import image_generators, walk
    x_star = torch.linspace(0.2, 0.8, 64).reshape(1, 1, 8, 8)
    asked = []

    def denoiser(y, phi_target):
        return x_star.expand(len(y), -1, -1, -1).clone(), phi_target.clone()

    def target(sigma):
        asked.append(sigma.clone())
        return sigma[:, None] * torch.ones(len(sigma), 3)        # phi*(sigma): the noise level, three times

    settings = SamplerSettings(max_steps=50)
    gens = image_generators(0, 2)
    y0 = 0.5 + settings.sigma_0 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    steps = list(walk(denoiser, target, y0, gens, settings, phi_dim=3))
    assert steps[-1].final and torch.allclose(steps[-1].denoised, x_star.expand(2, -1, -1, -1))
    assert torch.equal(asked[0], torch.full((2,), settings.sigma_0))
    for before, a in zip(steps[1:-2], asked[1:]):            # each step's target: the previous noise level
        assert torch.equal(a, before.sigma[before.active])
    assert torch.equal(steps[1].phi, asked[0][:, None].expand(2, 3))  # the record keeps the denoiser's phi
    assert steps[-1].nfe == len(steps) - 1
