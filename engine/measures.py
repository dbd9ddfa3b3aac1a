"""Measurements of one feature-guided model that the app shows at once and chooses its defaults from.

Cached beside the atlas (`measures.json` in the atlas folder), written by `python -m engine atlas`
(or `python -m engine atlas --measures-only --out DIR` for an atlas already built), recomputed by
the app in the background when missing or drawn from other weights:

  density      the density distance between every pair of classes (density.density_distance),
               the slow part of the Distances view;
  accuracy     for every class, the share of `n` samples (seed `seed`, the sampler's defaults)
               that the independent classifier reads as that class: the two ends of an
               interpolation between two classes are exactly these samples;
  trajectory   one sample per class from the same noise (seed `seed`): the final RMS pixel
               distance between every two classes' samples and the sigma where they part
               (bifurcation.half_rise_sigma);
  pair         the default interpolation pair: the two classes whose samples are best read as
               their class (ties: the pair whose trajectories end furthest apart);
  targets      the default trajectory targets: among the well-read classes, the three whose
               trajectories end furthest apart (the smallest of their pairwise distances largest).

Also here, for the app and the analyses: the pairwise trajectory distances of K targets, the
squared distances between centroids, and how far a new point's features lie from the nearest
class centroid against that class's own spread.
"""
from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .bifurcation import half_rise_sigma
from .density import density_distance
from .errors import EngineError
from .paths import write_atomic
from .config import SamplerSettings
from .sampler import ClassTarget, sample
from .separation import class_pairs

FILE = "measures.json"
FORMAT = "atlas-measures/1"
WELL_READ = 0.5          # a class whose samples the classifier reads as it at least this often
SPREAD_QUANTILE = 0.95   # a class's spread: this quantile of its points' distances to its centroid


# ----------------------------------------------------------------------------- trajectories of K targets

@torch.no_grad()
def class_trajectories(fg, names: list[str], seed: int = 0, settings: SamplerSettings | None = None,
                       callback=None) -> dict[str, np.ndarray]:
    """One sample per target class from the same start (the data mean) and seed, so only the
    target differs. Every step is kept: y (K, T, C, H, W), denoised (K, T, C, H, W), sigma (K, T);
    a run that finishes early stays where it stopped (as bifurcation.bifurcation pads).
    The last denoised image of each run is its sample. callback(k, t, sigma) after each step."""
    settings = settings or SamplerSettings()
    runs = []
    for k, name in enumerate(names):
        ys, ds, sig, step = [], [], [], None
        for step in sample(fg, ClassTarget(name), n=1, seed=seed, settings=settings, start=fg.mean):
            if step.final:
                break
            ys.append(step.y[0].cpu().numpy())
            ds.append(step.denoised[0].cpu().numpy())
            sig.append(float(step.sigma[0]))
            if callback is not None:
                callback(k, step.t, sig[-1])
        ds[-1] = step.denoised[0].cpu().numpy()          # the returned sample f(y_T)
        runs.append((np.stack(ys), np.stack(ds), np.array(sig)))
    t = max(len(r[0]) for r in runs)
    runs = [tuple(np.concatenate([a, np.repeat(a[-1:], t - len(a), 0)]) for a in r) for r in runs]
    return {"y": np.stack([r[0] for r in runs]).astype(np.float32),
            "denoised": np.stack([r[1] for r in runs]).astype(np.float32),
            "sigma": np.stack([r[2] for r in runs])}


def trajectory_distances(y: np.ndarray, sigma: np.ndarray, names: list[str]) -> tuple[dict, dict]:
    """RMS pixel distance between every pair of trajectories y (K, T, ...) at each step, against
    the geometric mean of their sigmas (K, T), and the sigma where each pair parts:
    ({"a vs b": (sigma (T,), distance (T,))}, {"a vs b": bifurcation sigma or nan})."""
    curves, marks = {}, {}
    for i, j in class_pairs(len(names)):
        key = f"{names[i]} vs {names[j]}"
        d = np.sqrt(((y[i] - y[j]) ** 2).reshape(y.shape[1], -1).mean(1))
        s = np.sqrt(np.maximum(sigma[i], 1e-12) * np.maximum(sigma[j], 1e-12))
        curves[key] = (s, d)
        marks[key] = half_rise_sigma(s, d)
    return curves, marks


# ----------------------------------------------------------------------------- centroids

def squared_distances(centroids: np.ndarray) -> np.ndarray:
    """||phibar_a - phibar_b||^2 for every two rows of centroids (K, D): (K, K)."""
    c = np.asarray(centroids, np.float64)
    return ((c[:, None] - c[None]) ** 2).sum(-1)


def class_spreads(phi: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                  quantile: float = SPREAD_QUANTILE) -> np.ndarray:
    """For every class, the `quantile` of its held-out points' distances to its own centroid (K,)."""
    out = np.zeros(len(centroids))
    for c in range(len(centroids)):
        own = phi[labels == c]
        if len(own):
            out[c] = np.quantile(np.linalg.norm(own - centroids[c], axis=1), quantile)
    return out


@dataclass
class Nearest:
    """Where a point's features lie against the class centroids."""
    index: int                 # the nearest centroid's class
    distance: float            # ||phi - phibar_index||
    spread: float              # that class's own spread (class_spreads)
    ratio: float               # distance / spread: above 1, further out than 95% of the class's images

    @property
    def far(self) -> bool:
        return self.ratio > 1.0


def nearest_centroid(phi: np.ndarray, centroids: np.ndarray, spreads: np.ndarray) -> Nearest:
    d = np.linalg.norm(np.asarray(centroids, np.float64) - np.asarray(phi, np.float64)[None], axis=1)
    c = int(np.argmin(d))
    spread = float(max(spreads[c], 1e-12))
    return Nearest(c, float(d[c]), spread, float(d[c]) / spread)


# ----------------------------------------------------------------------------- the cached measures

@dataclass
class DensityMeasures:
    """The density distances of every pair of classes (the first, and slowest, of the measures)."""
    classes: list[str]
    pairs: list[list[int]]                 # (P, 2)
    density_distance: list[float]          # (P,)
    density_sigmas: list[float]            # (M,)
    density_share: list[float]             # (M,) each sigma's share of D
    density_local_pearson: list[float]     # (M,) integrand against the centroid distance at that sigma
    density_per_class: int

    @classmethod
    def of(cls, classes: list[str], dens) -> "DensityMeasures":
        """From a density.DensityResult."""
        return cls(list(classes), dens.pairs.tolist(), _rounded(dens.density_distance), _rounded(dens.sigmas),
                   _rounded(dens.share), _rounded(dens.local_pearson), int(dens.per_class))

    def density_matrix(self) -> np.ndarray:
        k = len(self.classes)
        m = np.zeros((k, k))
        p = np.asarray(self.pairs, int).reshape(-1, 2)
        m[p[:, 0], p[:, 1]] = m[p[:, 1], p[:, 0]] = self.density_distance
        return m


def _rounded(v) -> list:
    return [None if not math.isfinite(float(x)) else round(float(x), 6) for x in v]


@dataclass
class Measures(DensityMeasures):
    fingerprint: str = ""                  # of the feature-guided checkpoint they were drawn from
    accuracy: list[float] = field(default_factory=list)   # (K,) share of samples read as their class
    samples: int = 0
    seed: int = 0
    final_distance: list[list[float]] = field(default_factory=list)   # (K, K) RMS distance of final samples
    bifurcation_sigma: list[list[float]] = field(default_factory=list)  # (K, K), nan on the diagonal
    pair: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    seconds: float = 0.0
    created: str = ""
    info: dict = field(default_factory=dict)

    def matches(self, fg) -> bool:
        return self.fingerprint == fg.fingerprint and self.classes == list(fg.classes)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        data = {"format": FORMAT, **asdict(self)}
        text = json.dumps(data, indent=1, default=float).replace("NaN", "null")
        return write_atomic(folder / FILE, lambda f: f.write(text.encode()))

    @classmethod
    def load(cls, folder: str | Path) -> "Measures":
        path = Path(folder) / FILE
        if not path.is_file():
            raise EngineError(f"{path.parent}: no {FILE}; write it with "
                              f"`python -m engine atlas --measures-only --out {path.parent}`")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise EngineError(f"{path}: unreadable ({type(e).__name__}); rewrite it with "
                              "`python -m engine atlas --measures-only`") from None
        if data.pop("format", None) != FORMAT:
            raise EngineError(f"{path}: not a measures file of this tool; rewrite it")
        data["bifurcation_sigma"] = [[float("nan") if v is None else v for v in row]
                                     for row in data["bifurcation_sigma"]]
        return cls(**data)


def choose_pair(accuracy: np.ndarray, final: np.ndarray, classes: list[str]) -> list[str]:
    """The two classes whose samples are best read as their class; ties: furthest apart."""
    best = max(itertools.combinations(range(len(classes)), 2),
               key=lambda p: (round(min(accuracy[p[0]], accuracy[p[1]]), 6), final[p[0], p[1]]))
    return [classes[best[0]], classes[best[1]]]


def choose_targets(accuracy: np.ndarray, final: np.ndarray, classes: list[str], k: int = 3) -> list[str]:
    """Among the well-read classes (all if fewer than k), the k whose samples from one noise end
    furthest apart: the smallest pairwise final distance of the set is the largest."""
    k = min(k, len(classes))
    pool = [c for c in range(len(classes)) if accuracy[c] >= WELL_READ]
    if len(pool) < k:
        pool = list(np.argsort(-accuracy, kind="stable")[:max(k, len(pool))])
    best = max(itertools.combinations(sorted(pool), k),
               key=lambda s: min(final[a, b] for a, b in itertools.combinations(s, 2)))
    return [classes[c] for c in best]


def measure(fg, images: np.ndarray, labels: np.ndarray, classifier, samples: int = 8, seed: int = 0,
            progress: bool = False, log=None, on_density=None) -> Measures:
    """Compute every measure above for a feature-guided model (held-out images from the atlas).
    classifier: an engine.classifier.Classifier, or a function returning one (called once the
    density distances are done); on_density(DensityMeasures) is called as soon as they are."""
    t0 = time.perf_counter()
    say = log or (lambda msg: None)
    say("density distance")
    dens = density_distance(fg, images, labels, progress=progress)
    if on_density is not None:
        on_density(DensityMeasures.of(fg.classes, dens))
    if callable(classifier) and not hasattr(classifier, "predict"):
        classifier = classifier()
    settings = SamplerSettings()
    k = len(fg.classes)
    accuracy = np.zeros(k)
    for c, name in enumerate(fg.classes):
        say(f"samples of {name}")
        step = None
        for step in sample(fg, ClassTarget(name), n=samples, seed=seed, settings=settings):
            pass
        accuracy[c] = float((classifier.predict(step.denoised.cpu().numpy()) == c).mean())
    say("trajectories")
    traj = class_trajectories(fg, list(fg.classes), seed=seed, settings=settings)
    final = np.zeros((k, k))
    bif = np.full((k, k), np.nan)
    last = traj["denoised"][:, -1]
    for i, j in class_pairs(k):
        final[i, j] = final[j, i] = float(np.sqrt(((last[i] - last[j]) ** 2).mean()))
        s = np.sqrt(np.maximum(traj["sigma"][i], 1e-12) * np.maximum(traj["sigma"][j], 1e-12))
        d = np.sqrt(((traj["y"][i] - traj["y"][j]) ** 2).reshape(traj["y"].shape[1], -1).mean(1))
        bif[i, j] = bif[j, i] = half_rise_sigma(s, d)
    pair = choose_pair(accuracy, final, list(fg.classes))
    targets = choose_targets(accuracy, final, list(fg.classes))
    return Measures(
        **vars(DensityMeasures.of(fg.classes, dens)), fingerprint=fg.fingerprint,
        accuracy=_rounded(accuracy), samples=samples, seed=seed,
        final_distance=[_rounded(r) for r in final], bifurcation_sigma=[[float(x) for x in r] for r in bif],
        pair=pair, targets=targets, seconds=round(time.perf_counter() - t0, 1),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        info={"step": fg.total_steps, "sampler": asdict(settings)})
