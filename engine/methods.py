"""Feature guidance beside the standard way of conditioning (docs/analysis.md, "Feature guidance
beside a class-conditional network").

The methods compared, on the same data, sampler and evaluation:
- feature guidance: the feature-guided model, its activations projected onto a class centroid;
- the conditional network (w = 0): a UNet told the class through learned per-channel gains
  (engine/conditional.py), trained alike;
- classifier-free guidance at w in `weights`: the same network, D_w = D_c + w (D_c - D_null).

Each method's samples and denoiser go through `evaluate` (the code path of every model's figures),
with the diagnostics that have no bar left out. Per method: class accuracy (mean and lowest class),
kernel distance (median over classes), diversity and memorisation ratios, the PSNR gain over the
mixture model at each sigma, the denoiser's own gain at small sigma, network evaluations and seconds
per sample, and what the model's training cost (its steps, wall time and precision as recorded,
and training images per second measured here, both kinds at the same precision).
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from .atlas import check_compatible
from .config import SamplerSettings
from .errors import EngineError

WEIGHTS = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class Method:
    key: str              # "feature_guided", "conditional", "cfg_2"
    label: str            # as figures and tables show it
    kind: str             # the checkpoint kind it samples
    cfg: float = 0.0


def methods(weights=WEIGHTS) -> list[Method]:
    return [Method("feature_guided", "feature guidance", "feature_guided"),
            Method("conditional", "conditional network (w = 0)", "conditional")] + \
        [Method(f"cfg_{w:g}", f"CFG w = {w:g}", "conditional", float(w)) for w in weights]


def check_methods_pair(fg, conditional) -> None:
    if fg.kind != "feature_guided":
        raise EngineError(f"{fg.path}: the comparison needs a feature-guided model, this is a {fg.kind} model")
    if conditional.kind != "conditional":
        raise EngineError(f"{conditional.path}: the comparison needs a conditional model (kind conditional), "
                          f"this is a {conditional.kind} model; train one with "
                          "`python -m engine train --recipe recipes/conditional_v3.toml`")
    check_compatible({"feature_guided": fg, "conditional": conditional})


def training_cost(ckpt, precision: str = "fp32", steps: int = 20) -> dict:
    """What the checkpoint's training recorded, and its training images per second measured here
    (`steps` steps of its own config at `precision`, eager): both kinds measured alike."""
    from .throughput import train_benchmark
    info = ckpt.info or {}
    cfg = copy.deepcopy(ckpt.train_config)
    cfg.steps, cfg.precision, cfg.compile, cfg.checkpoint_every, cfg.snapshot_every = steps, precision, "off", \
        10 ** 9, 0
    cfg.n_per_class, cfg.ema = 64, 0.0
    measured = train_benchmark(cfg)
    return {"steps": ckpt.total_steps, "wall_seconds": info.get("wall_seconds"), "machine": info.get("machine"),
            "precision": info.get("precision", "fp32"), "compiled": bool(info.get("compiled")),
            "images_per_second_here": measured["images_per_second"], "measured_precision": precision}


def summarise(report: dict, method: Method) -> dict:
    """One method's row of the comparison, from its `evaluate` report."""
    timing = report.get("timing", {})
    return {"label": method.label, "checkpoint": report["checkpoint"], "cfg": method.cfg,
            "class_accuracy": report["mean_class_accuracy"], "min_class_accuracy": report["min_class_accuracy"],
            "class_accuracy_per_class": report["class_accuracy"],
            "kid_median": float(np.median(list(report["kid_per_class"].values()))),
            "kid_per_class": report["kid_per_class"],
            "diversity_ratio": report["diversity_ratio"], "memorisation_ratio": report["memorisation_ratio"],
            "psnr_gain_over_mixture_db": report.get("psnr_gain_db", {}),
            "denoiser_gain_db": report["denoiser_gain_db"],
            "denoiser_worst_gain_db": {s: min(row[s] for row in report["denoiser_gain_db"].values())
                                       for s in next(iter(report["denoiser_gain_db"].values()))},
            "nfe_per_sample": report["nfe_per_sample"],
            "seconds_per_sample": timing["seconds_per_batch"] / timing["batch"] if timing else None}


def compare_methods(fg, conditional, mixture=None, per_class: int = 32, seed: int = 0, weights=WEIGHTS,
                    settings: SamplerSettings | None = None, timing: bool = True, training: bool = True,
                    progress: bool = False, log=None) -> dict:
    """Every method of `methods(weights)`, evaluated alike (module doc)."""
    from .evaluate import evaluate
    check_methods_pair(fg, conditional)
    settings = settings or SamplerSettings()
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    rows, real = {}, None
    for m in methods(weights):
        ck = fg if m.kind == "feature_guided" else conditional
        t0 = time.perf_counter()
        report = evaluate(ck, mixture, per_class=per_class, seed=seed, settings=replace(settings, cfg=m.cfg),
                          progress=progress, timing=timing, diagnostics=False)
        rows[m.key] = summarise(report, m)
        real = real or report.get("real_held_out")
        say(f"methods: {m.label}: accuracy {rows[m.key]['class_accuracy']:.3f}, KID {rows[m.key]['kid_median']:.3f} "
            f"({time.perf_counter() - t0:.0f} s)")
    out = {"methods": rows, "samples_per_class": per_class, "seed": seed, "sampler": vars(settings),
           "real_held_out": None if real is None else {
               "class_accuracy": real["mean_class_accuracy"],
               "kid_median": float(np.median(list(real["kid_per_class"].values()))),
               "diversity_ratio": real["mean_diversity"], "memorisation_ratio": real["mean_memorisation"]}}
    if training:
        out["training"] = {"feature_guided": training_cost(fg), "conditional": training_cost(conditional)}
    return out
