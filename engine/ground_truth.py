"""Interpolation checked against a known answer (docs/analysis.md, "Interpolation against a ground
truth").

The paper reads samples drawn from interpolated centroids as lying "between" the two classes, an
out-of-distribution generalisation. On natural textures there is no answer to check that against.
On `ovals` there is: the classes differ by one parameter, the width/height ratio of the oval, and
`engine.data.aspect_ratio` reads it off any image. A model trained on `ovals-holdout` never saw the
class of ratio 1; interpolating between ratio 0.5 and ratio 2 should then pass through ovals of
ratio 1, and real images of that class (the `ovals` dataset's "ratio 1", held out) say what those
look like.

Each method interpolates what it is told for a class: the feature-guided model its centroids, the
conditional model its class embeddings (engine/conditional.py), the same seed at every alpha. For
each method, over the alphas:
- the aspect ratio of every sample (median and quartiles per alpha);
- how monotone it is in alpha: Spearman of the median log ratio against alpha;
- at the midpoint (alpha 0.5) and at the alpha whose samples lie nearest the held-out class: the
  distance of the samples' log2 ratios to the real held-out ones (1-D Wasserstein), beside the
  same distance between two disjoint sets of real held-out images (what real images score);
- the independent classifier's reading at those alphas: the share read as the held-out class, by a
  classifier trained on all five classes (`ovals`, the held-out class included), beside its
  accuracy on real held-out images;
- how sharp the samples stay: the mean of each image's strongest 5% gradient magnitudes over the
  same figure for real held-out images (1: as sharp; below: blurred edges), and the contrast ratio.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import SamplerSettings
from .data import HELD_OUT_RATIO, aspect_ratio, load_dataset
from .denoising import progress_bar
from .errors import EngineError
from .sampler import Interpolation, run

PAIR = ("ratio 0.5", "ratio 2")             # the classes either side of the held-out one
HELD_OUT = f"ratio {HELD_OUT_RATIO:g}"
ALPHAS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
METHOD_NAMES = {"feature_guided": "feature guidance (centroids)", "conditional": "conditional network (embeddings)"}


OVAL_CONTRAST = 0.1      # real ovals stand 0.26 or more above their background; blank samples ~0.01


def has_oval(images: np.ndarray) -> np.ndarray:
    """(N,) bool: the image holds a bright shape - its 99th percentile stands OVAL_CONTRAST above
    its median (the background)."""
    g = images.mean(axis=1).reshape(len(images), -1)
    return np.percentile(g, 99, axis=1) - np.median(g, axis=1) > OVAL_CONTRAST


def sharpness(images: np.ndarray) -> np.ndarray:
    """(N,) mean of each image's strongest 5% gradient magnitudes (forward differences)."""
    g = images.mean(axis=1)
    gx, gy = np.diff(g, axis=2)[:, :-1, :], np.diff(g, axis=1)[:, :, :-1]
    mag = np.sqrt(gx ** 2 + gy ** 2).reshape(len(g), -1)
    k = max(1, int(round(0.05 * mag.shape[1])))
    return np.sort(mag, axis=1)[:, -k:].mean(axis=1)


def log2_ratio(images: np.ndarray) -> np.ndarray:
    return np.log2(np.clip(aspect_ratio(images), 1e-3, None))


@dataclass
class Curve:
    """One method's interpolation: per alpha the samples' aspect ratios and how they compare with
    the held-out class."""
    method: str
    alphas: list[float]
    ratios: list[list[float]]                 # per alpha, the aspect ratio of each sample holding an oval
    oval_share: list[float]                   # (A,) share of the samples that hold an oval
    median: list[float]                       # (A,)
    q25: list[float]
    q75: list[float]
    spearman: float                           # of the median log ratio with alpha
    distance: list[float]                     # (A,) W1 of log2 ratios to the real held-out ones
    read_held_out: list[float]                # (A,) share the five-class classifier reads as held out
    sharpness: list[float]                    # (A,) over the real held-out images' figure
    contrast: list[float]                     # (A,) pixel sd over the real held-out images'
    nfe_per_sample: float

    @property
    def best(self) -> int:
        """Index of the alpha whose samples lie nearest the held-out class."""
        return int(np.argmin(self.distance))

    def at(self, alpha: float) -> int:
        return int(np.argmin(np.abs(np.asarray(self.alphas) - alpha)))

    def point(self, i: int) -> dict:
        """Every figure at the i-th alpha."""
        return {"alpha": self.alphas[i], "oval_share": self.oval_share[i], "median_ratio": self.median[i],
                "distance_to_held_out": self.distance[i], "read_as_held_out": self.read_held_out[i],
                "sharpness_ratio": self.sharpness[i], "contrast_ratio": self.contrast[i]}

    def summary(self) -> dict:
        return {"spearman": self.spearman, "oval_share": float(np.mean(self.oval_share)),
                "midpoint": self.point(self.at(0.5)), "best": self.point(self.best),
                "nfe_per_sample": self.nfe_per_sample}


@dataclass
class GroundTruth:
    """Every method's curve and what real images of the held-out class score."""
    a: str
    b: str
    held_out: str
    samples: int
    real_ratio_median: float
    real_distance: float                      # W1 between two disjoint real held-out sets
    real_read_held_out: float                 # the classifier's accuracy on real held-out images
    classifier_test_accuracy: float
    curves: dict[str, Curve] = field(default_factory=dict)

    def table(self) -> dict:
        return {"pair": [self.a, self.b], "held_out": self.held_out, "samples_per_alpha": self.samples,
                "real_held_out": {"median_ratio": self.real_ratio_median, "distance_between_real_sets":
                                  self.real_distance, "read_as_held_out": self.real_read_held_out},
                "classifier_test_accuracy": self.classifier_test_accuracy,
                "methods": {m: c.summary() for m, c in self.curves.items()}}

    def to_json(self) -> str:
        from .export import plain               # NaN and inf (no oval at an alpha) -> null
        return json.dumps(plain({**asdict(self), "summary": self.table()}), indent=1)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path) -> "GroundTruth":
        try:
            d = json.loads(Path(path).read_text())
            d.pop("summary", None)
            d["curves"] = {m: Curve(**unplain(c)) for m, c in d["curves"].items()}
            return cls(**d)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise EngineError(f"{path}: not a ground-truth interpolation file ({e}); write one with "
                              "`python -m engine report`") from None


def unplain(curve: dict) -> dict:
    """A curve read back from JSON: null is no oval at that alpha (median NaN, distance inf)."""
    out = dict(curve)
    for key, missing in (("median", math.nan), ("q25", math.nan), ("q75", math.nan), ("distance", math.inf)):
        out[key] = [missing if v is None else v for v in curve[key]]
    return out


def check_ovals(models: dict) -> None:
    """Refuse models that were not trained on ovals without the held-out class."""
    for name, ck in models.items():
        if ck.train_config.dataset != "ovals-holdout":
            raise EngineError(f"{ck.path}: the ground-truth interpolation needs a model trained on "
                              f"ovals-holdout; this one was trained on {ck.train_config.dataset}")
        if ck.kind not in METHOD_NAMES:
            raise EngineError(f"{ck.path}: a {ck.kind} model cannot be told a class to interpolate")


def held_out_images(ckpt, n: int) -> np.ndarray:
    """2n real test images of the held-out class (never seen by an ovals-holdout model)."""
    cfg = ckpt.train_config
    full = load_dataset("ovals", "test", cfg.model.size, cfg.model.channels, None, cfg.crops_seed)
    x = full.of_class(full.classes.index(HELD_OUT))
    if len(x) < 2 * n:
        raise EngineError(f"need {2 * n} held-out images, the ovals test split has {len(x)}")
    return x[:2 * n]


def five_class_classifier(ckpt, progress: bool = False):
    """The independent classifier of `ovals` with every class, the held-out one included (trained
    once and cached beside the checkpoint, as engine/classifier.py caches a model's own)."""
    from .classifier import _key, classifier_for
    return classifier_for({**_key(ckpt.train_config), "dataset": "ovals"}, ckpt.path, progress=progress)


@torch.no_grad()
def ground_truth(models: dict, n: int = 32, alphas=ALPHAS, seed: int = 0, settings: SamplerSettings | None = None,
                 classifier=None, progress: bool = False) -> GroundTruth:
    """Interpolate PAIR with each model of `models` (method name -> checkpoint) and measure it
    against the held-out class (module doc)."""
    if not models:
        raise EngineError("give at least one ovals model (feature-guided or conditional)")
    check_ovals(models)
    from scipy import stats        # here, not at the top: scipy.stats adds a second to every command's start
    first = next(iter(models.values()))
    real = held_out_images(first, n)
    ref, other = real[:n], real[n:]
    ref_log, other_log = log2_ratio(ref), log2_ratio(other)
    ref_sharp, ref_sd = sharpness(ref).mean(), ref.std(axis=(1, 2, 3)).mean()
    clf = classifier or five_class_classifier(first, progress)
    held = clf.classes.index(HELD_OUT)
    gt = GroundTruth(PAIR[0], PAIR[1], HELD_OUT, n, float(2 ** np.median(ref_log)),
                     float(stats.wasserstein_distance(ref_log, other_log)),
                     float((clf.predict(other) == held).mean()), float(clf.test_accuracy))
    for method, ck in models.items():
        a, b = ck.class_index(PAIR[0]), ck.class_index(PAIR[1])
        logs, share, dist, read, sharp, contrast, nfe = [], [], [], [], [], [], []
        for al in progress_bar(list(alphas), f"ground truth ({method})", progress):
            x, (last,) = run(ck, Interpolation(a, b, float(al)), n=n, seed=seed, settings=settings)
            x = x.cpu().numpy()
            keep = has_oval(x)
            share.append(float(keep.mean()))
            lr = log2_ratio(x[keep]) if keep.any() else np.empty(0)
            logs.append(lr)
            # no oval at all: as far from the answer as can be said (inf), never near it
            dist.append(float(stats.wasserstein_distance(lr, ref_log)) if keep.any() else math.inf)
            read.append(float((clf.predict(x) == held).mean()))
            sharp.append(float(sharpness(x[keep]).mean() / ref_sharp) if keep.any() else 0.0)
            contrast.append(float(x.std(axis=(1, 2, 3)).mean() / ref_sd))
            nfe.append(last.nfe)
        med = np.array([np.median(lr) if len(lr) else np.nan for lr in logs])
        q = [np.percentile(lr, (25, 75)) if len(lr) else (np.nan, np.nan) for lr in logs]
        seen = ~np.isnan(med)
        rho = stats.spearmanr(np.asarray(alphas)[seen], med[seen]).statistic if seen.sum() > 2 and np.ptp(
            med[seen]) > 0 else 0.0
        gt.curves[method] = Curve(method, [float(v) for v in alphas], [(2 ** lr).tolist() for lr in logs], share,
                                  (2 ** med).tolist(),
                                  [float(2 ** lo) for lo, _ in q], [float(2 ** hi) for _, hi in q],
                                  float(0.0 if math.isnan(rho) else rho), dist, read, sharp, contrast,
                                  float(np.mean(nfe)))
    return gt
