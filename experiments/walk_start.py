"""Where should the walk start? The default start against draws that carry a class's structure.

    python experiments/walk_start.py [--checkpoint assets/feature_guided] [--classes stars,print]
        [--per-class 32] [--sigma-0 1.0] [--seed 0] [--table-to SIGMA]

The sampler starts from the class's mean pixel plus noise of sigma_0 (engine/sampler.py, "Where the
walk starts"), a stand-in for a draw of p_sigma0(y | class). Here the same walk (default settings,
conditioned on the class) starts instead from

- "mean": the default, the class's mean pixel plus noise;
- "gaussian": a Gaussian field with the class's mean power spectrum and mean (random phases) plus
  noise - a start with the class's second-order statistics and nothing more;
- "pixels": each pixel drawn independently from the class's training pixels (its histogram, no
  spatial structure) plus noise - a start with the class's first-order statistics: the sparse bright
  values of stars, which a Gaussian field lacks, without any crop's pattern to copy;
- "held-out": a real held-out crop of the class plus noise - an exact draw of p_sigma0 on crops the
  network never trained on, the start an exact sampler assumes;
- "training" (with `--training-starts`): a training crop of the class plus noise - the same draw
  from the crops a sampler could carry as data; its samples' distance to the nearest training crop
  (memorisation) then says whether the walk returns the crop it started from;

and prints, per class and start, the classifier's accuracy, the spectrum error against the class's
other held-out crops (engine.metrics.spectrum_error_db), the contrast ratio, the memorisation ratio
(median distance to the nearest training crop over that of real held-out crops, as `evaluate`
measures it) and the correlation of each sample with the crop it started from: a start whose samples
gain structure while staying uncorrelated with their crop says that the walk can draw the class from
p_sigma0 and that the default start is what it lacks. docs/model.md quotes it.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.centroids import SIGMA_GRID, compute_centroids, sigma_grid
from engine.classifier import load_classifier
from engine.config import SamplerSettings
from engine.data import run_crops
from engine.metrics import nearest_distance, spectrum_error_db
from engine.sampler import ClassTarget, checkpoint_denoiser, image_generators, target_function, walk, _noise


def gaussian_fields(crops: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n Gaussian images with the crops' mean power spectrum and pixel spread, and their mean pixel."""
    centred = crops - crops.mean(axis=(2, 3), keepdims=True)
    amplitude = np.sqrt((np.abs(np.fft.fft2(centred)) ** 2).mean(0))
    phase = np.fft.fft2(rng.standard_normal((n,) + crops.shape[1:]))
    field = np.real(np.fft.ifft2(amplitude * phase / np.abs(phase)))
    return (crops.mean() + field / field.std(axis=(1, 2, 3), keepdims=True) * centred.std()).astype(np.float32)


def walk_from(ckpt, target: ClassTarget, x0: torch.Tensor, sigma_0: float, seed: int) -> np.ndarray:
    """The default walk from x0 + sigma_0 z (one noise stream per image, as `engine.sampler.sample`)."""
    settings = SamplerSettings(sigma_0=sigma_0)
    gens = image_generators(seed, len(x0))
    y = x0 + sigma_0 * _noise(gens, ckpt.shape)
    with torch.no_grad():
        for last in walk(checkpoint_denoiser(ckpt), target_function(ckpt, target), y, gens, settings,
                         ckpt.model.phi_dim):
            pass
    return last.denoised.cpu().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--classes", default="stars,print,coins,grass")
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--sigma-0", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--training-starts", action="store_true", help="also start from training crops plus noise")
    ap.add_argument("--table-to", type=float, default=None,
                    help="first recompute the centroid table on a grid from 0.01 to this sigma (the stored "
                         "grid ends at 1.5; a walk from a larger sigma_0 on a model trained to it needs more)")
    args = ap.parse_args()

    ck = load_checkpoint(args.checkpoint)
    cfg = ck.train_config
    test = run_crops(cfg, "test")
    train = run_crops(cfg, "train")
    clf = load_classifier(ck, progress=False)
    if args.table_to is not None:
        lo, hi, count = SIGMA_GRID
        grid = sigma_grid(lo, args.table_to, int(round(count * np.log(args.table_to / lo) / np.log(hi / lo))))
        ck.centroids = compute_centroids(ck.model, train.images, train.labels, train.classes, sigmas=grid).to(ck.device)
    n, rows = args.per_class, {}
    for name in args.classes.split(","):
        c = ck.classes.index(name)
        held, bank = test.of_class(c), train.of_class(c)
        if len(held) < 2 * n:
            raise SystemExit(f"{name}: {len(held)} held-out crops, {2 * n} needed (--per-class {n})")
        starts_from, reference = held[:n], held[n:]           # the crops a walk starts from are not judged against
        rng = np.random.default_rng(args.seed + c)
        starts = {"mean": np.full_like(starts_from, bank.mean()),
                  "gaussian": gaussian_fields(bank, n, rng),
                  "pixels": rng.choice(bank.ravel(), size=starts_from.shape).astype(np.float32),
                  "held-out": starts_from}
        if args.training_starts:
            starts["training"] = bank[rng.choice(len(bank), n, replace=False)]
        flat_bank = bank.reshape(len(bank), -1)
        real_nn = float(np.median(nearest_distance(reference.reshape(len(reference), -1), flat_bank)))
        target = ClassTarget(name)
        target.prepare(ck)
        for label, x0 in starts.items():
            out = walk_from(ck, target, torch.from_numpy(x0), args.sigma_0, args.seed + c)
            corr = ([float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(out, x0)]
                    if label in ("held-out", "training") else [])    # the others: constant or random fields
            nn = float(np.median(nearest_distance(out.reshape(n, -1), flat_bank)))
            rows[f"{name} / {label}"] = {
                "accuracy": float((clf.predict(out) == c).mean()),
                "spectrum_error_db": spectrum_error_db(out, reference),
                "contrast": float(out.std(axis=(1, 2, 3)).mean() / reference.std(axis=(1, 2, 3)).mean()),
                "memorisation": nn / real_nn,
                "correlation_with_start": float(np.mean(corr)) if corr else None}
            shown = {k: (round(v, 3) if v is not None else None) for k, v in rows[f"{name} / {label}"].items()}
            print(name, label, json.dumps(shown), flush=True)
        rows[f"{name} / real crops"] = {"spectrum_error_db": spectrum_error_db(starts_from, reference)}
    print(json.dumps({"checkpoint": str(args.checkpoint), "sigma_0": args.sigma_0, "per_class": n, "rows": rows},
                     indent=1))


if __name__ == "__main__":
    main()
