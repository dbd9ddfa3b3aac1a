"""Which texture classes can phi hold? How stationary each class is at the crop size, how well the
spatial averages of a crop's features (phi) point to its own class, and whether the classes differ
by texture rather than by brightness.

    python experiments/stationarity.py [--dataset textures] [--checkpoint RUN] [--sigma 0.05] [--per-class 150]
    python experiments/stationarity.py --dataset textures-v1 --candidates

For every class, on held-out crops:
- the spread over crops of each crop's mean pixel: near zero for a stationary texture, whose every
  crop has the same statistics;
- phi nearest centroid: the share of its test crops whose phi(crop + sigma z) lies nearest its own
  class's centroid (the mean phi of training crops), for the feature-guided and mixture models of
  --checkpoint / --mixture (default: the shipped pair). The method conditions on a class through
  that centroid: a class whose crops' phi lie nearer another class's centroid cannot be told apart
  by it, however well the denoiser is trained;
- normalised classifier: the accuracy of an ordinary classifier (engine/classifier.py's small CNN,
  trained here on training crops) on test crops each normalised to zero mean and unit contrast, so
  that classes are told apart by texture, not by brightness alone.
`--candidates` adds sources from the installed wheels that could join the dataset. About 2-4 minutes
on 2 CPU cores (the classifier's training).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, load_checkpoint
from engine.classifier import SmallCNN
from engine.data import crops_from
from engine.textures import TEXTURES, TEXTURES_V1, TEXTURES_V3, TextureSource, _skimage, _sklearn
from engine.errors import EngineError

TABLES = {"textures": TEXTURES, "textures-v1": TEXTURES_V1, "textures-v3": TEXTURES_V3}

# Candidate sources, cut by eye from images the wheels ship (rows r0:r1, cols c0:c1).
CANDIDATES = {
    "moon x2": TextureSource(_skimage("moon"), factor=2),
    "fur (chelsea)": TextureSource(_skimage("chelsea"), region=(0, 120, 60, 280)),
    "foliage (china)": TextureSource(_sklearn("china.jpg"), region=(335, 427, 350, 640)),
    "tissue x2": TextureSource(_skimage("immunohistochemistry"), factor=2),
    "petals x2": TextureSource(_sklearn("flower.jpg"), region=(110, 330, 200, 420), factor=2),
}


def nearest_centroid_accuracy(train_phi, train_labels, test_phi, test_labels, classes) -> dict[int, float]:
    """Per class: the share of its test crops whose phi is nearest its own class's mean training phi."""
    centroids = np.stack([train_phi[train_labels == c].mean(0) for c in classes])
    out = {}
    for c in classes:
        d = ((test_phi[test_labels == c][:, None] - centroids[None]) ** 2).sum(-1)
        out[c] = float((np.array(classes)[d.argmin(1)] == c).mean())
    return out


def normalise(x: np.ndarray) -> np.ndarray:
    """Each crop to zero mean and unit standard deviation: its brightness and contrast removed."""
    return (x - x.mean((1, 2, 3), keepdims=True)) / (x.std((1, 2, 3), keepdims=True) + 1e-3)


def normalised_classifier(train_x, train_y, test_x, test_y, k: int, steps: int = 600) -> np.ndarray:
    """Per-class accuracy on contrast-normalised test crops of a small CNN trained on normalised crops."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = SmallCNN(1, k)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    x_all, y_all = torch.from_numpy(normalise(train_x)), torch.from_numpy(train_y)
    for _ in range(steps):
        idx = torch.randint(len(y_all), (128,), generator=gen)
        x = torch.where((torch.rand(128, generator=gen) < 0.5)[:, None, None, None], x_all[idx].flip(3), x_all[idx])
        loss = torch.nn.functional.cross_entropy(net(x), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(normalise(test_x))).argmax(1).numpy()
    return np.array([(pred[test_y == c] == c).mean() for c in range(k)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="textures", choices=sorted(TABLES), help="default textures")
    p.add_argument("--checkpoint", default=None, help="feature-guided model for phi (default: the shipped one)")
    p.add_argument("--mixture", default=None, help="mixture model for phi (default: the shipped one)")
    p.add_argument("--sigma", type=float, default=0.05, help="noise added before phi (default 0.05)")
    p.add_argument("--per-class", type=int, default=150, help="held-out crops per class (default 150)")
    p.add_argument("--candidates", action="store_true", help="also place candidate sources beside the classes")
    args = p.parse_args()
    try:
        table = dict(TABLES[args.dataset])
        if args.candidates:
            table |= CANDIDATES
        sources = {name: s.image(1) for name, s in table.items()}

        def crops(split: str, n: int):
            x = [crops_from(img, 32, split, n, np.random.default_rng([0, c, split == "test"]), table[name].min_std)
                 for c, (name, img) in enumerate(sources.items())]
            return np.concatenate(x), np.repeat(np.arange(len(sources)), n)
        train_x, train_y = crops("train", 1000)
        test_x, test_y = crops("test", args.per_class)
        models = {"feature-guided": load_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT, device="cpu"),
                  "mixture": load_checkpoint(args.mixture or DEFAULT_MIXTURE, device="cpu")}
        gen = torch.Generator().manual_seed(0)
        classes = list(range(len(sources)))
        scores = {}
        with torch.no_grad():
            for name, ckpt in models.items():
                phi = [ckpt.phi(torch.from_numpy(x) + args.sigma * torch.randn(x.shape, generator=gen)).cpu().numpy()
                       for x in (train_x, test_x)]
                scores[f"phi nn, {name}"] = nearest_centroid_accuracy(phi[0], train_y, phi[1], test_y, classes)
        clf = normalised_classifier(train_x, train_y, test_x, test_y, len(sources))
        scores["normalised classifier"] = dict(enumerate(clf))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset {args.dataset}; {args.per_class} held-out crops per class; phi of crop + noise sigma "
          f"{args.sigma} against training-crop centroids ({models['feature-guided'].path}, {models['mixture'].path})")
    print(f"{'class':18s} {'source':>10s} {'crop-mean spread':>17s}  " + "  ".join(f"{c:>22s}" for c in scores))
    for c, name in enumerate(sources):
        m = test_x[test_y == c].mean((1, 2, 3))
        h, w = sources[name].shape[1:]
        print(f"{name:18s} {f'{w}x{h}':>10s} {m.std():17.3f}  " + "  ".join(f"{s[c]:22.2f}" for s in scores.values()))
    print(f"{'mean':18s} {'':>10s} {'':>17s}  " + "  ".join(f"{np.mean(list(s.values())):22.3f}" for s in scores.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
