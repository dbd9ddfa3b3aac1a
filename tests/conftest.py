"""Shared fixtures: tiny models trained in seconds, so every test runs on real checkpoints.

The app's fixtures (tests/app_fixtures.py) are registered here once for the whole run, so each
session fixture is set up once however many modules use it (`pytest --setup-plan` shows it).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import torch

pytest_plugins = ["app_fixtures"]

from engine.config import ModelConfig, TrainConfig
from engine.train import train

# mid and dec1 both matched (the default for two scales is mid only), so tests see two matched blocks
TINY_MODEL = dict(widths=(8, 16), size=16, matched_blocks=("mid", "dec1"))


def tiny_config(kind: str = "feature_guided", steps: int = 40, dataset: str = "textures", **kw) -> TrainConfig:
    # fp32: the fixtures are the same models on every machine, whatever its bfloat16 units
    kw = {"precision": "fp32", "checkpoint_every": 20, **kw}
    return TrainConfig(dataset=dataset, kind=kind, steps=steps, batch=16, n_per_class=32,
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


# A 10000 x 10000 grey PNG (100 million pixels: reduced while decoding, under the decompression-bomb
# guard of engine/data.py), made once per run and shared by every test that reads it.
HUGE_SIDE, HUGE_GREY = 10000, 90
_shared: dict[str, Path] = {}


def huge_png_path() -> Path:
    """The run's huge PNG, written on first use into a folder removed when the run ends."""
    if "huge" not in _shared:
        from PIL import Image
        folder = Path(tempfile.mkdtemp(prefix="fgsd-tests-"))
        _shared["folder"] = folder
        Image.new("L", (HUGE_SIDE, HUGE_SIDE), HUGE_GREY).save(folder / "huge.png")
        _shared["huge"] = folder / "huge.png"
    return _shared["huge"]


@pytest.fixture(scope="session")
def huge_png() -> Path:
    return huge_png_path()


def pytest_sessionfinish(session, exitstatus):
    if "folder" in _shared:
        shutil.rmtree(_shared.pop("folder"), ignore_errors=True)
        _shared.pop("huge", None)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run where CUDA is (`pytest -m gpu` selects them alone); elsewhere they are
    skipped with the reason. The app's tests are grouped onto one worker."""
    for item in items:
        if "app_server" in getattr(item, "fixturenames", ()):
            # one app server per run: under pytest-xdist (`--dist loadgroup`) its tests share a worker
            item.add_marker(pytest.mark.xdist_group("app"))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run `pytest -m gpu` on a machine with one)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


# `make test` runs the suite in one worker process per core (pytest-xdist); each worker's torch then
# takes its share of the cores, so that two workers do not fight over the same two.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, torch.get_num_threads()) // WORKERS)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(THREADS)


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
