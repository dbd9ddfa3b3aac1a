"""Turning engine arrays into pictures for the page and the downloads, and uploads into arrays.

Pixels are always upscaled by nearest neighbour (engine.grid.make_grid), so a 32x32 sample
shows as crisp blocks instead of a blur; the page's CSS keeps the browser from smoothing them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.data import load_image
from engine.errors import EngineError
from engine.grid import make_grid
from engine.placement import crops_at_scale

GRID_PX = 520          # about how wide a grid of samples is drawn in the page


def as_array(x) -> np.ndarray:
    """Tensor or array -> float32 numpy on the CPU."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def scale_for(n: int, side: int, px: int = GRID_PX, ncol: int | None = None) -> int:
    """Integer upscaling factor that makes a grid of n images of `side` pixels about px wide."""
    ncol = ncol or math.ceil(math.sqrt(n))
    return max(1, round(px / (ncol * (side + 2) + 2)))


def grid(images, ncol: int | None = None, px: int = GRID_PX, scale: int | None = None) -> np.ndarray:
    """(N, C, H, W) in [0, 1] (values outside are clipped) -> uint8 picture, nearest-neighbour upscaled."""
    x = np.clip(as_array(images), 0.0, 1.0)
    n, _, h, _ = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    return make_grid(x, ncol=ncol, scale=scale or scale_for(n, h, px, ncol))


def single(image, px: int = 256) -> np.ndarray:
    """(C, H, W) -> uint8 picture about px wide, without a border."""
    x = np.clip(as_array(image), 0.0, 1.0)[None]
    return make_grid(x, ncol=1, pad=0, scale=max(1, round(px / x.shape[-1])))


def to_rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):          # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def labelled_row(panels: list[np.ndarray], labels: list[str], gap: int = 8, size: int = 13) -> np.ndarray:
    """Pictures side by side on white, each with a caption above (for GIF frames and strips)."""
    panels = [to_rgb(p) for p in panels]
    head = (size + 3) * max(1 + t.count("\n") for t in labels) + 6
    h = max(p.shape[0] for p in panels) + head
    w = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for p, text in zip(panels, labels):
        canvas.paste(Image.fromarray(p), (x, head))
        draw.multiline_text((x + 2, 3), text, fill=(40, 40, 40), font=font(size), spacing=3)
        x += p.shape[1] + gap
    return np.asarray(canvas)


def labelled_rows(groups: list[list[tuple[np.ndarray, str]]], titles: list[str], ncol: int = 6,
                  gap: int = 8) -> np.ndarray:
    """Groups of captioned panels, each group starting a new line (at most ncol panels a line)
    under its title: one picture, so the captions are never cut short."""
    lines = []
    for group, title in zip(groups, titles):
        if title:
            lines.append(title)
        for i in range(0, len(group), ncol):
            chunk = group[i:i + ncol]
            lines.append(labelled_row([p for p, _ in chunk], [c for _, c in chunk], gap=gap))
    width = max(l.shape[1] for l in lines if not isinstance(l, str))
    out = []
    for l in lines:
        if isinstance(l, str):
            canvas = Image.new("RGB", (width, 24), "white")
            ImageDraw.Draw(canvas).text((2, 6), l, fill=(40, 40, 40), font=font(14))
            out.append(np.asarray(canvas))
        else:
            out.append(np.pad(l, ((0, gap), (0, width - l.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(out, 0)


def save_png(picture: np.ndarray, path: Path) -> Path:
    Image.fromarray(picture).save(path)
    return path


def save_gif(frames: list[np.ndarray], path: Path, seconds: float = 4.0) -> Path:
    """An animated GIF that plays the frames in about `seconds`, holding the last one."""
    ims = [Image.fromarray(to_rgb(f)).convert("P", palette=Image.Palette.ADAPTIVE, colors=256) for f in frames]
    each = max(40, int(1000 * seconds / max(1, len(ims))))
    durations = [each] * (len(ims) - 1) + [1500]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=durations, loop=0, optimize=False)
    return path


def pick_frames(n_steps: int, most: int = 40) -> list[int]:
    """Indices of at most `most` steps, evenly spread, always with the first and the last."""
    if n_steps <= most:
        return list(range(n_steps))
    return sorted(set(np.linspace(0, n_steps - 1, most).round().astype(int).tolist()))


def upload_name(path) -> str:
    """The name the user gave the file (gradio keeps it as the last part of its temp path)."""
    return Path(str(path)).name


def read_image(path, channels: int) -> np.ndarray:
    """An uploaded file -> (C, H, W) float32 in [0, 1], as the command line reads --image.

    Any problem (not an image, corrupt, too small, too large) raises EngineError naming the file
    by the name the user gave it.
    """
    if path is None:
        raise EngineError("no file was uploaded")
    p = Path(str(path))
    try:
        return load_image(p, channels)
    except EngineError as e:
        msg = str(e).replace(str(p), p.name)     # the user knows the file by its own name, not the temp path
        # in plain words: not the name of the Python exception the image library raised
        msg = re.sub(r"not a readable image \([^)]*\)", "not a readable image (not a picture, or a damaged one)",
                     msg)
        raise EngineError(msg) from None


def read_upload(path, channels: int, size: int) -> tuple[np.ndarray, str]:
    """One uploaded image as the model sees one image: (C, size, size), the crop nearest its centre
    at its own scale (engine.placement.crops_at_scale), and a line saying what was done."""
    image = read_image(path, channels)
    _, h, w = image.shape
    if min(h, w) <= size:
        return crops_at_scale(image, size).images[0], f"{w}x{h} pixels, fitted to {size} pixels"
    top, left = (h - size) // 2, (w - size) // 2
    return (np.ascontiguousarray(image[:, top:top + size, left:left + size], np.float32),
            f"{w}x{h} pixels: its centre crop of {size} pixels, at its own scale (the training crops' scale)")
