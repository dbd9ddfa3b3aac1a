"""How much can knowing the class gain in denoising, for a linear estimator?

    python scripts/wiener_reference.py [--per-class 100] [--samples 32]

The optimal linear (Wiener) denoiser of a density with mean mu and covariance C is
x_hat = mu + C (C + sigma^2 I)^-1 (y - mu). Fitted on the training crops of `textures` - once on
all classes (the mixture) and once per class (correct and a wrong class, c + 3 mod K, as in
scripts/conditioning_check.py) - and applied to held-out crops, it gives a reference for the PSNR
gain of conditioning at large sigma, where the best denoiser is close to linear.

The same Gaussians are also the simplest *generative* reference: `--samples N` draws N images
from each class's Gaussian (its mean and covariance: a second-order texture model, no shapes),
clips them to [0, 1] and scores them with the evaluation's independent classifier. A diffusion
model's samples should beat this; README and docs/analysis.md quote both outputs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.classifier import load_classifier  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.evaluate import psnr as image_psnr  # noqa: E402

SIGMAS = (0.1, 0.5, 1.0)


def wiener(train: np.ndarray, sigma: float):
    """The linear MMSE denoiser of the Gaussian with train's mean and covariance."""
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False)
    gain = np.linalg.solve(cov + sigma ** 2 * np.eye(len(mu)), cov).T      # C (C + s^2 I)^-1
    return lambda y: mu + (y - mu) @ gain


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    """Mean PSNR of flattened estimates, clipped to [0, 1] as a denoised image would be."""
    return float(image_psnr(torch.from_numpy(np.clip(estimate, 0, 1)), torch.from_numpy(clean)).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=100, help="held-out crops per class (default 100)")
    p.add_argument("--samples", type=int, default=32,
                   help="Gaussian samples per class to classify (default 32; 0: skip)")
    a = p.parse_args()
    tr, te = load_dataset("textures", "train", 32, 1), load_dataset("textures", "test", 32, 1)
    x, lab = tr.images.reshape(len(tr), -1).astype(np.float64), tr.labels
    k = len(tr.classes)
    sel = np.concatenate([np.nonzero(te.labels == c)[0][:a.per_class] for c in range(k)])
    clean, tlab = te.images[sel].reshape(len(sel), -1).astype(np.float64), te.labels[sel]
    rng = np.random.default_rng(0)
    for s in SIGMAS:
        y = clean + s * rng.standard_normal(clean.shape)
        per_class = [wiener(x[lab == c], s) for c in range(k)]
        mixture = wiener(x, s)(y)
        right, wrong = np.empty_like(y), np.empty_like(y)
        for c in range(k):
            m = tlab == c
            right[m], wrong[m] = per_class[c](y[m]), per_class[(c + 3) % k](y[m])
        print(f"sigma {s}: linear mixture {psnr(mixture, clean):.2f} dB, class {psnr(right, clean):.2f} dB, "
              f"wrong class {psnr(wrong, clean):.2f} dB (gain {psnr(right, clean) - psnr(mixture, clean):+.2f} dB)",
              flush=True)
    if a.samples:
        gaussian_samples(x, lab, tr.classes, te.images, te.labels, a.samples, rng)


def gaussian_samples(x: np.ndarray, lab: np.ndarray, classes: list[str], test: np.ndarray,
                     test_labels: np.ndarray, n: int, rng: np.random.Generator) -> None:
    """Class accuracy and contrast (pixel std over real test crops' std) of Gaussian samples."""
    clf = load_classifier(load_checkpoint(), progress=False)     # the shipped model's classifier
    accuracy, contrast = [], []
    for c, name in enumerate(classes):
        xc = x[lab == c]
        draws = rng.multivariate_normal(xc.mean(0), np.cov(xc, rowvar=False), size=n, method="eigh")
        draws = np.clip(draws, 0, 1).reshape(n, *test.shape[1:]).astype(np.float32)
        accuracy.append(float((clf.predict(draws) == c).mean()))
        contrast.append(float(draws.std(axis=(1, 2, 3)).mean() / test[test_labels == c].std(axis=(1, 2, 3)).mean()))
        print(f"gaussian samples of {name}: accuracy {accuracy[-1]:.2f}, contrast {contrast[-1]:.2f}", flush=True)
    print(f"gaussian samples ({n} per class): mean class accuracy {np.mean(accuracy):.3f}, "
          f"lowest {min(accuracy):.2f}, mean contrast {np.mean(contrast):.2f}")


if __name__ == "__main__":
    main()
