"""Shared fixtures: tiny models trained in seconds, so every test runs on real checkpoints."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import torch

from engine.config import ModelConfig, TrainConfig
from engine.train import train

# mid and dec1 both matched (the default for two scales is mid only), so tests see two matched blocks
TINY_MODEL = dict(widths=(8, 16), size=16, matched_blocks=("mid", "dec1"))


def tiny_config(kind: str = "feature_guided", steps: int = 40, dataset: str = "textures", **kw) -> TrainConfig:
    return TrainConfig(dataset=dataset, kind=kind, steps=steps, batch=16, n_per_class=32, checkpoint_every=20,
                       device="cpu", model=ModelConfig(**TINY_MODEL), **kw)


@pytest.fixture(scope="session")
def tiny_fg_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_fg")
    train(tiny_config("feature_guided"), out, log=lambda *a: None, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_mixture_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_mix")
    train(tiny_config("mixture"), out, log=lambda *a: None, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_fg(tiny_fg_dir):
    from engine.checkpoint import load_checkpoint
    return load_checkpoint(tiny_fg_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_mixture(tiny_mixture_dir):
    from engine.checkpoint import load_checkpoint
    return load_checkpoint(tiny_mixture_dir, device="cpu")


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """One thread, as the pinned arrays (tests/data) were made: the same sums in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Pinned float arrays agree to this much: another CPU's vector code rounds float32 differently (up to
# 7e-7 measured on the pinned cases), while a change of the sampler's step size by one part in 10^5
# already moves its samples by 9e-6. Integers and booleans must be equal.
PINNED_ATOL = 5e-6


def pinned_differences(got: dict, path) -> list[str]:
    """The names of the arrays of `got` that differ from those stored in `path` by more than float32
    rounding on another machine (PINNED_ATOL; integers and booleans: at all), or are missing from either."""
    import numpy as np
    want = np.load(path)

    def same(a, b) -> bool:
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        if a.dtype.kind == "f":
            return bool(np.allclose(a, b, rtol=0, atol=PINNED_ATOL))
        return bool(np.array_equal(a, b))
    return sorted(set(got) ^ set(want.files)) + [k for k in want.files if k in got and not same(got[k], want[k])]
