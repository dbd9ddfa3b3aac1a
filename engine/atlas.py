"""The feature atlas: where held-out images, class centroids and trajectories sit in phi space.

For a set of checkpoints (the feature-guided model and its mixture baseline) and the
checkpoints' dataset, the atlas stores

  phi(x + sigma z) of `per_class` held-out test images of every class, at a few sigma
  (docs/method.md, "Feature vector phi": phi depends on sigma, so every map is drawn at one noise level);
  the class centroids phibar_c(sigma) of each checkpoint's centroid table;
  2-D maps of each (model, layer, sigma): PCA (exact, instant, computed on demand) and
  UMAP (umap-learn, fitted once by `warm_umap` and saved).

A layer is one feature block of phi (enc1 .. mid .. dec1) or "all" (the whole vector).

Placing new points (an uploaded image, the phi(y_t) of a sampling trajectory) in a map:
  PCA  - the exact linear projection.
  UMAP - the weighted mean of the map coordinates of the point's k nearest held-out
         neighbours in phi space, with UMAP's own neighbour weights
         exp(-(d_j - rho) / b), rho the nearest distance and b set so the weights sum
         to log2(k) (the "smooth k-NN" of McInnes et al. 2018). This is exactly the point
         where umap-learn's `transform` starts before it refines the placement by further
         layout epochs; we skip the refinement. Storing the fitted UMAP objects (k-NN
         index, graph) would cost tens of MB per map; this rule needs only the stored
         phi and map coordinates, so the cached atlas stays a few MB and placing is
         instant.

Every sigma argument snaps to the nearest stored sigma, nearest in log sigma (noise
levels are compared by ratio).

Files (a folder): atlas.npz (arrays) and atlas.json (names, sigmas, settings, where the
atlas came from). phi is stored in half precision, which keeps 3 significant digits;
the atlas rounds phi the same way as soon as it is built, so a fresh atlas and its saved
copy give identical maps.
"""
from __future__ import annotations

import json
import math
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import ASSETS, Checkpoint
from .data import run_crops
from .errors import EngineError
from .paths import shown_path, write_atomic

DEFAULT_ATLAS = ASSETS / "atlas"
FORMAT = "feature-atlas/1"
ATLAS_SIGMAS = (0.05, 0.2, 0.5, 1.0)
PER_CLASS = 50
ALL = "all"
METHODS = ("umap", "pca")
# umap-learn's defaults, with a fixed seed so a rebuilt atlas draws the same map
UMAP_SETTINGS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "random_state": 0}


@dataclass
class Embedding:
    coords: np.ndarray      # (N, 2) the held-out points
    centroids: np.ndarray   # (K, 2) the class centroids, in the same map
    method: str             # "umap" or "pca": what was actually used


@dataclass
class PCAMap:
    """The first two principal axes of a cloud of phi vectors."""
    mean: np.ndarray          # (D,)
    axes: np.ndarray          # (2, D)

    @classmethod
    def fit(cls, x: np.ndarray) -> "PCAMap":
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        axes = np.zeros((2, x.shape[1]), np.float64)
        axes[:len(vt[:2])] = vt[:2]
        # an SVD axis has no sign; fix it (largest loading positive) so maps never flip
        signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(1)])
        return cls(mean, axes * np.where(signs == 0, 1, signs)[:, None])

    def place(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) @ self.axes.T).astype(np.float32)


def smooth_knn_weights(d: np.ndarray, iterations: int = 64) -> np.ndarray:
    """UMAP's membership strengths of k neighbours at distances d (M, k), sorted ascending:
    exp(-(d - rho) / b) with rho = d[:, 0] and b found by bisection so each row sums to log2 k."""
    k = d.shape[1]
    goal = math.log2(k) if k > 1 else 1.0
    excess = np.maximum(d - d[:, :1], 0.0)
    lo, hi = np.zeros(len(d)), np.full(len(d), np.inf)
    b = np.ones(len(d))
    for _ in range(iterations):
        total = np.exp(-excess / b[:, None]).sum(1)
        too_big = total > goal                      # weights too wide: shrink b
        hi = np.where(too_big, b, hi)
        lo = np.where(too_big, lo, b)
        b = np.where(np.isinf(hi), b * 2, (lo + hi) / 2)
    return np.exp(-excess / np.maximum(b, 1e-12)[:, None])


def place_by_neighbours(x: np.ndarray, reference: np.ndarray, coords: np.ndarray,
                        k: int = UMAP_SETTINGS["n_neighbors"]) -> np.ndarray:
    """Map coordinates of new points x (M, D): weighted mean of the coords of their k nearest
    reference points (see module doc; umap-learn's transform initialisation)."""
    k = min(k, len(reference))
    d = torch.cdist(torch.from_numpy(np.asarray(x, np.float32)),
                    torch.from_numpy(np.asarray(reference, np.float32))).numpy().astype(np.float64)
    nearest = np.argsort(d, axis=1)[:, :k]
    w = smooth_knn_weights(np.take_along_axis(d, nearest, 1))
    return ((w[:, :, None] * coords[nearest]).sum(1) / w.sum(1, keepdims=True)).astype(np.float32)


# umap-learn finds exact neighbours itself below this many points and an approximate graph above
UMAP_EXACT_BELOW = 4096


def exact_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest points of each row of x (N, D), itself first at distance exactly 0: indices
    and distances (N, k), what umap-learn computes on fewer than UMAP_EXACT_BELOW points (a
    pairwise distance matrix, each row sorted stably)."""
    from sklearn.metrics import pairwise_distances
    d = pairwise_distances(np.asarray(x, np.float64))            # X against itself: a zero diagonal
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    return nearest, np.take_along_axis(d, nearest, 1).astype(np.float32)


def fit_umap(x: np.ndarray) -> np.ndarray:
    """A 2-D UMAP of x (N, D). umap is imported here: its first import takes ~20 s.

    On small sets the exact neighbours are handed to umap-learn (its `precomputed_knn`), the ones
    it would find itself (up to the order of near ties): its own search is a numba function compiled
    afresh in every process, a large share of a process's first fit (docs/benchmarks.md, "The atlas")."""
    k = min(UMAP_SETTINGS["n_neighbors"], len(x) - 1)
    x = np.asarray(x, np.float32)
    known = exact_neighbours(x, k) + (None,) if len(x) < UMAP_EXACT_BELOW else (None, None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # umap warns that a seed disables parallelism, and
        import umap                              # that a fit on given neighbours has no `transform`
        reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=UMAP_SETTINGS["min_dist"],
                            metric=UMAP_SETTINGS["metric"], random_state=UMAP_SETTINGS["random_state"],
                            precomputed_knn=known)
        return reducer.fit_transform(x).astype(np.float32)


def half_precision(x: np.ndarray) -> np.ndarray:
    """Round to float16 and back: what the saved atlas holds (see module doc)."""
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


class Atlas:
    """phi of held-out images per model, layer and sigma, with 2-D maps (module doc)."""

    def __init__(self, classes: list[str], labels: np.ndarray, images: np.ndarray, sigmas: list[float],
                 phi: dict[str, np.ndarray], centroids: dict[str, np.ndarray],
                 slices: dict[str, dict[str, slice]], info: dict | None = None,
                 umap_coords: dict[tuple[str, str, int], np.ndarray] | None = None):
        self.classes = list(classes)
        self.labels = np.asarray(labels, np.int64)
        self.images = np.asarray(images, np.float32)
        self.sigmas = [float(s) for s in sigmas]
        self.models = list(phi)
        self.phi = {m: half_precision(p) for m, p in phi.items()}                    # (S, N, D_m)
        self.centroid_table = {m: np.asarray(c, np.float32) for m, c in centroids.items()}  # (S, K, D_m)
        self.slices = slices
        first = self.models[0]
        # layers every model has, in the first model's order, then the whole vector
        self.layers = [b for b in slices[first] if b != ALL and all(b in slices[m] for m in self.models)] + [ALL]
        self.info = dict(info or {})
        self._umap: dict[tuple[str, str, int], np.ndarray] = dict(umap_coords or {})
        self._pca: dict[tuple[str, str, int], PCAMap] = {}
        self._lock = threading.Lock()

    # -- lookup
    def sigma_index(self, sigma: float) -> int:
        if not sigma > 0:
            raise EngineError(f"sigma must be positive, got {sigma}")
        return int(np.argmin(np.abs(np.log(self.sigmas) - math.log(sigma))))

    def _key(self, model: str, layer: str, sigma: float) -> tuple[str, str, int]:
        if model not in self.models:
            raise EngineError(f"unknown model '{model}'; the atlas has {', '.join(self.models)}")
        if layer not in self.layers:
            raise EngineError(f"unknown layer '{layer}'; layers are {', '.join(self.layers)}")
        return model, layer, self.sigma_index(sigma)

    def layer_phi(self, model: str, layer: str, sigma: float) -> np.ndarray:
        """(N, D_layer) phi of the held-out images in one layer at (the nearest stored) sigma."""
        m, l, s = self._key(model, layer, sigma)
        return self.phi[m][s][:, self.slices[m][l]]

    def layer_centroids(self, model: str, layer: str, sigma: float) -> np.ndarray:
        """(K, D_layer) phibar_c(sigma) of the checkpoint's centroid table, in one layer."""
        m, l, s = self._key(model, layer, sigma)
        return self.centroid_table[m][s][:, self.slices[m][l]]

    def slice_phi(self, model: str, layer: str, phi: np.ndarray) -> np.ndarray:
        """Full phi vectors (M, D_full) of `model`, or one (D_full,), -> (M, D_layer): one layer's part."""
        phi = np.asarray(phi.detach().cpu() if hasattr(phi, "detach") else phi, np.float32)
        phi = phi[None] if phi.ndim == 1 else phi
        full = self.phi[model].shape[2]
        if phi.ndim != 2 or phi.shape[1] != full:
            raise EngineError(f"phi has shape {tuple(phi.shape)}; the {model} model's full phi has {full} numbers")
        return phi[:, self.slices[model][layer]]

    # -- maps
    def pca(self, model: str, layer: str, sigma: float) -> PCAMap:
        key = self._key(model, layer, sigma)
        if key not in self._pca:
            self._pca[key] = PCAMap.fit(self.layer_phi(model, layer, sigma).astype(np.float64))
        return self._pca[key]

    def umap_ready(self, model: str, layer: str, sigma: float) -> bool:
        return self._key(model, layer, sigma) in self._umap

    def _method(self, method: str, key) -> str:
        if method not in METHODS:
            raise EngineError(f"unknown projection '{method}'; use umap or pca")
        return "umap" if method == "umap" and key in self._umap else "pca"

    def embedding(self, model: str, layer: str, sigma: float, method: str = "umap") -> Embedding:
        """The map of the held-out points and centroids; PCA while the UMAP is not fitted."""
        key = self._key(model, layer, sigma)
        used = self._method(method, key)
        cents = self.layer_centroids(model, layer, sigma)
        if used == "umap":
            coords = self._umap[key]
            return Embedding(coords, place_by_neighbours(cents, self.layer_phi(model, layer, sigma), coords), used)
        p = self.pca(model, layer, sigma)
        return Embedding(p.place(self.layer_phi(model, layer, sigma)), p.place(cents), used)

    def place(self, model: str, layer: str, sigma: float, phi: np.ndarray, method: str = "umap") -> np.ndarray:
        """Full phi vectors (M, D_full) of `model` -> (M, 2) in the map embedding(...) draws
        with the same method (pass the Embedding's .method to stay in the map on screen)."""
        key = self._key(model, layer, sigma)
        x = self.slice_phi(model, layer, phi)
        if self._method(method, key) == "umap":
            return place_by_neighbours(x, self.layer_phi(model, layer, sigma), self._umap[key])
        return self.pca(model, layer, sigma).place(x)

    def missing_umaps(self) -> list[tuple[str, str, int]]:
        return [(m, l, s) for m in self.models for l in self.layers for s in range(len(self.sigmas))
                if (m, l, s) not in self._umap]

    def warm_umap(self, callback=None) -> None:
        """Fit every missing UMAP (about 2 s each after umap's first import). Safe in a
        background thread: maps appear one by one, and embedding(..., "pca") never waits.
        callback(done, total, (model, layer, sigma)) after each fit."""
        with self._lock:                       # two warmers would fit the same maps twice
            todo = self.missing_umaps()
            for i, (m, l, s) in enumerate(todo):
                self._umap[(m, l, s)] = fit_umap(self.layer_phi(m, l, self.sigmas[s]))
                if callback is not None:
                    callback(i + 1, len(todo), (m, l, self.sigmas[s]))

    # -- provenance
    def matches(self, checkpoints: dict[str, Checkpoint]) -> bool:
        """Whether this atlas was built from these checkpoints: the same models, classes, weights
        and centroid tables (an atlas saved before fingerprints were recorded never matches)."""
        made = self.info.get("checkpoints", {})
        return (set(checkpoints) == set(self.models) and all(
            c.classes == self.classes and made.get(m, {}).get("fingerprint") == c.fingerprint
            for m, c in checkpoints.items()))

    # -- files
    def save(self, path: str | Path = DEFAULT_ATLAS) -> Path:
        folder = Path(path)
        arrays = {"labels": self.labels, "images": np.round(self.images * 255).astype(np.uint8)}
        for m in self.models:
            arrays[f"phi/{m}"] = self.phi[m].astype(np.float16)
            arrays[f"centroids/{m}"] = self.centroid_table[m]
        umaps = []
        for n, ((m, l, s), coords) in enumerate(sorted(self._umap.items())):
            arrays[f"umap/{n}"] = coords
            umaps.append([m, l, s])
        meta = {"format": FORMAT, "classes": self.classes, "sigmas": self.sigmas, "models": self.models,
                "slices": {m: {l: [s.start, s.stop] for l, s in sl.items()} for m, sl in self.slices.items()},
                "umap": umaps, "umap_settings": UMAP_SETTINGS, "info": self.info}
        write_atomic(folder / "atlas.npz", lambda f: np.savez_compressed(f, **arrays))
        write_atomic(folder / "atlas.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
        return folder

    @classmethod
    def load(cls, path: str | Path = DEFAULT_ATLAS) -> "Atlas":
        folder = Path(path)
        if not (folder / "atlas.json").is_file() or not (folder / "atlas.npz").is_file():
            raise EngineError(f"{folder}: no atlas here (atlas.json + atlas.npz); "
                              "build one with `python -m engine atlas --out DIR`")
        try:
            meta = json.loads((folder / "atlas.json").read_text())
            with np.load(folder / "atlas.npz") as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as e:
            raise EngineError(f"{folder}: unreadable atlas ({type(e).__name__}); rebuild it with "
                              "`python -m engine atlas`") from None
        if meta.get("format") != FORMAT:
            raise EngineError(f"{folder}: not an atlas of this tool (expected format {FORMAT}); rebuild it")
        models = meta["models"]
        slices = {m: {l: slice(*ab) for l, ab in sl.items()} for m, sl in meta["slices"].items()}
        umaps = {(m, l, int(s)): arrays[f"umap/{n}"] for n, (m, l, s) in enumerate(meta["umap"])}
        return cls(meta["classes"], arrays["labels"], arrays["images"].astype(np.float32) / 255,
                   meta["sigmas"], {m: arrays[f"phi/{m}"].astype(np.float32) for m in models},
                   {m: arrays[f"centroids/{m}"] for m in models}, slices, meta.get("info", {}), umaps)


# ----------------------------------------------------------------------------- building

def same_data(a: Checkpoint, b: Checkpoint) -> bool:
    """Two models trained on the same data: dataset, classes and image shape."""
    return (a.train_config.dataset, list(a.classes), tuple(a.shape)) == \
        (b.train_config.dataset, list(b.classes), tuple(b.shape))


def check_compatible(checkpoints: dict[str, Checkpoint]) -> Checkpoint:
    """The checkpoints must share classes, image shape and dataset; returns the first."""
    if not checkpoints:
        raise EngineError("give at least one checkpoint")
    first = next(iter(checkpoints.values()))
    for name, c in checkpoints.items():
        if not same_data(c, first):
            raise EngineError(f"checkpoint '{name}' ({c.path}) was trained on other data (dataset, classes or "
                              f"image size) than {first.path}; compare models trained on the same data")
    return first


def held_out(ckpt: Checkpoint, per_class: int):
    """The first `per_class` test images of every class of the checkpoint's dataset."""
    cfg = ckpt.train_config
    test = run_crops(cfg, "test")
    idx = np.concatenate([np.nonzero(test.labels == c)[0][:per_class] for c in range(len(test.classes))])
    return test.images[idx], test.labels[idx], test


@torch.no_grad()
def noisy_phi(ckpt: Checkpoint, images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """phi(x + sigma z) (N, D); the noise depends only on (seed, sigma), so every model sees the same."""
    gen = torch.Generator().manual_seed(seed * 1000 + int(round(sigma * 1e4)))
    x = torch.from_numpy(images)
    y = x + sigma * torch.randn(x.shape, generator=gen)
    return ckpt.phi(y, batch=256).cpu().numpy()


def model_centroids(ckpt: Checkpoint, sigma: float, phi: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phibar_c(sigma) (K, D) from the centroid table, or the held-out class means if it has none."""
    if ckpt.centroids is not None:
        return torch.stack([ckpt.centroid(c, sigma) for c in range(len(ckpt.classes))]).cpu().numpy()
    return np.stack([phi[labels == c].mean(0) for c in range(len(ckpt.classes))])


def build_atlas(checkpoints: dict[str, Checkpoint], per_class: int = PER_CLASS, sigmas=ATLAS_SIGMAS,
                umap: bool = True, seed: int = 0, progress: bool = True, callback=None) -> Atlas:
    """Compute phi of held-out images for each checkpoint at each sigma (and fit the UMAPs);
    callback(done, total) after each (checkpoint, sigma), for a caller that shows the progress."""
    first = check_compatible(checkpoints)
    if per_class < 2:
        raise EngineError("per_class must be at least 2")
    sigmas = sorted(float(s) for s in sigmas)
    if not sigmas or sigmas[0] <= 0:
        raise EngineError("give one or more positive sigma values")
    images, labels, test = held_out(first, per_class)
    phi = {m: [] for m in checkpoints}
    cents = {m: [] for m in checkpoints}
    steps = [(m, s) for s in sigmas for m in checkpoints]
    for k, (m, s) in enumerate(tqdm(steps, desc="atlas phi", disable=not progress, file=sys.stderr)):
        p = noisy_phi(checkpoints[m], images, s, seed)
        phi[m].append(p)
        cents[m].append(model_centroids(checkpoints[m], s, p, labels))
        if callback is not None:
            callback(k + 1, len(steps))
    slices = {m: {**c.layer_slices(), ALL: slice(0, c.model.phi_dim)} for m, c in checkpoints.items()}
    info = {"dataset": first.train_config.dataset, "split": "test", "per_class": per_class, "seed": seed,
            "checkpoints": {m: {"path": shown_path(c.path), "step": c.step, "kind": c.kind, "phi_dim": c.model.phi_dim,
                                "fingerprint": c.fingerprint} for m, c in checkpoints.items()}}
    atlas = Atlas(test.classes, labels, images, sigmas, {m: np.stack(v) for m, v in phi.items()},
                  {m: np.stack(v) for m, v in cents.items()}, slices, info)
    if umap:
        bar = tqdm(total=len(atlas.missing_umaps()), desc="atlas umap", disable=not progress, file=sys.stderr)
        atlas.warm_umap(lambda done, total, key: bar.update(1))
        bar.close()
    return atlas
