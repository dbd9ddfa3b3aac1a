"""Folder datasets larger than memory: indexed once, read and cropped on the fly.

`data.folder` decodes every image of a folder up front; that is what small folders want,
but a folder of thousands of photographs does not fit. `FolderStream` is the same dataset
(the same two layouts, the same train/test rule) held as an index:

  class subfolders  - one entry per file; an item is the file decoded, resized and
                      centre-cropped to the model size (data.fit_image) when asked for.
  texture photos    - a flat folder, each photograph one class; each is decoded once into an
                      uint8 array memory-mapped from a cache file (ENGINE_CACHE, default
                      ~/.cache/feature-guided-diffusion), and item i of a class is a crop at a
                      place drawn from (seed, class, i) inside the training tiles (data.tile_split).

Items come back as uint8 (C, S, S); nothing but the index lives in the training process, so
memory does not grow with the number of images. Training (train.py) reads them through a
torch DataLoader whose batch sampler (`StepSampler`) yields, per step, this process's share
of the step's draws - the DistributedSampler split, per batch - so the workers crop ahead
of the network while every process still draws the same global batch.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data import MIN_SIDE, _check_split, _image_files, _stable_hash, fit_image, load_image, tile_split
from .errors import EngineError
from .paths import write_atomic

CACHE = Path(os.environ.get("ENGINE_CACHE", Path.home() / ".cache" / "feature-guided-diffusion"))


def _readable(p: Path) -> bool:
    """An image header PIL can read, of at least MIN_SIDE pixels (no pixels decoded)."""
    try:
        with Image.open(p) as im:
            return min(im.size) >= MIN_SIDE
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)


class FolderStream(torch.utils.data.Dataset):
    """A folder dataset (see module doc) as an index; `stream[i]` is item i, uint8 (C, S, S)."""

    def __init__(self, path: str | Path, split: str = "train", size: int = 32, channels: int = 1,
                 n_per_class: int | None = None, seed: int = 0):
        _check_split(split)
        root = Path(path)
        if not root.is_dir():
            raise EngineError(f"{root}: not a folder; --stream reads a folder of images (class subfolders, "
                              "or large texture photographs)")
        self.root, self.split, self.size, self.channels, self.seed = root, split, size, channels, seed
        self.name = str(root)
        subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        files, labels, self.classes = [], [], []
        if subdirs:
            self.mode = "classes"
            for d in subdirs:
                ok = [p for p in _image_files(d) if _readable(p)]
                if len(ok) < 2:
                    continue
                picked = [p for i, p in enumerate(ok) if (i % 5 == 4) == (split == "test")]
                files += picked
                labels += [len(self.classes)] * len(picked)
                self.classes.append(d.name)
            if len(self.classes) < 2:
                raise EngineError(f"{root}: needs at least 2 class subfolders with 2+ readable images each; "
                                  f"found {len(self.classes)}")
            self.files = files
        else:
            self.mode = "textures"
            self.files = [p for p in _image_files(root) if _readable(p)]
            if len(self.files) < 2:
                raise EngineError(f"{root}: no class subfolders and {len(self.files)} readable image(s); "
                                  "give one subfolder per class, or 2+ large images (one texture class each)")
            self.classes = [p.stem for p in self.files]
            self.per_class = n_per_class or (2000 if split == "train" else 250)
            labels = np.repeat(np.arange(len(self.files)), self.per_class)
            self._photos: dict[int, np.ndarray] = {}
            for c in range(len(self.files)):       # decode each once now: errors show before training
                self._photo(c)
            self._photos.clear()                   # reopened lazily in each DataLoader worker
        self.labels = np.asarray(labels, np.int64)
        self.symmetries = ["none"] * len(self.classes)
        self.info = {"mode": self.mode, "stream": True}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if self.mode == "classes":
            return _to_uint8(fit_image(load_image(self.files[i], self.channels), self.size))
        c, k = divmod(i, self.per_class)
        img = self._photo(c)
        tile = 3 * self.size // 2
        corners = tile_split(img.shape[1:], tile)[self.split]
        if not corners:
            raise EngineError(f"class '{self.classes[c]}': image of {img.shape[2]}x{img.shape[1]} pixels is too "
                              f"small to cut {self.split} crops of {self.size} pixels; it needs at least "
                              f"{3 * self.size}x{3 * self.size}")
        rng = np.random.default_rng([self.seed, _stable_hash(self.classes[c]), self.split == "test", k])
        top, left = corners[rng.integers(len(corners))]
        dy, dx = rng.integers(tile - self.size + 1, size=2)
        return np.array(img[:, top + dy:top + dy + self.size, left + dx:left + dx + self.size])

    def _photo(self, c: int) -> np.ndarray:
        """Photograph c as uint8 (C, H, W), memory-mapped from the cache (written on first use)."""
        if c not in self._photos:
            p = self.files[c]
            st = p.stat()
            key = hashlib.sha256(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.channels}".encode())
            cached = CACHE / f"{key.hexdigest()[:24]}.npy"
            if not cached.is_file():                  # processes building it at once each write it whole
                photo = _to_uint8(load_image(p, self.channels))
                write_atomic(cached, lambda f: np.save(f, photo))    # np.save to a handle: no second suffix
            self._photos[c] = np.load(cached, mmap_mode="r")
        return self._photos[c]

    def load(self, idx) -> np.ndarray:
        """Items idx as float32 (N, C, S, S) in [0, 1] (for centroids and the data mean)."""
        return np.stack([self[i] for i in idx]).astype(np.float32) / 255


class Sample:
    """Up to `per_class` items of each class, loaded when asked for: what compute_centroids
    reads as `images[labels == c]`, without the whole folder in memory at once."""

    def __init__(self, stream: FolderStream, per_class: int):
        self.stream, self.per_class = stream, per_class
        self.shape = (len(stream), stream.channels, stream.size, stream.size)

    def __getitem__(self, mask: np.ndarray) -> np.ndarray:
        return self.stream.load(np.flatnonzero(mask)[:self.per_class])


def data_mean(stream: FolderStream, n: int = 1024, seed: int = 0) -> torch.Tensor:
    """(C,) mean pixel of n items drawn evenly from the stream (the whole data when smaller)."""
    idx = np.random.default_rng(seed).choice(len(stream), min(n, len(stream)), replace=False)
    return torch.from_numpy(stream.load(np.sort(idx)).mean(axis=(0, 2, 3)))


class StepSampler(torch.utils.data.Sampler):
    """Batch sampler: for each step from `start`, the item indices this process reads.

    draw(step) -> (B,) tensors of global indices (the step's images, their partners), the same
    on every process; this process reads its contiguous share [rank B / world, (rank + 1) B / world)
    of each, one after the other."""

    def __init__(self, draw, start: int, stop: int, rank: int, world: int):
        self.draw, self.start, self.stop, self.rank, self.world = draw, start, stop, rank, world

    def __iter__(self):
        for step in range(self.start, self.stop):
            out = []
            for idx in self.draw(step):
                share = len(idx) // self.world
                out += idx[self.rank * share:(self.rank + 1) * share].tolist()
            yield out

    def __len__(self) -> int:
        return self.stop - self.start


def collate(items: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(items))


def next_batch(batches) -> torch.Tensor:
    """The next batch of a DataLoader over a FolderStream; an image that fails to read in a worker
    is reported in one line (the loader wraps it in the worker's traceback)."""
    try:
        return next(batches)
    except EngineError as e:
        line = str(e).strip().splitlines()[-1]
        raise EngineError(line.split("EngineError: ", 1)[-1]) from None
