"""Coarse-to-fine stochastic sampler (Kadkhodaie & Simoncelli 2021; docs/method.md, "Sampler").

    y_0 = mean image + sigma_0 z,  t = 1
    while sigma_{t-1} > sigma_L:
        h_t     = h0 * t / (1 + h0 * (t - 1))
        d_t     = f(y_{t-1}, phi*(sigma_{t-1})) - y_{t-1}
        d_t     = d_t / lambda            while sigma_{t-1} > sigma_lambda (ours; below)
        sigma_t = ||d_t|| / sqrt(N)
        gamma_t = sigma_t * sqrt((1 - beta h_t)^2 - (1 - h_t)^2)
        y_t     = y_{t-1} + h_t d_t + gamma_t z_t
    return f(y_T, phi*)

`step` is one update in these symbols and nothing else. `walk` is the loop, and knows nothing of
checkpoints: it takes a denoiser, any callable (y, phi*) -> (f(y, phi*), phi(y)), and a target
function sigma -> phi*(sigma), as k-diffusion's samplers take a model. It yields a `Step` after
every update and a final `Step` with `final=True` holding f(y_T, phi*). `sample` is the adapter
that builds both from a Checkpoint and a `Target` (Checkpoint.network; the target read from the
checkpoint's centroid tables, with guidance) and starts the walk; `run` drives it to the end for
every consumer that does not show the steps as they come (the command line, evaluation, the
analyses; `on_step` for progress); the app streams `sample` itself. Each image stops on its own
once its sigma falls below sigma_L (it is then frozen); each image has its own noise stream,
derived from (seed, image index), so image i is the same whatever the batch size, and the same
seed under two targets shares its initial noise and noise sequence (the bifurcation experiment).

The target phi*(sigma) is looked up at each image's current noise estimate; phi*(sigma_0)
at t = 1 (the estimate exists only after the first denoiser call).
Two additions of ours, each off at the paper's value: guidance g > 0 gives the network
phi* + g (phi* - phibar(sigma)) instead of phi*, phibar the mixture's centroid (`guided`;
g = 0 is the paper's target), and epsilon scaling divides d_t by lambda while the noise
estimate is above sigma_lambda (`residual_scale`; lambda = 1 is the paper's sampler). Their
defaults were measured (SamplerSettings in engine/config.py).

Where the walk starts (our choice of the paper's "mean image"): the mean pixel of the
target - a class's training images, the alpha-mix of two classes', the conditioning images'
- and the data mean only for unconditional sampling. The walk should start from a draw of
p_sigma0(y | target), and at 32x32 the noise on an image's mean pixel is sigma_0 / 32, far less
than the spread of the classes' brightnesses: from the data mean every class began as a mid-grey
image no member of it resembles, and the denoiser,
trained on images whose brightness agrees with their class, kept that brightness
(docs/method.md, "Sampler defaults"). `start` overrides it; the bifurcation experiment passes
the data mean so that both targets share y_0 exactly.

A class-conditional model (engine/conditional.py) walks the same loop: what it is told for a
class is its embedding (`condition`, read where a feature-guided model reads its centroid), and
classifier-free guidance is its denoiser (SamplerSettings.cfg; w = 0: the network alone).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from .centroids import CentroidTable, compute_centroids
from .conditional import ClassifierFreeGuidance, condition
from .config import ALPHA_LIMITS, SamplerSettings
from .errors import EngineError

# The defaults by name (SamplerSettings holds them)
SIGMA_0, SIGMA_L, H0, BETA = SamplerSettings.sigma_0, SamplerSettings.sigma_L, SamplerSettings.h0, SamplerSettings.beta
MAX_STEPS, GUIDANCE = SamplerSettings.max_steps, SamplerSettings.guidance
EPS_SCALE, EPS_SCALE_SIGMA = SamplerSettings.eps_scale, SamplerSettings.eps_scale_sigma


def guided(ckpt, phi_star: torch.Tensor | None, sigma: torch.Tensor, guidance: float) -> torch.Tensor | None:
    """Ours: phi* + g (phi* - phibar(sigma)), phibar the mixture's centroid (Checkpoint.centre).

    g = 0 is the paper's target. g > 0 carries the target past it, away from the mixture's
    centroid: the alpha > 1 of an interpolation from the mixture to the target, the way
    classifier-free guidance extrapolates from an unconditional model (docs/method.md, "Sampler
    defaults", measures what it does to class accuracy and diversity)."""
    if phi_star is None or guidance == 0:
        return phi_star
    return phi_star + guidance * (phi_star - ckpt.centre(sigma).to(phi_star))


def residual_scale(sigma: torch.Tensor, settings: SamplerSettings) -> torch.Tensor:
    """Ours: lambda per image, epsilon scaling's divisor of d_t: eps_scale while sigma_{t-1} is
    above eps_scale_sigma, else 1 (the paper's step)."""
    return torch.where(sigma > settings.eps_scale_sigma, settings.eps_scale, 1.0)


def step_size(t: int, h0: float) -> float:
    """h_t = h0 t / (1 + h0 (t - 1))."""
    return h0 * t / (1 + h0 * (t - 1))


def step(y: torch.Tensor, f: torch.Tensor, z: torch.Tensor, t: int, h0: float, beta: float,
         lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of the walk: (y_t, sigma_t) from y_{t-1} (B, C, H, W), f = f(y_{t-1}, phi*),
    the fresh noise z_t and lambda (B,) of epsilon scaling (ones: the paper's step)."""
    h_t = step_size(t, h0)
    d_t = (f - y) / lam.to(y)[:, None, None, None]
    sigma_t = d_t.flatten(1).norm(dim=1) / math.sqrt(d_t[0].numel())
    gamma_t = sigma_t * math.sqrt(max(0.0, (1 - beta * h_t) ** 2 - (1 - h_t) ** 2))
    y_t = y + h_t * d_t + gamma_t[:, None, None, None] * z
    return y_t, sigma_t


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
        return condition(ckpt, self.name, sigma)

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
        ALPHA_LIMITS.check("alpha", self.alpha, "0: class a, 1: class b; outside [0, 1] extrapolates")

    def phi(self, ckpt, sigma):
        return (1 - self.alpha) * condition(ckpt, self.a, sigma) + self.alpha * condition(ckpt, self.b, sigma)

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
        pa, pb = condition(ckpt, self.a, sigma), condition(ckpt, self.b, sigma)
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
    K x S x draws evaluations, whatever the number of samples. Why a table rather than phi of a
    fresh noisy copy of each image at every step: samples as close to the class, for far fewer
    evaluations per sample (docs/method.md, "Conditioning on images", measures both). 4 draws by
    default, as the training targets average 4 noisy partners (TrainConfig.pool).
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


# ----------------------------------------------------------------------------- the walk

def image_generators(seed: int, n: int) -> list[torch.Generator]:
    """Independent noise stream per image, the same for image i whatever n is."""
    seeds = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> np.uint64(1))) for s in seeds]


def _noise(gens: list[torch.Generator], shape) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


# The walk's two inputs, as k-diffusion's samplers take a model: anything that can denoise can be
# sampled, and the loop never reads a checkpoint.
Denoiser = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]
TargetFunction = Callable[[torch.Tensor], "torch.Tensor | None"]


@torch.no_grad()
def walk(denoiser: Denoiser, target: TargetFunction, y: torch.Tensor, gens: list[torch.Generator],
         settings: SamplerSettings, phi_dim: int, nfe: int = 0) -> Iterator[Step]:
    """The walk of the module doc from y_0 (n, C, H, W): one Step per update (`step`), then the
    final Step. It owns stopping, the noise streams and the records.

    denoiser(y (B, C, H, W), phi* (B, D) or None) -> (f(y, phi*), phi(y) (B, D));
    target(sigma (B,)) -> phi*(sigma) (B, D), or None for no projection;
    gens: one noise stream per image (image_generators), y_0's noise already drawn from them;
    phi_dim: D, for the record of step 0 (before any denoiser call); nfe: evaluations per image
    already spent (a target's set-up). A denoiser that evaluates a network more than once per
    image says how often in `evaluations` (classifier-free guidance: twice)."""
    s = settings
    cost = getattr(denoiser, "evaluations", 1)
    y = y.clone()
    n, dev, shape = len(y), y.device, tuple(y.shape[1:])
    sigma = torch.full((n,), s.sigma_0, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    denoised = y.clone()
    phi = torch.zeros(n, phi_dim, device=dev)
    yield Step(0, y.clone(), denoised.clone(), sigma.clone(), phi.clone(), active.clone(), nfe)

    t = 1
    while bool(active.any()) and t <= s.max_steps:
        idx = torch.nonzero(active).flatten()
        ya = y[idx]
        f, phi_a = denoiser(ya, target(sigma[idx]))
        nfe += cost
        z = _noise(gens, shape).to(dev)[idx]              # every stream advances every step
        y[idx], sig = step(ya, f, z, t, s.h0, s.beta, residual_scale(sigma[idx], s))
        denoised[idx], phi[idx], sigma[idx] = f, phi_a, sig
        active[idx] = sig > s.sigma_L
        yield Step(t, y.clone(), denoised.clone(), sigma.clone(), phi.clone(), active.clone(), nfe)
        t += 1

    # the returned sample: f(y_T, phi*) at each image's final noise level
    final, phi_T = denoiser(y, target(sigma))
    nfe += cost
    yield Step(t, y.clone(), final.clamp(0, 1), sigma.clone(), phi_T, active.clone(), nfe, final=True)


# ----------------------------------------------------------------------------- a checkpoint's walk

def checkpoint_denoiser(ckpt) -> Denoiser:
    """A Checkpoint's network as the walk's denoiser: device-sized calls at its precision
    (Checkpoint.network); the model itself for stand-ins that provide only `model`
    (experiments/wiener_reference.py)."""
    return getattr(ckpt, "network", ckpt.model)


def target_function(ckpt, target: Target, guidance: float = 0.0) -> TargetFunction:
    """sigma -> phi*(sigma) of `target` on a checkpoint's centroid tables, carried by `guidance`
    past it (guided; 0: the paper's target)."""
    return lambda sigma: guided(ckpt, target.phi(ckpt, sigma), sigma, guidance)


@torch.no_grad()
def sample(ckpt, target: Target | None = None, n: int = 16, seed: int = 0,
           settings: SamplerSettings | None = None, start: torch.Tensor | None = None) -> Iterator[Step]:
    """The walk (`walk`) of n images on a checkpoint toward a target (default: unconditional).
    start: (C,) mean pixel of y_0; None: the target's own (Target.start)."""
    s = settings or SamplerSettings()
    target = target or Unconditional()
    target.check(s)
    if n < 1:
        raise EngineError(f"number of samples must be at least 1, got {n}")
    if ckpt.kind == "mixture" and not isinstance(target, Unconditional):
        raise EngineError("the mixture model cannot be conditioned; use --unconditional or a feature-guided model")
    if ckpt.kind == "conditional":
        if isinstance(target, ImageTarget):
            raise EngineError("a conditional model is told classes, not images; condition on images with a "
                              "feature-guided model")
        if s.guidance:
            raise EngineError("--guidance carries a feature-guided target; a conditional model takes "
                              "classifier-free guidance (--cfg)")
    elif s.cfg:
        raise EngineError(f"--cfg is classifier-free guidance of a conditional model; this is a {ckpt.kind} model")
    # a target's set-up work is shared by the n samples: each is charged its share, rounded up
    setup = target.prepare(ckpt)
    dev = ckpt.device
    gens = image_generators(seed, n)
    mean = torch.as_tensor(target.start(ckpt) if start is None else start, dtype=torch.float32)
    y = mean.to(dev)[None, :, None, None] + s.sigma_0 * _noise(gens, ckpt.shape).to(dev)
    guide = s.cfg and not isinstance(target, Unconditional)     # the unconditional walk has no D_cond
    denoiser = ClassifierFreeGuidance(ckpt, s.cfg) if guide else checkpoint_denoiser(ckpt)
    yield from walk(denoiser, target_function(ckpt, target, s.guidance), y, gens, s,
                    ckpt.model.phi_dim, nfe=math.ceil(setup / n))


def run(ckpt, target: Target | None = None, n: int = 16, seed: int = 0, settings: SamplerSettings | None = None,
        start: torch.Tensor | None = None, record: bool = False,
        on_step: Callable[[Step], None] | None = None) -> tuple[torch.Tensor, list[Step]]:
    """Run the sampler to the end: (samples (n, C, H, W) in [0, 1], steps), steps every Step if
    `record`, else the final Step alone (its t and nfe). on_step(step) sees every Step as it comes."""
    steps: list[Step] = []
    for last in sample(ckpt, target, n, seed, settings, start):
        if on_step is not None:
            on_step(last)
        if record:
            steps.append(last)
    return last.denoised, steps if record else [last]


def first_steps_below(steps: list[Step], levels) -> np.ndarray:
    """(L, B) for recorded steps: for each noise level, each image's index into `steps` of the
    first step whose noise estimate fell below it - where the walk passes that level - or the
    last step's if it never did."""
    sigma = np.stack([s.sigma.cpu().numpy() for s in steps])                     # (T, B)
    below = sigma[None] < np.asarray(levels)[:, None, None]                        # (L, T, B)
    return np.where(below.any(1), below.argmax(1), len(steps) - 1)


def trajectory_arrays(steps: list[Step]) -> dict[str, np.ndarray]:
    """Stack recorded steps into arrays (T, B, ...) for saving as .npz."""
    return {"y": np.stack([s.y.cpu().numpy() for s in steps]).astype(np.float32),
            "denoised": np.stack([s.denoised.cpu().numpy() for s in steps]).astype(np.float32),
            "sigma": np.stack([s.sigma.cpu().numpy() for s in steps]).astype(np.float32),
            "phi": np.stack([s.phi.cpu().numpy() for s in steps]).astype(np.float32),
            "active": np.stack([s.active.cpu().numpy() for s in steps]),
            "t": np.array([s.t for s in steps]), "nfe": np.array([s.nfe for s in steps]),
            "final": np.array([s.final for s in steps])}
