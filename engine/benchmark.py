"""`python -m engine benchmark`: what this machine does with a model, at each precision.

Sampling (the default): for fp32 eager and for the precision policy's pick (engine/precision.py,
compiled and warmed up first where it compiles), the seconds for 16 class samples, for 8
interpolation samples (the median over alphas: what one slider position costs the app), and the
milliseconds per network call at batch 1, 8 and 16. `--train`: training images per second for
fp32 eager and for the policy's pick, in one run, with their ratio (engine/throughput.py).
Figures only; nothing here asserts a speed.
"""
from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import torch

from .config import ModelConfig, TrainConfig, parse_ints
from .precision import COMPILE, PRECISIONS, pays_to_compile, resolve

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def precision_flags(p) -> None:
    """--precision and --compile, as `sample`, `evaluate`, `benchmark` and the app take them."""
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default): bfloat16 autocast where the CPU or GPU has bfloat16 units, else fp32")
    p.add_argument("--compile", default="auto", choices=COMPILE,
                   help="torch.compile the network; auto (default): where bf16 is picked and the work repays it")


def register(sub) -> dict:
    from .cli import _positive, within
    b = sub.add_parser("benchmark", help="time the sampler and the network",
                       description="Print, for fp32 and for --precision, seconds per batch of 16 samples, per 8 "
                       "interpolation samples, network evaluations per sample and ms per network call.")
    b.add_argument("--checkpoint", default=None)
    b.add_argument("--repeats", type=_positive(int), default=3, help="timed runs, the median kept (default 3)")
    b.add_argument("--device", default="auto")
    b.add_argument("--train", action="store_true",
                   help="instead: training images per second for fp32 eager and for --precision, with their "
                        "ratio and the fraction of the machine's float32 matmul rate (under torchrun: all "
                        "processes together)")
    b.add_argument("--steps", type=_positive(int), default=20, help="--train: timed steps (default 20)")
    b.add_argument("--batch", type=_positive(int), default=32, help="--train: global batch (default 32)")
    b.add_argument("--widths", type=within(parse_ints, None, "widths"), default=ModelConfig.widths,
                   help=f"--train: channels per scale (default {','.join(map(str, ModelConfig.widths))})")
    b.add_argument("--size", type=_positive(int), default=32, help="--train: image side (default 32)")
    b.add_argument("--channels", type=int, default=1, choices=[1, 3], help="--train: 1 grey, 3 colour (default 1)")
    b.add_argument("--out", default=None, help="also write the JSON to this file")
    precision_flags(b)
    return {"benchmark": cmd_benchmark}


def _ms_per_call(ckpt, b: int, calls: int = 20) -> float:
    y = torch.rand(b, *ckpt.shape)
    target = ckpt.centroid(0, torch.full((b,), 0.5))
    ckpt.denoise(y, target)
    t0 = time.perf_counter()
    for _ in range(calls):
        ckpt.denoise(y, target)
    return 1000 * (time.perf_counter() - t0) / calls


def interpolation_seconds(ckpt, n: int = 8, repeats: int = 3) -> float:
    """Median seconds for n samples of an interpolation between the first two classes, over
    ALPHAS and `repeats` seeds: one redraw of the app's Interpolate tab."""
    from .sampler import Interpolation, run
    a, b = ckpt.classes[:2]
    run(ckpt, Interpolation(a, b, 0.5), n=n, seed=0)            # warm
    times = []
    for alpha in ALPHAS:
        for r in range(repeats):
            t0 = time.perf_counter()
            run(ckpt, Interpolation(a, b, alpha), n=n, seed=r)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sampling_figures(ckpt, repeats: int) -> dict:
    from .evaluate import seconds_per_batch
    out = seconds_per_batch(ckpt, 16, repeats=repeats)
    out["interpolation_seconds_8_samples"] = interpolation_seconds(ckpt, 8, repeats)
    for b in (1, 8, 16):
        out[f"ms_per_network_call_batch_{b}"] = _ms_per_call(ckpt, b)
    out.update(ckpt.policy.describe())
    out["compiled"] = ckpt.compiled
    return out


def cmd_benchmark(a) -> int:
    if a.train:
        return _train(a)
    from .checkpoint import load_checkpoint
    ckpt = load_checkpoint(a.checkpoint, a.device, kind="feature_guided")
    result = {"fp32": sampling_figures(ckpt, a.repeats)}
    policy = ckpt.use_precision(a.precision, a.compile, work=10 ** 9)     # the app's case: long-lived
    result["policy"] = policy.describe()
    if policy.name != "fp32" or ckpt.compiled:       # else the pick is fp32 eager, measured above
        result["warm_up_seconds"] = ckpt.warm_up()
        result[policy.name + ("_compiled" if ckpt.compiled else "")] = sampling_figures(ckpt, a.repeats)
    result.update(machine=f"{platform.machine()} {platform.processor()}".strip(), cpu_count=os.cpu_count(),
                  threads=torch.get_num_threads(), torch=torch.__version__, device=str(ckpt.device))
    _print(result, a.out)
    return 0


def _train(a) -> int:
    from .checkpoint import pick_device
    from .throughput import train_benchmark
    result, rates = {}, {}
    for name, precision, compile in (("fp32_eager", "fp32", "off"), ("policy", a.precision, a.compile)):
        cfg = TrainConfig(dataset="ovals", steps=a.steps, batch=a.batch, n_per_class=64, checkpoint_every=10 ** 9,
                          device=a.device, precision=precision,
                          # a benchmark is short, but it stands for a long run: compile where one would
                          compile=pays_to_compile(compile, resolve(precision, pick_device(a.device)), 10 ** 9, "train"),
                          model=ModelConfig(channels=a.channels, size=a.size, widths=a.widths))
        figures = train_benchmark(cfg, warmup=6 if cfg.compile == "on" else 3)
        if figures is None:                      # not rank 0 under torchrun
            continue
        result[name] = figures
        rates[name] = figures["images_per_second"]
    if rates:
        result["policy_over_fp32_eager"] = rates["policy"] / rates["fp32_eager"]
        _print(result, a.out)
    return 0


def _print(result: dict, out: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        from pathlib import Path
        Path(out).write_text(text + "\n")
