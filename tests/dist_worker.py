"""A tiny training run for tests/test_distributed.py, alone or under torchrun: each process
writes its per-step losses and its trained weights to OUT/rank<R>.pt.

    torchrun --standalone --nproc_per_node 2 tests/dist_worker.py OUT STEPS"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

import engine.train as training
from engine.config import ModelConfig, TrainConfig

CONFIG = dict(dataset="ovals", batch=16, pool=4, n_per_class=16, device="cpu", precision="fp32",
              model=ModelConfig(widths=(8, 16), size=16))


def run(out: str | Path, steps: int) -> dict:
    made = []

    def recorded(config):                   # keep a handle on the network this process trains
        made.append(plain(config))
        return made[-1]

    losses = []
    training.network_for, plain = recorded, training.network_for
    try:
        training.train(TrainConfig(steps=steps, checkpoint_every=steps, **CONFIG), out, log=lambda *a: None,
                       progress=False, on_step=lambda step, mse: losses.append(mse))
    finally:
        training.network_for = plain
    result = {"losses": losses, "weights": {k: v.clone() for k, v in made[0].state_dict().items()}}
    torch.save(result, Path(out) / f"rank{os.environ.get('RANK', '0')}.pt")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(sys.argv[1], int(sys.argv[2]))
