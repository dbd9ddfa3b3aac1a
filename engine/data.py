"""Datasets: built-in `textures` (engine/textures.py) and `ovals`, and user folders.

Every dataset is a `Dataset` of float32 images (N, C, H, W) in [0, 1] with integer labels
and class names. Nothing is downloaded: `textures` cuts crops from images shipped inside
the scikit-image and scikit-learn wheels, `ovals` is generated, a folder is read from disk.

Train / test separation for images cut into crops (textures, texture-mode folders): the
source image is tiled into square tiles of 1.5 times the crop size; every fourth tile, on a
diagonal pattern so that both splits see the whole image, belongs to the test split, and
every crop lies entirely inside one tile. So no test pixel is ever in a training crop.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import EngineError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MIN_SIDE = 8                # smaller images carry no usable texture or shape
MAX_PIXELS = 400_000_000    # decompression-bomb guard; 20000x20000 still loads
MAX_SIZE = 1024             # model image side
MAX_CLASS_BYTES = 2 ** 31   # float32 images of one class held in memory (2000 crops of 32x32: 8 MB)


@dataclass
class Dataset:
    images: np.ndarray            # (N, C, H, W) float32 in [0, 1]
    labels: np.ndarray            # (N,) int64
    classes: list[str]
    name: str = ""
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def of_class(self, c: int) -> np.ndarray:
        return self.images[self.labels == c]

    @property
    def symmetries(self) -> list[str]:
        """Per class, the image symmetries its texture has (SYMMETRIES): what training may
        apply as augmentation without changing the class. Datasets that say nothing: none."""
        return self.info.get("symmetries", ["none"] * len(self.classes))

    def save_npz(self, path: str | Path) -> None:
        np.savez_compressed(path, images=self.images.astype(np.float32),
                            labels=self.labels.astype(np.int64), classes=np.array(self.classes))


# ----------------------------------------------------------------------------- images

def load_image(source, channels: int = 1) -> np.ndarray:
    """Read any common image file (path, bytes or file object) as (C, H, W) float32 in [0, 1].

    Handles 8/16/32-bit and float modes, palettes, alpha (composited on white), animated
    files (first frame), EXIF rotation, and very large files (reduced while decoding).
    Raises EngineError for anything that is not a usable image.
    """
    name = str(source) if isinstance(source, (str, Path)) else "uploaded image"
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        raise EngineError(f"{name}: is a folder, not an image file; give the images inside it")
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise EngineError(f"{name}: no such file; check the path")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                im.seek(0)                          # animated: first frame
                im.draft("RGB" if channels == 3 else "L", (1024, 1024))  # JPEG: decode small
                im = ImageOps.exif_transpose(im)
                arr = _to_float(im, channels)
    except EngineError:
        raise
    except Image.DecompressionBombError:
        raise EngineError(f"{name}: image is larger than {MAX_PIXELS:,} pixels; use a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise EngineError(f"{name}: not a readable image ({type(e).__name__}: {e}); "
                          "use a PNG, JPEG, BMP, GIF, TIFF or WebP file") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    h, w = arr.shape[1:]
    if min(h, w) < MIN_SIDE:
        raise EngineError(f"{name}: image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return arr


def _to_float(im: Image.Image, channels: int) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.float32) / 65535.0
        a = a[..., None]
    elif im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        if not np.isfinite([lo, hi]).all():
            raise EngineError("image holds non-finite values; save it as an ordinary 8- or 16-bit image")
        # 32-bit integer and float images have no fixed white point: use the image's range
        scale = 65535.0 if (im.mode == "I" and lo >= 0 and hi <= 65535 and hi > 255) else (hi - lo or 1.0)
        a = ((a - (0 if scale == 65535.0 else lo)) / scale).astype(np.float32)[..., None]
    else:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        im = im.convert("RGB")
        a = np.asarray(im, dtype=np.float32) / 255.0
    a = np.clip(a, 0.0, 1.0)
    if channels == 1:
        a = a.mean(axis=-1, keepdims=True) if a.shape[-1] == 3 else a
    elif a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def fit_image(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (C, H, W) so the shorter side is `size` (area-averaging), then centre-crop."""
    c, h, w = img.shape
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        img = _resize(img, nh, nw)
        top, left = (nh - size) // 2, (nw - size) // 2
        img = img[:, top:top + size, left:left + size]
    return np.ascontiguousarray(img, dtype=np.float32)


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize each channel with Pillow (box filter when shrinking: no aliasing)."""
    out = [np.asarray(Image.fromarray(ch.astype(np.float32), mode="F").resize(
        (w, h), Image.Resampling.BOX if h < ch.shape[0] else Image.Resampling.BICUBIC)) for ch in img]
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool (C, H, W) by an integer factor (coarse textures -> crop-sized detail)."""
    if factor == 1:
        return img
    c, h, w = img.shape
    h, w = h - h % factor, w - w % factor
    return img[:, :h, :w].reshape(c, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


# ----------------------------------------------------------------------------- augmentation

# A texture class's symmetries: "none" (handwriting and print read one way), "flips" (mirror
# images left-right and up-down are the same texture: brick, whose joints have an orientation),
# "dihedral" (flips and quarter turns: isotropic textures such as gravel or stars).
SYMMETRIES = ("none", "flips", "dihedral")


def augment(x: torch.Tensor, labels: torch.Tensor, symmetries: list[str], gen: torch.Generator) -> torch.Tensor:
    """Apply to each image of (N, C, H, W) a random symmetry of its class's texture (SYMMETRIES).

    Every draw is taken for every image whatever its class, so the generator advances the same
    way for any class mix (a run resumes on the same stream)."""
    n = len(x)
    flip_h, flip_v, turn = (torch.rand(3, n, generator=gen) < 0.5).to(x.device)
    kind = torch.tensor([SYMMETRIES.index(s) for s in symmetries], device=x.device)[labels.to(x.device)]
    flip_h, flip_v, turn = flip_h & (kind >= 1), flip_v & (kind >= 1), turn & (kind >= 2)
    at = lambda m: m[:, None, None, None]
    x = torch.where(at(flip_h), x.flip(3), x)
    x = torch.where(at(flip_v), x.flip(2), x)
    if x.shape[2] == x.shape[3]:
        x = torch.where(at(turn), x.transpose(2, 3), x)   # a transpose after the flips: any quarter turn
    return x


# ----------------------------------------------------------------------------- crops

def tile_split(shape: tuple[int, int], tile: int) -> dict[str, list[tuple[int, int]]]:
    """Top-left corners of the train and test tiles of an (H, W) image.

    Tile (i, j) is a test tile when (i + 2 j) % 4 == 0: one tile in four, spread over
    the whole image on a diagonal lattice.
    """
    h, w = shape
    tiles = {"train": [], "test": []}
    for i in range(h // tile):
        for j in range(w // tile):
            tiles["test" if (i + 2 * j) % 4 == 0 else "train"].append((i * tile, j * tile))
    return tiles


def crops_from(img: np.ndarray, size: int, split: str, n: int, rng: np.random.Generator,
               min_std: float = 0.0) -> np.ndarray:
    """n random size x size crops of (C, H, W), each inside one tile of `split`. With min_std > 0,
    crops whose pixels' standard deviation is below it (blank paper, empty sky) are drawn again."""
    tile = 3 * size // 2
    corners = tile_split(img.shape[1:], tile)[split]
    if not corners:
        raise EngineError(f"image of {img.shape[2]}x{img.shape[1]} pixels is too small to cut "
                          f"{split} crops of {size} pixels; it needs at least {3 * size}x{3 * size}")
    out = np.empty((n, img.shape[0], size, size), np.float32)
    done = 0
    for _ in range(100):
        k = rng.integers(len(corners), size=n)
        dy, dx = rng.integers(tile - size + 1, size=(2, n))
        for m in range(n):
            y, x = corners[k[m]][0] + dy[m], corners[k[m]][1] + dx[m]
            crop = img[:, y:y + size, x:x + size]
            if min_std == 0 or crop.std() >= min_std:
                out[done] = crop
                done += 1
                if done == n:
                    return out
    raise EngineError(f"fewer than 1 crop in 100 of this image has a contrast (pixel standard deviation) of "
                      f"{min_std}; lower it or choose another image")


def _crops_dataset(sources: dict[str, np.ndarray], name: str, split: str, size: int,
                   n: int, seed: int, min_std: dict[str, float] | None = None) -> Dataset:
    _check_split(split)
    images, labels = [], []
    for c, (cls, img) in enumerate(sources.items()):
        # independent stream per (seed, class, split): adding a class changes no other class
        rng = np.random.default_rng([seed, _stable_hash(cls), split == "test"])
        try:
            images.append(crops_from(img, size, split, n, rng, (min_std or {}).get(cls, 0.0)))
        except EngineError as e:
            raise EngineError(f"class '{cls}': {e}") from None
        labels.append(np.full(n, c, np.int64))
    return Dataset(np.concatenate(images), np.concatenate(labels), list(sources), name)


def _stable_hash(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "little")


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise EngineError(f"unknown split '{split}'; use 'train' or 'test'")


# ----------------------------------------------------------------------------- ovals

OVAL_RATIOS = (0.2, 0.5, 1.0, 2.0, 5.0)
# `ovals-holdout` trains without this class, whose answer interpolation between its neighbours
# (0.5 and 2.0) can then be checked against: real images of it are the `ovals` class "ratio 1".
HELD_OUT_RATIO = 1.0


def oval_images(ratios: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One smooth axis-aligned oval per image with width/height = ratio, random place,
    area, brightness and background. Returns (N, 1, size, size) float32."""
    n = len(ratios)
    radius = rng.uniform(0.10, 0.20, n) * size           # geometric-mean semi-axis
    # keep the long axis inside the image (small sizes, extreme ratios)
    radius = np.minimum(radius, (size / 2 - 1.5) / np.sqrt(np.maximum(ratios, 1 / ratios)))
    a = radius * np.sqrt(ratios)                          # horizontal semi-axis
    b = radius / np.sqrt(ratios)                          # vertical semi-axis
    cx = rng.uniform(a + 1, size - 1 - a)
    cy = rng.uniform(b + 1, size - 1 - b)
    fg = rng.uniform(0.65, 0.95, n)
    bg = rng.uniform(0.05, 0.35, n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = np.sqrt(((xx[None] - cx[:, None, None]) / a[:, None, None]) ** 2
                + ((yy[None] - cy[:, None, None]) / b[:, None, None]) ** 2)
    # soft edge about one pixel wide, in units of the local radius
    edge = 1.0 / np.minimum(a, b)[:, None, None]
    inside = 1.0 / (1.0 + np.exp((r - 1.0) / (0.5 * edge)))
    img = bg[:, None, None] + (fg - bg)[:, None, None] * inside
    return img[:, None].astype(np.float32)


def ovals(split: str, size: int = 32, channels: int = 1, n_per_class: int | None = None,
          seed: int = 0, ratios: tuple[float, ...] = OVAL_RATIOS, name: str = "ovals") -> Dataset:
    _check_split(split)
    n = n_per_class or (2000 if split == "train" else 250)
    rng = np.random.default_rng([seed, 7, split == "test"])
    labels = np.repeat(np.arange(len(ratios)), n)
    imgs = oval_images(np.array(ratios)[labels], size, rng)
    if channels == 3:
        imgs = np.repeat(imgs, 3, axis=1)
    return Dataset(imgs, labels, [f"ratio {r:g}" for r in ratios], name, info={"ratios": list(ratios)})


def ovals_holdout(split: str, **kw) -> Dataset:
    """`ovals` without the class of ratio HELD_OUT_RATIO: the classes either side of it are
    trained, it is what interpolating between them should reach."""
    return ovals(split, ratios=tuple(r for r in OVAL_RATIOS if r != HELD_OUT_RATIO), name="ovals-holdout", **kw)


def aspect_ratio(images: np.ndarray) -> np.ndarray:
    """Width/height of the bright blob in each (N, C, H, W) image, from second moments
    of the intensity above the image's background level (the ground truth of ovals)."""
    g = images.mean(axis=1)
    w = np.clip(g - np.median(g, axis=(1, 2), keepdims=True), 0, None)
    yy, xx = np.mgrid[0:g.shape[1], 0:g.shape[2]].astype(np.float64)
    m = w.sum(axis=(1, 2)) + 1e-8
    mx, my = (w * xx).sum((1, 2)) / m, (w * yy).sum((1, 2)) / m
    vx = (w * (xx - mx[:, None, None]) ** 2).sum((1, 2)) / m
    vy = (w * (yy - my[:, None, None]) ** 2).sum((1, 2)) / m
    return np.sqrt((vx + 1e-8) / (vy + 1e-8))


# ----------------------------------------------------------------------------- folders

def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_all(files: list[Path], channels: int) -> list[tuple[Path, np.ndarray]]:
    out = []
    for p in files:
        try:
            out.append((p, load_image(p, channels)))
        except EngineError as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
    return out


def folder(path: str | Path, split: str, size: int = 32, channels: int = 1,
           n_per_class: int | None = None, seed: int = 0) -> Dataset:
    """A user folder. Either one subfolder per class (every image resized and centre-cropped
    to size; every fifth file, in name order, is a test image), or a flat folder of large
    images, each one class cut into crops (texture mode)."""
    _check_split(split)
    root = Path(path)
    if not root.is_dir():
        raise EngineError(f"{root}: not a folder; give a dataset name (textures, ovals) or a folder of images")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        images, labels, classes = [], [], []
        for d in subdirs:
            read = _read_all(_image_files(d), channels)
            if len(read) < 2:
                warnings.warn(f"skipping class folder {d}: {len(read)} readable image(s), need 2 or more",
                              stacklevel=2)
                continue
            picked = [img for i, (_, img) in enumerate(read) if (i % 5 == 4) == (split == "test")]
            images += [fit_image(img, size) for img in picked]
            labels += [len(classes)] * len(picked)
            classes.append(d.name)
        if len(classes) < 2:
            raise EngineError(f"{root}: needs at least 2 class subfolders with 2+ readable images each; "
                              f"found {len(classes)}")
        return Dataset(np.stack(images), np.array(labels, np.int64), classes, str(root),
                       info={"mode": "classes"})
    read = _read_all(_image_files(root), channels)
    if len(read) < 2:
        raise EngineError(f"{root}: no class subfolders and {len(read)} readable image(s); "
                          "give one subfolder per class, or 2+ large images (one texture class each)")
    n = n_per_class or (2000 if split == "train" else 250)
    ds = _crops_dataset({p.stem: img for p, img in read}, str(root), split, size, n, seed)
    ds.info["mode"] = "textures"
    return ds


# ----------------------------------------------------------------------------- entry

# the texture tables live in engine/textures.py, which cuts its crops with this module's functions
from .textures import (TEXTURES, TEXTURES_V1, TEXTURES_V3, TEXTURES_V4, TEXTURES_V5,  # noqa: E402,F401
                       TextureSource, textures, textures_v1, textures_v3, textures_v4, textures_v5)

BUILTIN = {"textures": textures, "textures-v1": textures_v1, "textures-v3": textures_v3,
           "textures-v4": textures_v4, "textures-v5": textures_v5, "ovals": ovals, "ovals-holdout": ovals_holdout}


def load_dataset(name: str, split: str = "train", size: int = 32, channels: int = 1,
                 n_per_class: int | None = None, seed: int = 0) -> Dataset:
    """`textures`, `textures-v1` (the classes of the models shipped before), `textures-v3`,
    `textures-v4`, `textures-v5` (engine/textures.py), `ovals`, `ovals-holdout`
    (ovals without the ratio-1 class), or a folder path (see `folder`)."""
    if size < 8:
        raise EngineError(f"image size {size} is too small; use 8 or more")
    if channels not in (1, 3):
        raise EngineError(f"channels must be 1 or 3, not {channels}")
    if size > MAX_SIZE:
        raise EngineError(f"image size {size} is too large; use {MAX_SIZE} or less")
    if n_per_class is not None and n_per_class * channels * size * size * 4 > MAX_CLASS_BYTES:
        raise EngineError(f"{n_per_class} images per class of {size}x{size} would take "
                          f"{n_per_class * channels * size * size * 4 / 2 ** 30:.0f} GiB each class; "
                          f"ask for at most {MAX_CLASS_BYTES // (4 * channels * size * size)}")
    if name in BUILTIN:
        return BUILTIN[name](split, size=size, channels=channels, n_per_class=n_per_class, seed=seed)
    if Path(name).exists():
        return folder(name, split, size, channels, n_per_class, seed)
    raise EngineError(f"unknown dataset '{name}'; use {', '.join(repr(k) for k in BUILTIN)} or a folder path")


def run_crops(cfg, split: str, n_per_class: int | None = None) -> Dataset:
    """The crops of a run's dataset as its TrainConfig draws them: its image size, channels and crop
    seed (`crops_seed`), so that a checkpoint is measured on the very split it was trained beside."""
    return load_dataset(cfg.dataset, split, cfg.model.size, cfg.model.channels, n_per_class, cfg.crops_seed)
