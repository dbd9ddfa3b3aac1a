"""Do additive constants lift the flat classes? A bias-free network given a learned shift in every norm.

    python experiments/norm_shift.py --checkpoint RUN [--steps 3000] [--no-shift] [--out FILE]

The denoiser is bias-free (engine/network.py): told its class by gains alone it is homogeneous,
f(a y) = a f(y), and models a density blind to contrast. This fine-tunes a feature-guided model with
a learned shift added after every norm (zero at the start, so it begins as the same function) -
or, with --no-shift, without one, as the control - using the engine's loss, partner pooling, noise
law and augmentation at the model's own settings, with Adam at rate 2e-3 (200-step warm-up, the last
750 steps cooled to 0) and a weight average (0.999), in bf16 where the CPU has it. Then it
recomputes the centroid table and prints, per class, the accuracy of 32 samples at the default
sampler (the evaluation's seeds and classifier), their radial power-spectrum error against the
class's held-out crops, and their contrast. docs/model.md, "2026-12-07 (flat classes)", quotes it.
"""
from __future__ import annotations

import argparse
import time
import types

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from engine.centroids import compute_centroids
from engine.checkpoint import load_checkpoint
from engine.classifier import load_classifier
from engine.data import augment, run_crops
from engine.loss import denoising_loss, partners, stratified_sigmas
from engine.metrics import spectrum_error_db
from engine.network import BiasFreeNorm
from engine.precision import resolve
from engine.sampler import ClassTarget, run

LR, WARMUP, COOLDOWN, EMA = 2e-3, 200, 750, 0.999


def shifted_forward(self, x: torch.Tensor) -> torch.Tensor:
    """BiasFreeNorm.forward plus a learned shift per channel: no longer bias-free."""
    return BiasFreeNorm.forward(self, x) + self.shift.to(x.dtype)[None, :, None, None]


def add_shifts(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, BiasFreeNorm):
            m.shift = torch.nn.Parameter(torch.zeros_like(m.gain))
            m.forward = types.MethodType(shifted_forward, m)


def learning_rate(step: int, steps: int) -> float:
    return LR * min(1.0, (step + 1) / WARMUP) * min(1.0, (steps - step) / COOLDOWN)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a feature-guided run to fine-tune")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--no-shift", action="store_true", help="the control: the same fine-tune, bias-free")
    ap.add_argument("--out", default=None, help="save the fine-tuned weights and centroid table here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    ck = load_checkpoint(args.checkpoint, device="cpu")
    ck._compiled = None                        # the sampler calls the (patched) module itself
    cfg = ck.train_config
    if ck.kind != "feature_guided":
        raise SystemExit(f"{args.checkpoint}: a {ck.kind} model; this screen fine-tunes a feature-guided one")
    model = ck.model
    if not args.no_shift:
        add_shifts(model)
    data = run_crops(cfg, "train")
    images, labels = torch.from_numpy(data.images), torch.from_numpy(data.labels)
    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(data.classes))]
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA), use_buffers=True)
    net, autocast = torch.compile(model), resolve("auto", torch.device("cpu")).autocast
    groups = cfg.batch // cfg.pool
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, args.steps)
        anchors = torch.randint(len(labels), (groups,), generator=gen)
        idx = partners(labels[anchors].repeat_interleave(cfg.pool), by_class, gen)
        sigma = stratified_sigmas(groups, cfg.sigma_max, gen).repeat_interleave(cfg.pool)[:, None, None, None]
        x = augment(images[idx], labels[idx], data.symmetries, gen)
        y = x + sigma * torch.randn(x.shape, generator=gen)
        pidx = partners(labels[idx], by_class, gen)
        ref = augment(images[pidx], labels[pidx], data.symmetries, gen) + sigma * torch.randn(x.shape, generator=gen)
        loss, _ = denoising_loss(net, x, y, sigma, ref, cfg.pool, cfg.sigma_data, cfg.loss_sigma_min,
                                 cfg.weight_cap, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        average.update_parameters(model)
        if step % 500 == 0:
            print(f"step {step}  {time.time() - t0:.0f} s  loss {loss.item():.5f}", flush=True)
    model.load_state_dict(average.module.state_dict())
    model.eval()
    if not args.no_shift:
        shifts = [round(float(m.shift.detach().abs().mean()), 4) for m in model.modules() if isinstance(m, BiasFreeNorm)]
        print("mean |shift| per norm:", shifts)
    ck.centroids = compute_centroids(model, data.images, data.labels, data.classes, seed=cfg.seed)
    if args.out:
        torch.save({"model": model.state_dict(), "centroids": ck.centroids.state()}, args.out)

    test = run_crops(cfg, "test")
    clf = load_classifier(ck, progress=False)
    accs, specs = [], []
    for c, name in enumerate(ck.classes):
        real = test.of_class(c)
        x = run(ck, ClassTarget(name), n=32, seed=c)[0].clamp(0, 1).cpu().numpy()
        accs.append(float((clf.predict(x) == c).mean()))
        specs.append(spectrum_error_db(x, real))
        print(f"{name:12s} accuracy {accs[-1]:.2f}  spectrum error {specs[-1]:.2f} dB  contrast "
              f"{x.std(axis=(1, 2, 3)).mean() / real.std(axis=(1, 2, 3)).mean():.2f}", flush=True)
    print(f"mean accuracy {np.mean(accs):.3f} (lowest {min(accs):.2f}); largest spectrum error {max(specs):.2f} dB")


if __name__ == "__main__":
    main()
