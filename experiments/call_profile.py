"""Where a sampling call's time goes: torch.profiler over compiled network calls.

    OMP_NUM_THREADS=1 python experiments/call_profile.py [--checkpoint assets/feature_guided] [--batch 8]

Runs the shipped network as the sampler does (at the precision policy's pick, compiled and
warmed up), prints the median ms per call over 100 calls, and the share of the profiled time
spent in convolutions, with the rate they reach: the network's FLOPs counted by
torch.utils.flop_counter, as `benchmark --train` counts them. Says whether a faster call needs
faster convolution kernels (docs/benchmarks.md) or less work around them. About a minute (most of it the compile).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint


def conv_flops(model: nn.Module, y: torch.Tensor) -> int:
    """FLOPs of one forward pass on y, counted as engine/throughput.py counts a training step's
    (torch.utils.flop_counter): the convolutions' multiply-adds, twice."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(y)
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    a = p.parse_args()
    ck = load_checkpoint(a.checkpoint, device="cpu")
    ck.use_precision(a.precision, compile="on")
    ck.warm_up(batches=(a.batch,), measure=False)
    y = torch.rand(a.batch, *ck.shape)
    target = None if ck.kind == "mixture" else ck.centroid(0, 0.1).expand(a.batch, -1).contiguous()
    for _ in range(20):
        ck.network(y, target)
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        ck.network(y, target)
        times.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(50):
            ck.network(y, target)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key)
    flops = conv_flops(ck.model, y)
    conv_s = conv / 1e6 / 50
    print(f"{ck.path}: {ck.precision}, compiled {ck.compiled}, {torch.get_num_threads()} thread(s), batch {a.batch}")
    print(f"median call {1e3 * sorted(times)[50]:.2f} ms; convolutions {100 * conv / total:.0f}% of the profiled "
          f"time ({1e3 * conv_s:.2f} ms per call, {flops / 2e6:.0f} M multiply-adds, "
          f"{flops / conv_s / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
