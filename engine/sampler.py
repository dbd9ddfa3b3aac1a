"""Coarse-to-fine stochastic sampler (Kadkhodaie & Simoncelli 2021; DESIGN.md 4).

    y_0 = mean image + sigma_0 z,  t = 1
    while sigma_{t-1} > sigma_L:
        h_t     = h0 * t / (1 + h0 * (t - 1))
        d_t     = f(y_{t-1}, phi*(sigma_{t-1})) - y_{t-1}
        d_t     = d_t / lambda            while sigma_{t-1} > sigma_lambda (ours; below)
        sigma_t = ||d_t|| / sqrt(N)
        gamma_t = sigma_t * sqrt((1 - beta h_t)^2 - (1 - h_t)^2)
        y_t     = y_{t-1} + h_t d_t + gamma_t z_t
    return f(y_T, phi*)

`sample` is a generator: it yields a `Step` after every update and a final `Step` with
`final=True` holding f(y_T, phi*). The app, the command line and the tests consume this
one stream. Each image stops on its own once its sigma falls below sigma_L (it is then
frozen); each image has its own noise stream, derived from (seed, image index), so image i
is the same whatever the batch size, and the same seed under two targets shares its
initial noise and noise sequence (the bifurcation experiment).

The target phi*(sigma) is looked up at each image's current noise estimate; phi*(sigma_0)
at t = 1 (the estimate exists only after the first denoiser call).
With guidance g > 0 the network is given phi* + g (phi* - phibar(sigma)) instead, phibar the
mixture's centroid (`guided`); g = 0 is DESIGN.md's target, g = 0.25 the default (measured).

Where the walk starts (our choice of DESIGN.md 4's "mean image"): the mean pixel of the
target - a class's training images, the alpha-mix of two classes', the conditioning images'
- and the data mean only for unconditional sampling. The walk should start from a draw of
p_sigma0(y | target), and at 32x32 the noise on an image's mean pixel is sigma_0 / 32 = 0.03,
far less than the spread of class brightnesses (0.08 for stars to 0.66 for print): from the
data mean every class began as a mid-grey image no member of it resembles, and the denoiser,
trained on images whose brightness agrees with their class, kept that brightness (README,
"Sampler defaults"). `start` overrides it; the bifurcation experiment passes the data mean so
that both targets share y_0 exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch

from .centroids import CentroidTable, compute_centroids
from .errors import EngineError

# Defaults chosen from measurement (README, "Sampler defaults"): beta 0.1 beat 0.25 on class
# accuracy and diversity on two successive shipped models, at ~80 network evaluations per sample;
# guidance 2.0 beat 1.0, 0.25 and 0 on the shipped pair (8 classes, 6000 steps from scratch) on two
# sets of 256 samples: class accuracy 0.672 / 0.660 against 0.605 / 0.570 at 1.0 and 0.477 / 0.434
# at 0.25, with more diversity (0.87 / 0.87) and a higher memorisation ratio (0.88 / 0.90), the
# kernel distance to real crops as low as at 1.0 (1.032 / 1.084), for about 15% more evaluations
# than at 0.25; 3.0 lost (0.531: print and grass fall). On the pair shipped before, 0.25 had beaten
# 0 and 1.0 (docs/model.md, "The sampler").
# With epsilon scaling, h0 0.02 (a quarter fewer evaluations, memorisation ratio near its bar) and
# h0 0.005 with beta 0.05 (more diverse, farther from real crops) came within the seeds' spread.
SIGMA_0 = 1.0
SIGMA_L = 0.01
H0 = 0.01
BETA = 0.1
MAX_STEPS = 140
GUIDANCE = 2.0
# lambda 1.2 above sigma 0.1 against lambda 1 (the same models, 32 samples per class, seeds 0 and
# 1000): class accuracy 0.819 / 0.794 against 0.750 / 0.784, memorisation ratio 0.893 / 0.881
# against 0.724 / 0.688, kernel distance to real crops 0.452 / 0.482 against 0.572 / 0.541, a
# quarter fewer network evaluations. 1.1 and 1.15 everywhere, 1.15 above 0.1: in between.
EPS_SCALE = 1.2
EPS_SCALE_SIGMA = 0.1
EPS_SCALE_MAX = 2.0
# Limits on what a caller may ask: the network was trained up to sigma 1.2, and interpolation
# weights far outside [0, 1] aim at no class at all.
SIGMA_0_MAX = 10.0
ALPHA_MAX = 10.0
SEED_MAX = 2 ** 63 - 1    # what torch generators and JSON readers take


@dataclass
class SamplerSettings:
    sigma_0: float = SIGMA_0
    sigma_L: float = SIGMA_L
    h0: float = H0
    beta: float = BETA
    max_steps: int = MAX_STEPS
    guidance: float = GUIDANCE      # g of `guided`: 0 is DESIGN.md's target itself
    eps_scale: float = EPS_SCALE    # lambda of epsilon scaling (module doc): 1 is DESIGN.md's sampler
    eps_scale_sigma: float = EPS_SCALE_SIGMA   # sigma_lambda: the residual is scaled above it only

    def __post_init__(self):
        if not 0 < self.beta <= 1:
            raise EngineError(f"beta must be in (0, 1], got {self.beta}")
        if not 0 < self.h0 <= 1:
            raise EngineError(f"h0 must be in (0, 1], got {self.h0}")
        if not 0 < self.sigma_L < self.sigma_0 <= SIGMA_0_MAX:
            raise EngineError(f"need 0 < sigma_L < sigma_0 <= {SIGMA_0_MAX:g}, got sigma_L={self.sigma_L}, "
                              f"sigma_0={self.sigma_0}")
        if self.max_steps < 1:
            raise EngineError("max_steps must be at least 1")
        if not 0 <= self.guidance <= 4:
            raise EngineError(f"guidance must be in [0, 4], got {self.guidance}")
        if not 1 <= self.eps_scale <= EPS_SCALE_MAX:
            raise EngineError(f"eps_scale must be in [1, {EPS_SCALE_MAX:g}] (1: no scaling), got {self.eps_scale}")
        if not 0 <= self.eps_scale_sigma <= SIGMA_0_MAX:
            raise EngineError(f"eps_scale_sigma must be in [0, {SIGMA_0_MAX:g}], got {self.eps_scale_sigma}")


def check_seed(seed: int) -> int:
    """The seed, once it is a whole number torch and JSON can take (the command line, the app)."""
    if not 0 <= seed <= SEED_MAX:
        raise EngineError(f"seed must be a whole number from 0 to {SEED_MAX}, got {seed}")
    return seed


def guided(ckpt, phi_star: torch.Tensor | None, sigma: torch.Tensor, guidance: float) -> torch.Tensor | None:
    """phi* + g (phi* - phibar(sigma)), phibar the mixture's centroid (Checkpoint.centre).

    g = 0 is DESIGN.md's target. g > 0 carries the target past it, away from the mixture's
    centroid: the alpha > 1 of an interpolation from the mixture to the target, the way
    classifier-free guidance extrapolates from an unconditional model (README, "Sampler
    defaults", measures what it does to class accuracy and diversity)."""
    if phi_star is None or guidance == 0:
        return phi_star
    return phi_star + guidance * (phi_star - ckpt.centre(sigma).to(phi_star))


@dataclass
class Step:
    """The state after step t (t = 0: the initial noise; final: the returned samples)."""
    t: int
    y: torch.Tensor            # (B, C, H, W) y_t
    denoised: torch.Tensor     # (B, C, H, W) f(y_{t-1}, phi*): the current estimate of the sample
    sigma: torch.Tensor        # (B,) noise level estimate sigma_t
    phi: torch.Tensor          # (B, D) phi(y_{t-1}) read in the guided pass (see network.forward)
    active: torch.Tensor       # (B,) bool: still running after this step
    nfe: int                   # network evaluations per image so far
    final: bool = False


# ----------------------------------------------------------------------------- targets

class Target:
    """What to condition on: phi*(sigma) for each image of the batch, or None."""

    def phi(self, ckpt, sigma: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def start(self, ckpt) -> torch.Tensor:
        """(C,) mean pixel of y_0 (module doc): the data mean unless a target says otherwise."""
        return ckpt.mean

    def prepare(self, ckpt) -> int:
        """Called at the start of every run, before any step: work a target does once per run
        (ImageTarget's table). Returns the network evaluations it spent (one per image passed)."""
        return 0

    def check(self, settings: "SamplerSettings") -> None:
        """Refuse, before any work, a target that these sampler settings cannot honour."""

    def describe(self) -> dict:
        raise NotImplementedError


class Unconditional(Target):
    """No projection: the mixture model's (or any model's plain) denoiser."""

    def phi(self, ckpt, sigma):
        return None

    def describe(self):
        return {"mode": "unconditional"}


@dataclass
class ClassTarget(Target):
    name: str | int

    def phi(self, ckpt, sigma):
        return ckpt.centroid(self.name, sigma)

    def start(self, ckpt):
        return ckpt.class_mean(self.name)

    def describe(self):
        return {"mode": "class", "class": self.name}


@dataclass
class Interpolation(Target):
    """phi_alpha(sigma) = (1 - alpha) phibar_a(sigma) + alpha phibar_b(sigma); any real alpha."""
    a: str | int
    b: str | int
    alpha: float

    def __post_init__(self):
        # far outside [0, 1] the target is no longer near any class (and 1e30 overflows to NaN)
        if not -ALPHA_MAX <= self.alpha <= ALPHA_MAX:
            raise EngineError(f"alpha must be a number between -{ALPHA_MAX:g} and {ALPHA_MAX:g}, got {self.alpha}")

    def phi(self, ckpt, sigma):
        return (1 - self.alpha) * ckpt.centroid(self.a, sigma) + self.alpha * ckpt.centroid(self.b, sigma)

    def start(self, ckpt):
        return ((1 - self.alpha) * ckpt.class_mean(self.a) + self.alpha * ckpt.class_mean(self.b)).clamp(0, 1)

    def describe(self):
        return {"mode": "interpolate", "a": self.a, "b": self.b, "alpha": self.alpha}


@dataclass
class Switch(Target):
    """Class a while sigma > sigma_star, then class b: coarse structure of a, detail of b."""
    a: str | int
    b: str | int
    sigma_star: float

    def check(self, settings):
        if not settings.sigma_L < self.sigma_star < settings.sigma_0:
            raise EngineError(f"sigma* must lie between sigma_L = {settings.sigma_L:g} and sigma_0 = "
                              f"{settings.sigma_0:g}, where the walk passes it; got {self.sigma_star}")

    def phi(self, ckpt, sigma):
        pa, pb = ckpt.centroid(self.a, sigma), ckpt.centroid(self.b, sigma)
        return torch.where((sigma > self.sigma_star)[:, None].to(pa.device), pa, pb)

    def start(self, ckpt):
        return ckpt.class_mean(self.a)          # brightness is the coarsest structure: a's

    def describe(self):
        return {"mode": "switch", "a": self.a, "b": self.b, "sigma_star": self.sigma_star}


@dataclass
class ImageTarget(Target):
    """The centroid of the conditioning images: phibar(sigma) = mean over k of E_z phi(x_k + sigma z).

    The same estimator as a class's centroid table (centroids.compute_centroids), applied to the
    given images with `draws` noise draws each at every sigma of the checkpoint's grid, and read
    the same way (linear in log sigma). It is built once per run, before the first step, for
    K x S x draws evaluations (96 per image at the default 4 draws on 24 sigmas), whatever the
    number of samples. Measured (README, "Conditioning on images"): as class-like samples as the
    target it replaced, phi of one fresh noisy copy of each image at every step (0.503 against
    0.494 on the same held-out crops), which cost K more evaluations per sample per step (8 samples
    of one image: 88.2 evaluations per sample against 153.6). 4 draws, as the training targets
    average 4 noisy partners (TrainConfig.pool).
    """
    images: torch.Tensor            # (K, C, H, W) in [0, 1]
    seed: int = 0
    draws: int = 4
    table: CentroidTable | None = field(default=None, repr=False)   # one "class": the images; by prepare

    def __post_init__(self):
        if self.images.dim() != 4 or len(self.images) == 0:
            raise EngineError("give at least one conditioning image")
        if self.draws < 1:
            raise EngineError(f"draws must be at least 1, got {self.draws}")

    def prepare(self, ckpt):
        x = self.images.to(torch.float32).repeat(self.draws, 1, 1, 1).numpy()
        sigmas = ckpt.require_centroids().sigmas.cpu().numpy()
        self.table = compute_centroids(ckpt.model, x, np.zeros(len(x), dtype=np.int64), ["images"],
                                       sigmas=sigmas, per_class=len(x), seed=self.seed).to(ckpt.device)
        return len(x) * len(sigmas)

    def phi(self, ckpt, sigma):
        if self.table is None:
            self.prepare(ckpt)
        return self.table.at(0, sigma)

    def start(self, ckpt):
        return self.images.to(torch.float32).mean(dim=(0, 2, 3))

    def describe(self):
        return {"mode": "images", "count": len(self.images), "seed": self.seed, "draws": self.draws}


# ----------------------------------------------------------------------------- sampler

def image_generators(seed: int, n: int) -> list[torch.Generator]:
    """Independent noise stream per image, the same for image i whatever n is."""
    seeds = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> np.uint64(1))) for s in seeds]


def _noise(gens: list[torch.Generator], shape) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def _network(ckpt):
    """A Checkpoint's network: device-sized calls at its precision (Checkpoint.network); the model
    itself for stand-ins that provide only `model` (scripts/wiener_reference.py)."""
    return getattr(ckpt, "network", ckpt.model)


@torch.no_grad()
def sample(ckpt, target: Target | None = None, n: int = 16, seed: int = 0,
           settings: SamplerSettings | None = None, start: torch.Tensor | None = None,
           **overrides) -> Iterator[Step]:
    """Yield one Step per iteration of DESIGN.md 4, then a final Step (see module doc).
    start: (C,) mean pixel of y_0; None: the target's own (Target.start)."""
    s = settings or SamplerSettings(**overrides)
    if settings is not None and overrides:
        s = SamplerSettings(**{**asdict(settings), **overrides})
    target = target or Unconditional()
    target.check(s)
    if n < 1:
        raise EngineError(f"number of samples must be at least 1, got {n}")
    if ckpt.kind == "mixture" and not isinstance(target, Unconditional):
        raise EngineError("the mixture model cannot be conditioned; use --unconditional or a feature-guided model")
    # a target's set-up work is shared by the n samples: each is charged its share, rounded up
    setup = target.prepare(ckpt)
    dev = ckpt.device
    C, H, W = ckpt.shape
    N = C * H * W
    gens = image_generators(seed, n)
    mean = torch.as_tensor(target.start(ckpt) if start is None else start, dtype=torch.float32)
    y = mean.to(dev)[None, :, None, None] + s.sigma_0 * _noise(gens, (C, H, W)).to(dev)
    sigma = torch.full((n,), s.sigma_0, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    denoised = y.clone()
    phi = torch.zeros(n, ckpt.model.phi_dim, device=dev)
    nfe = math.ceil(setup / n)
    yield Step(0, y.clone(), denoised.clone(), sigma.clone(), phi.clone(), active.clone(), nfe)

    t = 1
    while bool(active.any()) and t <= s.max_steps:
        idx = torch.nonzero(active).flatten()
        ya = y[idx]
        goal = guided(ckpt, target.phi(ckpt, sigma[idx]), sigma[idx], s.guidance)
        f, phi_a = _network(ckpt)(ya, goal)
        nfe += 1
        h = s.h0 * t / (1 + s.h0 * (t - 1))
        scale = torch.where(sigma[idx] > s.eps_scale_sigma, s.eps_scale, 1.0).to(ya)
        d = (f - ya) / scale[:, None, None, None]
        sig = d.flatten(1).norm(dim=1) / math.sqrt(N)
        gamma = sig * math.sqrt(max(0.0, (1 - s.beta * h) ** 2 - (1 - h) ** 2))
        z = _noise(gens, (C, H, W)).to(dev)[idx]          # every stream advances every step
        y[idx] = ya + h * d + gamma[:, None, None, None] * z
        denoised[idx], phi[idx], sigma[idx] = f, phi_a, sig
        active[idx] = sig > s.sigma_L
        yield Step(t, y.clone(), denoised.clone(), sigma.clone(), phi.clone(), active.clone(), nfe)
        t += 1

    # the returned sample: f(y_T, phi*) at each image's final noise level
    final, phi_T = _network(ckpt)(y, guided(ckpt, target.phi(ckpt, sigma), sigma, s.guidance))
    nfe += 1
    yield Step(t, y.clone(), final.clamp(0, 1), sigma.clone(), phi_T, active.clone(), nfe, final=True)


def run(ckpt, target: Target | None = None, n: int = 16, seed: int = 0, record: bool = False,
        **kw) -> tuple[torch.Tensor, list[Step]]:
    """Run the sampler to the end: (samples (n, C, H, W) in [0, 1], the steps if record)."""
    steps = []
    last = None
    for last in sample(ckpt, target, n, seed, **kw):
        if record:
            steps.append(last)
    return last.denoised, steps


def trajectory_arrays(steps: list[Step]) -> dict[str, np.ndarray]:
    """Stack recorded steps into arrays (T, B, ...) for saving as .npz."""
    return {"y": np.stack([s.y.cpu().numpy() for s in steps]).astype(np.float32),
            "denoised": np.stack([s.denoised.cpu().numpy() for s in steps]).astype(np.float32),
            "sigma": np.stack([s.sigma.cpu().numpy() for s in steps]).astype(np.float32),
            "phi": np.stack([s.phi.cpu().numpy() for s in steps]).astype(np.float32),
            "active": np.stack([s.active.cpu().numpy() for s in steps]),
            "t": np.array([s.t for s in steps]), "nfe": np.array([s.nfe for s in steps]),
            "final": np.array([s.final for s in steps])}
