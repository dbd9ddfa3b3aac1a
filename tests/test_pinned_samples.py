"""Samples of a small stored checkpoint, pinned (to float32 rounding, conftest.PINNED_ATOL).

tests/data/tiny_fg.pt is a feature-guided model trained for 40 steps (tests/conftest.py's
tiny_config); tests/data/pinned_samples.npz holds what the sampler drew from it for each case
below. A refactoring of the sampler, the targets or the network must leave every array equal;
a deliberate change of the numerics rewrites them with

    python tests/test_pinned_samples.py --write
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from conftest import pinned_differences

from engine.checkpoint import load_checkpoint
from engine.config import SamplerSettings
from engine.sampler import ClassTarget, ImageTarget, Interpolation, Switch, Unconditional, run, trajectory_arrays

DATA = Path(__file__).resolve().parent / "data"
CHECKPOINT = DATA / "tiny_fg.pt"
PINNED = DATA / "pinned_samples.npz"


def conditioning_images() -> torch.Tensor:
    return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(7))


def cases(ckpt) -> dict:
    """name -> (target, n, seed, settings, record the steps)."""
    a, b = ckpt.classes[:2]
    short = SamplerSettings(max_steps=30, guidance=2.0, eps_scale=1.2, beta=0.1, h0=0.01)   # explicit: defaults may move
    return {
        "unconditional": (Unconditional(), 2, 0, short, False),
        "class": (ClassTarget(a), 3, 1, short, True),
        "interpolation": (Interpolation(a, b, 0.3), 2, 2, short, False),
        "switch": (Switch(a, b, 0.2), 2, 3, short, False),
        "image": (ImageTarget(conditioning_images(), seed=4, draws=2), 2, 4, short, False),
        "plain_walk": (ClassTarget(b), 2, 5,
                       SamplerSettings(max_steps=30, beta=0.5, h0=0.05, guidance=0.0, eps_scale=1.0), True),
    }


def draw(ckpt) -> dict[str, np.ndarray]:
    out = {}
    for name, (target, n, seed, settings, record) in cases(ckpt).items():
        x, steps = run(ckpt, target, n=n, seed=seed, settings=settings, record=record)
        out[f"{name}/samples"] = x.numpy()
        for key, value in trajectory_arrays(steps).items() if record else ():
            out[f"{name}/steps/{key}"] = value
    return out


def test_samples_of_the_stored_checkpoint_are_the_pinned_arrays(one_thread):
    assert not pinned_differences(draw(load_checkpoint(CHECKPOINT, device="cpu")), PINNED)


def test_the_pinning_sees_a_step_size_changed_by_one_part_in_ten_thousand(one_thread, monkeypatch):
    """The tolerance forgives another CPU's rounding, not a change of the numerics."""
    from engine import sampler
    step = sampler.step
    monkeypatch.setattr(sampler, "step", lambda y, f, z, t, h0, beta, lam: step(y, f, z, t, h0 * (1 + 1e-4), beta, lam))
    changed = pinned_differences(draw(load_checkpoint(CHECKPOINT, device="cpu")), PINNED)
    assert "class/samples" in changed and "plain_walk/samples" in changed


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    torch.set_num_threads(1)
    np.savez_compressed(PINNED, **draw(load_checkpoint(CHECKPOINT, device="cpu")))
    print(f"wrote {PINNED}")
