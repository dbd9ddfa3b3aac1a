"""Can the network render one texture trained alone? Cut a built-in texture at a chosen scale into
a folder dataset (`--cut`), train a mixture model on it with `python -m engine train --dataset
FOLDER --kind mixture ...`, then judge runs on it (`--judge`): 32 samples at the default sampler
against held-out crops of the same scale.

    python experiments/texture_alone.py --cut gravel --factor 3 --out runs/gravel_f3
    python -m engine train --dataset runs/gravel_f3 --kind mixture --out runs/gravel_f3_run ...
    python experiments/texture_alone.py --judge runs/gravel_f3 --sheet sheet.png RUN [RUN ...]

The judge prints, per run: the radial power-spectrum error (mean |dB| over radii 1 .. size/2 - 1,
the samples' mean power spectrum against the held-out crops'), the same for real training crops
(the floor: what two sets of real crops differ by), and the pixel standard deviation of samples and
of real crops (a sample with too little contrast is soft or flat). The sheet puts 8 real crops beside
8 samples per run. Used for docs/model.md, "2026-12-07 (later)".
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.checkpoint import load_checkpoint
from engine.data import load_dataset
from engine.metrics import spectrum_error_db
from engine.sampler import run
from engine.sheet import sample_sheet
from engine.textures import TEXTURES_V3


def cut(name: str, factor: int, out: Path) -> None:
    """The texture as textures-v3 cuts it, downsampled by `factor`, saved as two halves: a folder
    dataset needs two or more images (each its own class; a mixture model ignores the labels)."""
    a = replace(TEXTURES_V3[name], factor=factor).image(1)[0]
    img = Image.fromarray(np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8))
    out.mkdir(parents=True, exist_ok=True)
    w, h = img.size
    img.crop((0, 0, w // 2, h)).save(out / f"{name}_a.png")
    img.crop((w // 2, 0, w, h)).save(out / f"{name}_b.png")
    print(f"{out}: {name} at 1/{factor}, {w}x{h} pixels in two halves")


def judge(folder: str, runs: list[str], sheet: str | None, n: int = 32, seed: int = 0) -> None:
    ckpts = [load_checkpoint(path, device="cpu") for path in runs]
    sizes = {ckpt.config.size for ckpt in ckpts}
    if len(sizes) != 1:
        raise SystemExit(f"the runs draw images of different sizes ({sorted(sizes)}); judge each size apart")
    # the real crops and the real-vs-real floor: the same for every run
    test = load_dataset(folder, "test", sizes.pop(), 1, 64, 0)
    train = load_dataset(folder, "train", test.images.shape[-1], 1, 64, 0)
    floor = spectrum_error_db(train.images, test.images)
    real_sd = test.images.std(axis=(1, 2, 3)).mean()
    samples, names = [], []
    for path, ckpt in zip(runs, ckpts):
        ckpt.use_precision("fp32")
        x = run(ckpt, None, n=n, seed=seed)[0].numpy()
        print(f"{path} (step {ckpt.step}): spectrum error samples {spectrum_error_db(x, test.images):.2f} dB, "
              f"real training crops {floor:.2f} dB; pixel sd samples {x.std(axis=(1, 2, 3)).mean():.3f}, "
              f"real {real_sd:.3f}")
        samples.append(x[:8]); names.append(f"step {ckpt.step}")
    real = [test.images[:8]] * len(samples)
    if sheet:
        print(f"wrote {sample_sheet(names, real, samples, sheet)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cut", metavar="TEXTURE", help=f"cut this texture into --out ({', '.join(TEXTURES_V3)})")
    p.add_argument("--factor", type=int, default=3, help="--cut: downsampling factor (default 3, gravel's in textures-v3)")
    p.add_argument("--out", type=Path, help="--cut: the folder to write")
    p.add_argument("--judge", metavar="FOLDER", help="judge the runs given, on this folder's held-out crops")
    p.add_argument("--sheet", help="--judge: also draw real crops beside samples to this PNG")
    p.add_argument("runs", nargs="*", help="--judge: run folders or model.pt files")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.cut:
        if a.out is None:
            p.error("--cut needs --out")
        cut(a.cut, a.factor, a.out)
    elif a.judge:
        if not a.runs:
            p.error("--judge needs one or more runs")
        judge(a.judge, a.runs, a.sheet)
    else:
        p.error("give --cut or --judge")


if __name__ == "__main__":
    main()
