"""How much can knowing the class gain in denoising, for a linear estimator?

    python experiments/wiener_reference.py [--per-class 100] [--samples 32]

The optimal linear (Wiener) denoiser of a density with mean mu and covariance C is
x_hat = mu + C (C + sigma^2 I)^-1 (y - mu). Fitted on the training crops of `textures` - once on
all classes (the mixture) and once per class (correct and a wrong class, c + 3 mod K, as in
experiments/conditioning_check.py) - and applied to held-out crops, it gives a reference for the PSNR
gain of conditioning at large sigma, where the best denoiser is close to linear.

The same Gaussians are also the simplest *generative* reference: `--samples N` draws N images
from each class's Gaussian (its mean and covariance: a second-order texture model, no shapes),
clips them to [0, 1] and scores them with the evaluation's independent classifier. A diffusion
model's samples should beat this; README and docs/analysis.md quote both outputs.

`--sampler` runs OUR sampler (engine.sampler, default settings) on those Gaussians, with their
exact denoiser f(y) = mu + C (C + sigma^2 I)^-1 (y - mu) in place of the network (sigma: the
sampler's own noise estimate). What it loses against the direct draws is the sampler's share of
the gap between the model's samples and real crops; the rest is the network's.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


from engine.checkpoint import load_checkpoint
from engine.classifier import load_classifier
from engine.data import load_dataset
from engine.metrics import psnr as image_psnr
from engine.sampler import ClassTarget, run

SIGMAS = (0.1, 0.5, 1.0)


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    """Mean PSNR of flattened estimates, clipped to [0, 1] as a denoised image would be."""
    return float(image_psnr(torch.from_numpy(np.clip(estimate, 0, 1)), torch.from_numpy(clean)).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=100, help="held-out crops per class (default 100)")
    p.add_argument("--samples", type=int, default=32,
                   help="Gaussian samples per class to classify (default 32; 0: skip)")
    p.add_argument("--sampler", action="store_true",
                   help="also draw them with engine.sampler and the exact Gaussian denoiser")
    a = p.parse_args()
    tr, te = load_dataset("textures", "train", 32, 1), load_dataset("textures", "test", 32, 1)
    x, lab = tr.images.reshape(len(tr), -1).astype(np.float64), tr.labels
    k = len(tr.classes)
    sel = np.concatenate([np.nonzero(te.labels == c)[0][:a.per_class] for c in range(k)])
    clean, tlab = te.images[sel].reshape(len(sel), -1).astype(np.float64), te.labels[sel]
    rng = np.random.default_rng(0)
    gaussians = Gaussians(x, lab, te.images.shape[1:])
    everything = Gaussians(x, np.zeros_like(lab), te.images.shape[1:])    # the mixture's Gaussian
    for s in SIGMAS:
        y = clean + s * rng.standard_normal(clean.shape)
        mixture = everything.denoise(0, y, s)
        right, wrong = np.empty_like(y), np.empty_like(y)
        for c in range(k):
            m = tlab == c
            right[m], wrong[m] = gaussians.denoise(c, y[m], s), gaussians.denoise((c + 3) % k, y[m], s)
        print(f"sigma {s}: linear mixture {psnr(mixture, clean):.2f} dB, class {psnr(right, clean):.2f} dB, "
              f"wrong class {psnr(wrong, clean):.2f} dB (gain {psnr(right, clean) - psnr(mixture, clean):+.2f} dB)",
              flush=True)
    if a.samples:
        clf = load_classifier(load_checkpoint(), progress=False)     # the shipped model's classifier
        draws = [gaussians.draw(c, a.samples, rng) for c in range(k)]
        score("gaussian samples", draws, clf, tr.classes, te.images, te.labels)
        if a.sampler:
            walks = [run(gaussians, ClassTarget(c), n=a.samples, seed=100 + c)[0].numpy() for c in range(k)]
            score("gaussian samples drawn by engine.sampler", walks, clf, tr.classes, te.images, te.labels)


class Gaussians:
    """One Gaussian per class (mean and covariance of its training crops) with the exact
    (linear, Wiener) denoiser of each, mu + C (C + sigma^2 I)^-1 (y - mu), computed in C's
    eigenbasis. Also dressed as a checkpoint for engine.sampler: a class's "centroid" at sigma
    is (class, sigma), which tells the denoiser which Gaussian and which noise level."""
    kind = "feature_guided"
    device = torch.device("cpu")
    phi_dim = 2

    def __init__(self, x: np.ndarray, lab: np.ndarray, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.mu, self.cov, self.eigvals, self.eigvecs = [], [], [], []
        for c in range(lab.max() + 1):
            xc = x[lab == c]
            self.cov.append(np.cov(xc, rowvar=False))
            val, vec = np.linalg.eigh(self.cov[-1])
            self.mu.append(xc.mean(0))
            self.eigvals.append(np.clip(val, 0, None))
            self.eigvecs.append(vec)

    @property
    def model(self):
        return self                              # the sampler calls ckpt.model(y, phi*)

    def draw(self, c: int, n: int, rng: np.random.Generator) -> np.ndarray:
        draws = rng.multivariate_normal(self.mu[c], self.cov[c], size=n, method="eigh")
        return np.clip(draws, 0, 1).reshape(n, *self.shape).astype(np.float32)

    def centroid(self, name, sigma) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
        return torch.stack([torch.full_like(s, float(name)), s], 1)

    def class_mean(self, name) -> torch.Tensor:
        return torch.tensor([self.mu[int(name)].mean()], dtype=torch.float32)

    def denoise(self, c: int, y: np.ndarray, sigma: float) -> np.ndarray:
        """The exact denoiser of Gaussian c at noise level sigma, for flat images y (n, N)."""
        v = (y - self.mu[c]) @ self.eigvecs[c]
        return self.mu[c] + (self.eigvals[c] / (self.eigvals[c] + sigma ** 2) * v) @ self.eigvecs[c].T

    def __call__(self, y: torch.Tensor, goal: torch.Tensor):
        """ckpt.model(y, phi*) for engine.sampler: each image denoised at its own (class, sigma)."""
        flat = y.double().flatten(1).numpy()
        out = np.stack([self.denoise(int(c), flat[i:i + 1], s)[0] for i, (c, s) in enumerate(goal.tolist())])
        return torch.from_numpy(out).float().view_as(y), goal


def score(what: str, samples: list[np.ndarray], clf, classes: list[str], test: np.ndarray,
          test_labels: np.ndarray) -> None:
    """Class accuracy and contrast (pixel std over real test crops' std), per class and mean."""
    accuracy, contrast = [], []
    for c, (name, draws) in enumerate(zip(classes, samples)):
        accuracy.append(float((clf.predict(draws) == c).mean()))
        contrast.append(float(draws.std(axis=(1, 2, 3)).mean() / test[test_labels == c].std(axis=(1, 2, 3)).mean()))
        print(f"{what}, {name}: accuracy {accuracy[-1]:.2f}, contrast {contrast[-1]:.2f}", flush=True)
    print(f"{what} ({len(samples[0])} per class): mean class accuracy {np.mean(accuracy):.3f}, "
          f"lowest {min(accuracy):.2f}, mean contrast {np.mean(contrast):.2f}")


if __name__ == "__main__":
    main()
