"""The sample sheet: per class, real held-out crops beside samples at the default sampler, at the
same scale, so that a person can judge the samples against what the class looks like.

    python -m engine evaluate --sheet assets/samples.png     (evaluate draws it from its own samples)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .grid import make_grid

PER_ROW = 8          # real crops, then as many samples, per class
SCALE = 3            # 32-pixel crops shown at 96 pixels
LABEL_WIDTH = 110
GAP = 24             # between the real crops and the samples


def sample_sheet(classes: list[str], real: list[np.ndarray], samples: list[np.ndarray], path: str | Path,
                 per_row: int = PER_ROW, scale: int = SCALE) -> Path:
    """Write the sheet to `path` (PNG): one row per class, `per_row` real crops (N, C, H, W) in
    [0, 1] on the left, `per_row` samples on the right, headed "real held-out crops" / "samples"."""
    rows = [(make_grid(r[:per_row], ncol=per_row, scale=scale), make_grid(s[:per_row], ncol=per_row, scale=scale))
            for r, s in zip(real, samples)]
    h, w = rows[0][0].shape[:2]
    head = 22
    sheet = Image.new("RGB", (LABEL_WIDTH + 2 * w + GAP, head + h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    draw.text((LABEL_WIDTH + 4, 4), f"real held-out crops ({per_row})", fill="black", font=font)
    draw.text((LABEL_WIDTH + w + GAP + 4, 4), f"samples, default sampler ({per_row})", fill="black", font=font)
    for k, (name, (left, right)) in enumerate(zip(classes, rows)):
        y = head + k * h
        draw.text((6, y + h // 2 - 6), name, fill="black", font=font)
        for x, grid in ((LABEL_WIDTH, left), (LABEL_WIDTH + w + GAP, right)):
            img = Image.fromarray(grid)
            sheet.paste(img.convert("RGB"), (x, y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
