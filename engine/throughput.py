"""`benchmark --train`: training images per second, and how much of the machine's arithmetic
a training step uses.

The step is timed in a real run of `train` (DDP and all, under torchrun too) on a generated
dataset; its FLOPs are counted by torch.utils.flop_counter on one forward and backward pass of
the same network and batch; the machine's rate is that of a large float32 torch.mm in each
process, summed over the processes (the same threads the training uses). The fraction says how
far the step is from the rate of plain matrix products: small convolutions, norms and memory
traffic are what the rest of the time goes to.
"""
from __future__ import annotations

import tempfile
import time

import torch
import torch.distributed as dist
from torch.utils.flop_counter import FlopCounterMode

from . import distributed
from .config import ModelConfig, TrainConfig
from .loss import denoising_loss
from .network import UNet
from .precision import resolve


def matmul_rate(n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """FLOP/s of a float32 (n x n) @ (n x n) torch.mm, the best of `repeats`."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def step_flops(cfg: TrainConfig, batch: int) -> int:
    """FLOPs of one training step's forward and backward pass on `batch` images."""
    model = UNet(cfg.model)
    c, s = cfg.model.channels, cfg.model.size
    y, x = torch.rand(batch, c, s, s), torch.rand(batch, c, s, s)
    guided = cfg.kind == "feature_guided"
    with FlopCounterMode(display=False) as counter:
        loss, _ = denoising_loss(model, x, y, torch.ones(batch), torch.rand_like(y) if guided else None,
                                 cfg.pool if guided else 1)
        loss.backward()
    return counter.get_total_flops()


def train_benchmark(cfg: TrainConfig, warmup: int = 3) -> dict | None:
    """Time cfg.steps training steps (after `warmup` more) of cfg; the figures, on rank 0."""
    with distributed.session(cfg.device) as world:
        device = "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"
        rate = torch.tensor([matmul_rate(device=device)], dtype=torch.float64)
        if world.active:
            dist.all_reduce(rate)                       # the machine: every process's share of it
        times = []
        cfg.steps += warmup
        with tempfile.TemporaryDirectory() as out:
            from .train import machine, train
            train(cfg, out, log=lambda *a: None, progress=False,
                  on_step=lambda step, mse: times.append(time.perf_counter()))
        timed = len(times) - warmup           # from the end of the last warm-up step
        per_second = cfg.batch * timed / (times[-1] - times[warmup - 1])
        flops = step_flops(cfg, cfg.batch // world.size) * world.size
        if not world.main:
            return None
        return {"images_per_second": per_second, "steps_per_second": per_second / cfg.batch,
                "step_gflop": flops / 1e9, "machine_matmul_gflops": rate.item() / 1e9,
                "fraction_of_matmul_rate": flops * per_second / cfg.batch / rate.item(),
                "processes": world.size, "threads_per_process": torch.get_num_threads(),
                "machine": machine(), "timed_steps": timed, "batch": cfg.batch, "kind": cfg.kind,
                "widths": list(cfg.model.widths), "size": cfg.model.size, "channels": cfg.model.channels,
                **resolve(cfg.precision, torch.device(device)).describe(), "compile": cfg.compile,
                "torch": torch.__version__}
