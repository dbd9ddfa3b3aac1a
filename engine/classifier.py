"""An image classifier independent of the denoiser, to judge samples.

A small convolutional network trained on the real training crops of the checkpoint's
dataset (never on samples, never sharing weights with the denoiser). Light Gaussian noise
and horizontal flips during training make it robust to the small residual noise of
samples. It is trained once per dataset config and cached beside the checkpoint (for a
model under assets/, in the cache folder of engine/paths.py: shipped files never change).
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import safe_load, save_atomic
from .data import load_dataset
from .errors import EngineError
from .paths import cache_home


class SmallCNN(nn.Module):
    def __init__(self, channels: int, classes: int, width: int = 32):
        super().__init__()

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*block(channels, width), *block(width, width), nn.MaxPool2d(2),
                                      *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
                                      *block(2 * width, 4 * width))
        self.head = nn.Linear(8 * width, classes)

    def pooled(self, x):
        h = self.features(x)
        # mean and std of each channel: texture statistics, position-free
        return torch.cat([h.mean((2, 3)), h.std((2, 3))], 1)

    def forward(self, x):
        return self.head(self.pooled(x))


class Classifier:
    def __init__(self, net: SmallCNN, classes: list[str], test_accuracy: float, key: dict):
        self.net = net.eval()
        self.classes = classes
        self.test_accuracy = test_accuracy
        self.key = key

    @torch.no_grad()
    def features(self, images) -> np.ndarray:
        """(N, C, H, W) images in [0, 1] (array or tensor) -> (N, D) pooled features: the channel
        means and standard deviations the class is read from."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32) if not isinstance(images, torch.Tensor)
                            else images.detach().cpu().float())
        return torch.cat([self.net.pooled(x[i:i + 512]) for i in range(0, len(x), 512)]).numpy()

    @torch.no_grad()
    def probabilities(self, images) -> np.ndarray:
        """(N, C, H, W) images in [0, 1] (array or tensor) -> (N, K) class probabilities."""
        return torch.softmax(self.net.head(torch.from_numpy(self.features(images))), 1).numpy()

    def predict(self, images) -> np.ndarray:
        return self.probabilities(images).argmax(1)

    def readings(self, images) -> Counter:
        """How many of the images the classifier reads as each class (class name -> count)."""
        return Counter(self.classes[k] for k in self.predict(images))


def _key(cfg) -> dict:
    """What a classifier is trained on: a run's dataset and its crop draw (TrainConfig.crops_seed)."""
    return {"dataset": cfg.dataset, "size": cfg.model.size, "channels": cfg.model.channels,
            "n_per_class": cfg.n_per_class, "seed": cfg.crops_seed}


def train_classifier(key: dict, steps: int | None = None, batch: int = 128, seed: int = 0,
                     progress: bool = True) -> Classifier:
    train = load_dataset(key["dataset"], "train", key["size"], key["channels"], key["n_per_class"], key["seed"])
    # about 10 epochs, within bounds: the upper one caps the cost on large folders
    steps = steps or int(min(1500, max(100, 10 * len(train) / batch)))
    test = load_dataset(key["dataset"], "test", key["size"], key["channels"], None, key["seed"])
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SmallCNN(key["channels"], len(train.classes))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    x_all, y_all = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    net.train()
    with torch.enable_grad():                   # callers may sit inside torch.no_grad()
        _fit(net, opt, sched, x_all, y_all, steps, batch, gen, progress)
    clf = Classifier(net, train.classes, 0.0, key)
    clf.test_accuracy = float((clf.predict(test.images) == test.labels).mean())
    return clf


def _fit(net, opt, sched, x_all, y_all, steps: int, batch: int, gen: torch.Generator, progress: bool) -> None:
    for _ in tqdm(range(steps), desc="classifier", disable=not progress, file=sys.stderr):
        idx = torch.randint(len(y_all), (batch,), generator=gen)
        x = x_all[idx]
        flip = torch.rand(batch, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = x + 0.05 * torch.rand(batch, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
        loss = nn.functional.cross_entropy(net(x), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def load_classifier(ckpt, progress: bool = True) -> Classifier:
    """The classifier for a checkpoint's dataset (`classifier_for`)."""
    clf = classifier_for(_key(ckpt.train_config), ckpt.path, progress)
    if clf.classes != ckpt.classes:
        raise EngineError("the dataset's classes differ from the checkpoint's; was the folder changed?")
    return clf


# Classifiers trained in this process, by file name (the digest of their key): the models of one
# dataset in different folders (a feature-guided model, its mixture, its conditional baseline: what
# a report measures) share one classifier, trained once; each folder still gets its cached copy.
_TRAINED: dict[str, dict] = {}


def classifier_for(key: dict, near=None, progress: bool = True) -> Classifier:
    """The classifier of a dataset (key: `_key`'s fields): the one beside the checkpoint file `near`
    (shipped models ship theirs), else the one cached for it (paths.cache_home: never under
    assets/), else the one this process trained for the same key, else trained; the last two are
    cached for `near`."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(near).parent if near else Path(".")
    name = f"classifier_{digest}.pt"
    path = folder / name if (folder / name).is_file() else cache_home(folder) / name
    if path.is_file():
        state = safe_load(path)
    else:
        if name not in _TRAINED:
            clf = train_classifier(key, progress=progress)
            _TRAINED[name] = {"model": {k: v.detach().clone() for k, v in clf.net.state_dict().items()},
                              "classes": clf.classes, "test_accuracy": clf.test_accuracy, "key": key}
        state = _TRAINED[name]
        try:
            save_atomic(state, path)
        except OSError:
            pass                                # read-only folder: keep it in memory only
    net = SmallCNN(key["channels"], len(state["classes"]))
    net.load_state_dict(state["model"])        # copied: every caller has a network of its own
    return Classifier(net, state["classes"], state["test_accuracy"], key)
