"""The built-in texture classes: photographs shipped inside the wheels the project installs, each
the source of one class's crops (engine/data.py cuts them, train and test from separate tiles).

`textures` is the default; `textures-v1` holds the classes of the models shipped before, and
`textures-v3` the same images as `textures` with crops of no structure drawn again; each list is
kept by name so that figures measured on it can be measured again.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .errors import EngineError


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load():
        import skimage.data
        return np.asarray(getattr(skimage.data, name)())
    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load():
        from sklearn.datasets import load_sample_image
        return np.asarray(load_sample_image(filename))
    return load


def _plenoptic(filename: str) -> Callable[[], np.ndarray]:
    """An image of plenoptic's data folder, read as a file: importing plenoptic itself would pull in
    its whole stack (matplotlib, pyrtools) for one photograph."""
    def load():
        import importlib.util
        spec = importlib.util.find_spec("plenoptic")
        if spec is None or not spec.submodule_search_locations:
            raise EngineError("the texture image '" + filename + "' ships in the plenoptic package, which is "
                              "not installed; run `make setup` (or pip install -r requirements.txt)")
        path = Path(spec.submodule_search_locations[0]) / "data" / filename
        return np.asarray(Image.open(path).convert("L"))
    return load


@dataclass(frozen=True)
class TextureSource:
    """One texture class: a shipped image, the stationary region used, a downsampling factor,
    and the symmetries of its texture (SYMMETRIES), which training applies as augmentation."""
    load: Callable[[], np.ndarray]
    region: tuple[int, int, int, int] | None = None   # rows r0:r1, cols c0:c1 in the source
    factor: int = 1
    symmetry: str = "none"
    min_std: float = 0.0          # crops of less contrast are drawn again (crops_from)

    def image(self, channels: int) -> np.ndarray:
        a = self.load()
        if self.region is not None:
            r0, r1, c0, c1 = self.region
            a = a[r0:r1, c0:c1]
        a = a.astype(np.float32)
        a = a / (255.0 if a.max() > 1.0 else 1.0)
        a = a[..., None] if a.ndim == 2 else a[..., :3]
        if channels == 1:
            a = a.mean(-1, keepdims=True)
        elif a.shape[-1] == 1:
            a = np.repeat(a, 3, -1)
        from .data import downsample
        return downsample(np.ascontiguousarray(a.transpose(2, 0, 1)), self.factor)


# The built-in texture classes, chosen for the method (docs/model.md, "The texture classes"):
# each stationary at a 32-pixel crop - every crop holds many texture elements, coarse sources
# downsampled until it does - and told apart by texture, not brightness (an ordinary classifier
# reads contrast-normalised held-out crops at 0.99 or better per class: experiments/stationarity.py).
TEXTURES: dict[str, TextureSource] = {
    "brick": TextureSource(_skimage("brick"), factor=2, symmetry="flips"),
    "grass": TextureSource(_skimage("grass"), factor=2, symmetry="dihedral"),
    "gravel": TextureSource(_skimage("gravel"), factor=3, symmetry="dihedral"),
    "stars": TextureSource(_skimage("hubble_deep_field"), factor=1, symmetry="dihedral"),
    "print": TextureSource(_skimage("page"), region=(55, 155, 0, 384)),
    "handwriting": TextureSource(_skimage("text")),
    "reptile": TextureSource(_plenoptic("reptile_skin.pgm"), symmetry="flips"),
    "coins": TextureSource(_skimage("coins"), factor=2, symmetry="dihedral"),
}

# The classes of the models shipped before (kept so that their figures can be re-measured):
# chosen by eye, not all stationary at the crop size (petals, coins, tissue), no augmentation.
TEXTURES_V1: dict[str, TextureSource] = {
    "brick": TextureSource(_skimage("brick"), factor=2),
    "grass": TextureSource(_skimage("grass"), factor=2),
    "gravel": TextureSource(_skimage("gravel"), factor=2),
    "stars": TextureSource(_skimage("hubble_deep_field"), factor=1),
    "print": TextureSource(_skimage("page"), region=(55, 155, 0, 384)),
    "handwriting": TextureSource(_skimage("text"), factor=1),
    "coins": TextureSource(_skimage("coins"), factor=1),
    "tissue": TextureSource(_skimage("immunohistochemistry"), factor=2),
    "petals": TextureSource(_sklearn("flower.jpg"), region=(110, 330, 200, 420)),
    "foliage": TextureSource(_sklearn("china.jpg"), region=(335, 427, 350, 640)),
}


def _texture_dataset(table: dict[str, TextureSource], name: str, split: str, size: int, channels: int,
                     n_per_class: int | None, seed: int, names: list[str] | None):
    from .data import _crops_dataset
    names = names or list(table)
    n = n_per_class or (2000 if split == "train" else 250)
    ds = _crops_dataset({k: table[k].image(channels) for k in names}, name, split, size, n, seed,
                        {k: table[k].min_std for k in names})
    ds.info["symmetries"] = [table[k].symmetry for k in names]
    return ds


def textures(split: str, size: int = 32, channels: int = 1, n_per_class: int | None = None,
             seed: int = 0, names: list[str] | None = None):
    return _texture_dataset(TEXTURES, "textures", split, size, channels, n_per_class, seed, names)


def textures_v1(split: str, size: int = 32, channels: int = 1, n_per_class: int | None = None,
                seed: int = 0, names: list[str] | None = None):
    return _texture_dataset(TEXTURES_V1, "textures-v1", split, size, channels, n_per_class, seed, names)

# The textures' third version: the same images, with every crop holding structure - a crop whose
# pixels vary by less than MIN_STD (blank paper between lines of type or handwriting, empty sky
# between galaxies) is drawn again, so no class teaches the network that blank is a member.
MIN_STD = 0.05
TEXTURES_V3: dict[str, TextureSource] = {
    name: (replace(source, min_std=MIN_STD) if name in ("stars", "print", "handwriting") else source)
    for name, source in TEXTURES.items()}


def textures_v3(split: str, size: int = 32, channels: int = 1, n_per_class: int | None = None,
                seed: int = 0, names: list[str] | None = None):
    return _texture_dataset(TEXTURES_V3, "textures-v3", split, size, channels, n_per_class, seed, names)
