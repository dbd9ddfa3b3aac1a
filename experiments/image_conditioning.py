"""How well does conditioning on images give samples of the images' class, and at what cost?

    python experiments/image_conditioning.py [--checkpoint assets/feature_guided] [--groups 4]
        [--samples 8] [--images 1,4] [--per-step] [--split test]

For each class, `--groups` disjoint random sets of K held-out test crops (K from `--images`;
`--split train`: training crops) condition `--samples` samples each (engine.sampler.ImageTarget:
the images' centroid table, built once per run); the independent classifier reads the samples.
Prints, per K, the accuracy per class, what the misread samples were read as, and the network
evaluations per sample. The class centroid (ClassTarget) on the same seeds is the reference.
`--per-step` also measures the target the sampler used before the table: phi of one fresh noisy
copy of each image at every step (K more evaluations per sample per step). docs/method.md,
"Conditioning on images", quotes this script.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch


from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.classifier import load_classifier
from engine.data import run_crops
from engine.sampler import ClassTarget, ImageTarget, run


class PerStepImages(ImageTarget):
    """The earlier image target: mean over k of phi(x_k + sigma z), z redrawn at every step
    (ImageTarget's images, seed and start; no table)."""

    def prepare(self, ckpt):
        self.gen = torch.Generator().manual_seed(self.seed)
        return 0

    def phi(self, ckpt, sigma):
        k, b = len(self.images), len(sigma)
        z = torch.randn((b, *self.images.shape), generator=self.gen)
        y = self.images[None] + sigma.cpu()[:, None, None, None, None] * z
        return ckpt.phi(y.reshape(b * k, *self.images.shape[1:])).reshape(b, k, -1).mean(1)

    def describe(self):
        return {"mode": "images, redrawn every step"}


def measure(ck, clf, make_target, groups: int, samples: int, extra_per_step: int = 0):
    """Accuracy per class, misreadings, evaluations per sample, seconds."""
    accuracy, misread, nfe, t0 = [], Counter(), [], time.time()
    for c, name in enumerate(ck.classes):
        right = 0
        for g in range(groups):
            x, steps = run(ck, make_target(c, g), n=samples, seed=100 + g, record=True)
            nfe.append(steps[-1].nfe + extra_per_step * (len(steps) - 1))
            read = clf.predict(x.cpu().numpy())
            right += int((read == c).sum())
            misread.update(f"{name}->{ck.classes[r]}" for r in read if r != c)
        accuracy.append(right / (groups * samples))
    return np.array(accuracy), misread, float(np.mean(nfe)), time.time() - t0


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="feature-guided model (default: shipped)")
    p.add_argument("--groups", type=int, default=4, help="sets of conditioning images per class (default 4)")
    p.add_argument("--samples", type=int, default=8, help="samples per set (default 8)")
    p.add_argument("--images", default="1,4", help="images per set, comma-separated (default 1,4)")
    p.add_argument("--per-step", action="store_true", help="also measure the per-step target, for one image")
    p.add_argument("--split", default="test", choices=("test", "train"),
                   help="where the conditioning crops come from (default test: held-out crops)")
    a = p.parse_args()
    torch.set_num_threads(2)

    ck = load_checkpoint(a.checkpoint, kind="feature_guided", what="--checkpoint")
    clf = load_classifier(ck, progress=False)
    cfg = ck.train_config
    pool = run_crops(cfg, a.split)

    # disjoint random sets of each class's crops (one permutation per class, cut in slices)
    order = [np.random.default_rng(c).permutation(np.nonzero(pool.labels == c)[0]) for c in range(len(ck.classes))]

    def crops(c: int, g: int, k: int) -> torch.Tensor:
        return torch.from_numpy(pool.images[order[c][g * k:(g + 1) * k]])

    def show(label, result):
        acc, misread, nfe, secs = result
        print(f"{label}: accuracy {acc.mean():.3f} (" + ", ".join(f"{n} {v:.2f}" for n, v in zip(ck.classes, acc))
              + f"); {nfe:.1f} evaluations per sample; {secs:.0f} s", flush=True)
        print("   most misread:", ", ".join(f"{k} {v}" for k, v in misread.most_common(6)), flush=True)

    show("class centroid", measure(ck, clf, lambda c, g: ClassTarget(c), a.groups, a.samples))
    for k in (int(v) for v in a.images.split(",")):
        show(f"{k} image(s), table", measure(ck, clf, lambda c, g: ImageTarget(crops(c, g, k), seed=g),
                                              a.groups, a.samples))
    if a.per_step:
        show("1 image, redrawn every step", measure(ck, clf, lambda c, g: PerStepImages(crops(c, g, 1), seed=g),
                                                    a.groups, a.samples, extra_per_step=1))


if __name__ == "__main__":
    main()
