"""The precision policy (engine/precision.py): what `auto` picks, and that bf16 keeps the numbers.

The bf16 comparisons run on any CPU: where it has no bfloat16 units, autocast emulates them, slower
but with the same rounding, so the tolerances hold there too."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_config
from engine import precision
from engine.checkpoint import Checkpoint, read_file
from engine.config import ModelConfig, TrainConfig
from engine.data import load_dataset
from engine.errors import EngineError
from engine.sampler import ClassTarget, run
from engine.train import train

SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# Measured on a tiny model: bf16 and fp32 denoise within 0.03 dB of each other at every sigma, and
# their training loss curves agree within 0.011 dB over 50- and 100-step windows of 300 steps.
PSNR_TOLERANCE_DB = 0.1
LOSS_TOLERANCE_DB = 0.1


@pytest.fixture
def no_units(monkeypatch):
    monkeypatch.setenv(precision.UNITS_ENV, "0")


@pytest.fixture
def units(monkeypatch):
    monkeypatch.setenv(precision.UNITS_ENV, "1")


def test_auto_is_fp32_without_bfloat16_units(no_units):
    p = precision.resolve("auto", "cpu")
    assert (p.name, p.channels_last) == ("fp32", False) and "no bfloat16 units" in p.why
    assert not precision.pays_to_compile("auto", p, 10 ** 12, "train")


def test_auto_is_bf16_with_bfloat16_units(units):
    p = precision.resolve("auto", "cpu")
    assert (p.name, p.channels_last) == ("bf16", True) and "in hardware" in p.why
    assert precision.pays_to_compile("auto", p, precision.COMPILE_PAYS_ABOVE["train"], "train")
    assert not precision.pays_to_compile("auto", p, precision.COMPILE_PAYS_ABOVE["train"] - 1, "train")
    assert not precision.pays_to_compile("off", p, 10 ** 12) and precision.pays_to_compile("on", p, 0)


def test_asked_precisions_are_kept_and_unknown_ones_refused(no_units):
    assert precision.resolve("fp32", "cpu").name == "fp32"
    emulated = precision.resolve("bf16", "cpu")
    assert emulated.name == "bf16" and "slower" in emulated.why
    with pytest.raises(EngineError, match="unknown precision 'fp16'"):
        precision.resolve("fp16", "cpu")


def test_the_detection_asks_torch_when_not_forced(monkeypatch):
    monkeypatch.delenv(precision.UNITS_ENV, raising=False)
    expected = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert precision.bf16_units(torch.device("cpu")) == expected


def test_a_run_records_the_precision_it_used(no_units, tmp_path):
    path = train(tiny_config(steps=2, precision="auto"), tmp_path, log=lambda *a: None, progress=False)
    info = read_file(path)["info"]
    assert (info["precision"], info["asked"], info["compiled"]) == ("fp32", "auto", False)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_bf16_denoises_within_a_tenth_of_a_db_of_fp32(tiny_fg):
    ckpt = Checkpoint(read_file(tiny_fg.path), "cpu")
    test = load_dataset("textures", "test", ckpt.config.size, 1, 64, 0)
    x = torch.from_numpy(test.images)
    target = ckpt.centroid(torch.from_numpy(test.labels), torch.full((len(x),), 0.5))
    gen = torch.Generator().manual_seed(0)
    noisy = {s: x + s * torch.randn(x.shape, generator=gen) for s in SIGMAS}
    exact = {s: psnr(ckpt.denoise(y, target), x) for s, y in noisy.items()}
    assert ckpt.use_precision("bf16").name == "bf16"
    for s, y in noisy.items():
        out = ckpt.denoise(y, target)
        assert out.dtype == torch.float32 and out.is_contiguous()
        assert abs(psnr(out, x) - exact[s]) < PSNR_TOLERANCE_DB, (s, psnr(out, x), exact[s])


def test_bf16_training_follows_the_fp32_loss_curve(tmp_path):
    curves = {}
    for name in ("fp32", "bf16"):
        cfg = TrainConfig(dataset="ovals", steps=300, batch=16, n_per_class=64, checkpoint_every=1000, device="cpu",
                          precision=name, compile="off",
                          model=ModelConfig(widths=(8, 16), size=16, matched_blocks=("mid",)))
        mse = []
        train(cfg, tmp_path / name, log=lambda *a: None, progress=False, on_step=lambda s, v: mse.append(v))
        curves[name] = np.array(mse)
    for lo, hi in ((0, 50), (50, 100), (100, 200), (200, 300)):
        gap = 10 * math.log10(curves["fp32"][lo:hi].mean() / curves["bf16"][lo:hi].mean())
        assert abs(gap) < LOSS_TOLERANCE_DB, (lo, hi, gap)
    assert curves["bf16"][-50:].mean() < curves["bf16"][:50].mean() / 3       # and both learn


def test_bf16_runs_without_autocasts_process_wide_cache(tiny_fg):
    """torch keeps autocast's cache of cast weights in one map for every thread; the app's background
    compile and its measures, both in it, deadlocked. Training and sampling enter the same context."""
    with precision.resolve("bf16", "cpu").autocast():
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()
    ckpt = Checkpoint(read_file(tiny_fg.path), "cpu")
    ckpt.use_precision("bf16")
    seen = []
    ckpt.model.register_forward_hook(
        lambda *_: seen.append((torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled())))
    ckpt.denoise(torch.rand(2, ckpt.config.channels, ckpt.config.size, ckpt.config.size),
                 ckpt.centroid(torch.tensor([0, 0]), torch.full((2,), 0.5)))
    assert seen == [(True, False)]


def test_the_same_seed_at_the_same_precision_gives_the_same_samples(tiny_fg):
    ckpt = Checkpoint(read_file(tiny_fg.path), "cpu")
    ckpt.use_precision("bf16")
    first, _ = run(ckpt, ClassTarget(ckpt.classes[0]), n=3, seed=5)
    again, _ = run(ckpt, ClassTarget(ckpt.classes[0]), n=3, seed=5)
    other, _ = run(ckpt, ClassTarget(ckpt.classes[0]), n=3, seed=6)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_failing_compile_falls_back_to_eager_and_says_so(monkeypatch, tiny_fg):
    def broken(module, dynamic=None):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    said = []
    ckpt = Checkpoint(read_file(tiny_fg.path), "cpu")
    reference, _ = ckpt.network(torch.rand(4, *ckpt.shape, generator=torch.Generator().manual_seed(1)))
    ckpt.use_precision("fp32", compile="on", log=said.append)
    got, _ = ckpt.network(torch.rand(4, *ckpt.shape, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(got, reference, atol=1e-6)
    assert not ckpt.compiled and len(said) == 1
    assert said[0] == "torch.compile failed (RuntimeError: no C++ compiler found); running eager instead"


def test_a_compiled_network_serves_every_batch_size_with_one_warm_up(tiny_mixture):
    ckpt = Checkpoint(read_file(tiny_mixture.path), "cpu")       # one graph to compile: no target
    ys = [torch.rand(n, *ckpt.shape, generator=torch.Generator().manual_seed(n)) for n in (1, 3, 8)]
    eager = [ckpt.denoise(y) for y in ys]
    ckpt.use_precision("fp32", compile="on")
    assert ckpt.warm_up(batches=(2, 5), measure=False) > 0 and ckpt.compiled
    from torch._dynamo.utils import counters
    before = counters["stats"]["unique_graphs"]
    for y, e in zip(ys, eager):
        got = ckpt.denoise(y)
        assert got.shape == y.shape and torch.allclose(got, e, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == before          # no recompilation after the warm-up
