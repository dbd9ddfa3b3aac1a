"""The sample sheet (engine/sheet.py): real crops and samples side by side, at the same scale."""
from __future__ import annotations

import numpy as np
from PIL import Image

from engine.grid import make_grid
from engine.sheet import GAP, LABEL_WIDTH, SCALE, sample_sheet


def test_each_class_row_shows_its_real_crops_then_its_samples(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["brick", "grass", "print"]
    real = [rng.random((10, 1, 32, 32), dtype=np.float32) for _ in classes]
    samples = [rng.random((8, 1, 32, 32), dtype=np.float32) for _ in classes]
    path = sample_sheet(classes, real, samples, tmp_path / "sheet.png")
    sheet = np.asarray(Image.open(path).convert("L"))
    left = make_grid(real[0][:8], ncol=8, scale=SCALE)
    h, w = left.shape
    assert sheet.shape == (22 + 3 * h, LABEL_WIDTH + 2 * w + GAP)
    for k in range(3):                          # each row: the class's own 8 real crops, then 8 samples
        y = 22 + k * h
        np.testing.assert_array_equal(sheet[y:y + h, LABEL_WIDTH:LABEL_WIDTH + w],
                                      make_grid(real[k][:8], ncol=8, scale=SCALE))
        np.testing.assert_array_equal(sheet[y:y + h, LABEL_WIDTH + w + GAP:],
                                      make_grid(samples[k], ncol=8, scale=SCALE))


def test_the_model_tab_shows_the_sheet_evaluate_drew_of_that_very_model(tiny_fg):
    from app import text
    from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    shipped = load_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
    path = text.sample_sheet(shipped)
    assert path is not None and path.endswith("assets/samples.png")
    assert Image.open(path).size[0] > 2 * 8 * 32 * SCALE           # both halves of every row
    assert text.sample_sheet(tiny_fg) is None                       # no evaluation beside it: none shown
