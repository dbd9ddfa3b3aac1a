"""Evaluation of a trained model against the project's quality bars (README).

- classifier: a small CNN independent of the denoiser (classifier.py), its accuracy on
  real test crops;
- class accuracy of conditional samples, per class, and how the classifier reads each class's
  samples (counts per predicted class: where the misread ones go);
- diversity ratio: mean pairwise L2 distance between samples of a class over the same
  figure for real test crops of the class (1: as diverse as real data);
- contrast ratio: mean per-image pixel standard deviation of a class's samples over the same
  figure for its real test crops (below 1: flatter than real images; a diagnostic, no bar);
- kernel distance (KID, Binkowski et al. 2018; a diagnostic, no bar): the unbiased squared MMD,
  with the cubic polynomial kernel, between a class's samples and all its real test crops in the
  independent classifier's pooled features - a distance between distributions, where class
  accuracy only asks which side of a boundary each sample falls. Beside it the same figure for
  as many real *training* crops of the class: what real images score (near 0);
- spectrum error (a bar of its own, per class): the mean absolute difference, in dB
  over radii, between the radial power spectrum of a class's samples and of its real test crops -
  a measure of the texture itself (its scales and contrast) that no classifier boundary hides;
  beside it the same figure for as many real held-out crops (a few tenths of a dB);
- memorisation ratio: median L2 distance from each sample to its nearest training crop,
  over the same figure for real test crops (1: samples are as far from the training set
  as unseen real images; near 0: copies); also per class;
- generalisation gap (a diagnostic, no bar): per class, the PSNR of the conditional denoiser on
  training crops minus on held-out test crops, at small sigma (Kadkhodaie et al. 2024 read
  memorisation in diffusion models off this train-test gap). Near 0: the network denoises unseen
  crops of the class as well as the ones it trained on; well above 0: it learned the class's few
  training tiles rather than its texture. With few tiles per class the two splits' tiles also
  differ in content, which moves it either way (below 0: the test tiles are easier);
- denoising PSNR on test crops, conditional (correct class centroid) vs mixture;
- noise seen (a diagnostic, no bar): the blind noise estimate ||f(y, phibar) - y|| / sqrt(N)
  over the true sigma, on test crops at small sigma, beside the same figure for the class's
  linear (Wiener) denoiser, sqrt(mean_i sigma^2 / (lambda_i + sigma^2)) over the eigenvalues
  lambda_i of its training crops' covariance. The sampler stops when the estimate falls below
  sigma_L, so a network that sees less of the noise than the linear filter stops its walks with
  that much noise left (docs/method.md, "Sampler defaults");
- network evaluations per sample and seconds per batch of 16;
- real_held_out: class accuracy, diversity, kernel distance and memorisation of as many real
  held-out crops per class as there are samples, measured exactly as the samples are - what real
  images score on each figure, printed beside the samples' figures (the model card's table).
"""
from __future__ import annotations

import json
import math
import sys
import time
import tomllib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .classifier import load_classifier
from .data import run_crops
from .denoising import conditioned_denoise, denoiser_gain, plain_denoise
from .metrics import kernel_distance, mean_pairwise_distance, nearest_distance, psnr, spectrum_error_db
from .config import SamplerSettings
from .paths import shown_path
from .sampler import ClassTarget, run
from .sheet import sample_sheet

PSNR_SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0)
GAP_SIGMAS = (0.05, 0.2)
NOISE_SEEN_SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2)


@torch.no_grad()
def denoising_psnr(ckpt, mixture, images: np.ndarray, labels: np.ndarray, sigmas=PSNR_SIGMAS,
                   seed: int = 0, cfg: float = 0.0) -> dict:
    """Mean PSNR of f(y, phibar_class(sigma)) (a conditional model: its guided D_w at weight
    `cfg`) and of the mixture's f(y) at each sigma."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images)
    out = {"sigma": list(sigmas), "conditional": [], "mixture": []}
    for sigma in sigmas:
        y = x + sigma * torch.randn(x.shape, generator=gen)
        out["conditional"].append(float(psnr(conditioned_denoise(ckpt, y, labels, sigma, cfg=cfg), x).mean()))
        if mixture is not None:
            out["mixture"].append(float(psnr(plain_denoise(mixture, y), x).mean()))
    return out


@torch.no_grad()
def generalisation_gap(ckpt, train, test, per_class: int, sigmas=GAP_SIGMAS, seed: int = 0) -> dict:
    """Per class and sigma: PSNR of f(y, phibar_class) on training crops minus on test crops (dB).
    Both splits get the same noise draws (common random numbers), so equal splits give exactly 0."""
    gen = torch.Generator().manual_seed(seed)
    out = {"sigma": list(sigmas), "per_class": {}}
    for c, name in enumerate(ckpt.classes):
        n = min(per_class, len(train.of_class(c)), len(test.of_class(c)))
        pair = [torch.from_numpy(split.of_class(c)[:n]) for split in (train, test)]
        row = []
        for sigma in sigmas:
            z = torch.randn(pair[0].shape, generator=gen)
            db = [float(psnr(conditioned_denoise(ckpt, x + sigma * z, np.full(n, c), sigma), x).mean()) for x in pair]
            row.append(db[0] - db[1])
        out["per_class"][name] = row
    return out


@torch.no_grad()
def noise_seen(ckpt, images: np.ndarray, labels: np.ndarray, train, sigmas=NOISE_SEEN_SIGMAS,
               seed: int = 0) -> dict:
    """Blind noise estimate over the true sigma: the network's (conditioned on the true class
    at the true sigma) and the class's linear denoiser's, each averaged over classes."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images)
    n_pixels = x[0].numel()
    eig = []
    for c in range(len(ckpt.classes)):
        crops = train.of_class(c).reshape(-1, n_pixels).astype(np.float64)
        eig.append(np.clip(np.linalg.eigvalsh(np.cov(crops, rowvar=False)), 0, None))
    out = {"sigma": list(sigmas), "network": [], "linear": []}
    for sigma in sigmas:
        y = x + sigma * torch.randn(x.shape, generator=gen)
        f = conditioned_denoise(ckpt, y, labels, sigma)
        seen = ((f - y).flatten(1).norm(dim=1) / math.sqrt(n_pixels) / sigma).numpy()
        out["network"].append(float(np.mean([seen[labels == c].mean() for c in np.unique(labels)])))
        out["linear"].append(float(np.mean([np.sqrt(np.mean(sigma ** 2 / (e + sigma ** 2))) for e in eig])))
    return out


def seconds_per_batch(ckpt, n: int = 16, repeats: int = 3, settings: SamplerSettings | None = None) -> dict:
    """Wall time of a full class-conditional run of n samples (after one warm-up run)."""
    target = ClassTarget(ckpt.classes[0])
    run(ckpt, target, n=n, seed=0, settings=settings)
    times, nfes = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        _, (last,) = run(ckpt, target, n=n, seed=r + 1, settings=settings)
        times.append(time.perf_counter() - t0)
        nfes.append(last.nfe)
    return {"seconds_per_batch": float(np.median(times)), "batch": n, "nfe_per_sample": float(np.mean(nfes)),
            "threads": torch.get_num_threads(), "device": str(ckpt.device)}


def evaluate(ckpt, mixture=None, per_class: int = 32, psnr_per_class: int = 50, seed: int = 0,
             settings: SamplerSettings | None = None, progress: bool = True, timing: bool = True,
             sheet: str | Path | None = None, diagnostics: bool = True) -> dict:
    """Every figure of the module doc; `diagnostics` False leaves out the two without a bar (noise
    seen, generalisation gap), as a comparison of methods does."""
    cfg = ckpt.train_config
    train = run_crops(cfg, "train", cfg.n_per_class)
    test = run_crops(cfg, "test")
    clf = load_classifier(ckpt, progress=progress)
    report = {"checkpoint": shown_path(ckpt.path), "classes": ckpt.classes, "samples_per_class": per_class,
              "sampler": vars(settings or SamplerSettings()),
              "classifier_test_accuracy": float((clf.predict(test.images) == test.labels).mean())}

    acc, readings, div, contrast, kid, kid_real, spectrum, nfe = {}, {}, {}, {}, {}, {}, {}, []
    samples_all, real_all, held_all = [], [], []
    held = {"class_accuracy": {}, "diversity_per_class": {}, "kid_per_class": {}, "spectrum_error_db": {}}
    for c, name in enumerate(tqdm(ckpt.classes, desc="sampling", disable=not progress, file=sys.stderr)):
        samples, (last,) = run(ckpt, ClassTarget(name), n=per_class, seed=seed + c, settings=settings)
        x = samples.cpu().numpy()
        nfe.append(last.nfe)
        samples_all.append(x)
        counts = clf.readings(x)
        acc[name] = counts[name] / len(x)
        # most common first, ties in class order
        readings[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], ckpt.classes.index(kv[0]))))
        members = test.of_class(c)
        # The class's test crops in three parts: `real`, the reference of the diversity and
        # memorisation ratios; `other`, as many other held-out crops, measured exactly as the
        # samples are (what real images score on every figure: the samples' target); the rest,
        # the reference set of the kernel distance (disjoint from both).
        real, other, rest = members[:per_class], members[per_class:2 * per_class], members[2 * per_class:]
        if len(other) < 2 or len(rest) < 2:
            rest, other = members, members[per_class:]   # few test crops: overlapping sets (KID biased low)
        real_all.append(real)
        held_all.append(other)
        div[name] = mean_pairwise_distance(x) / mean_pairwise_distance(real)
        contrast[name] = float(x.std(axis=(1, 2, 3)).mean() / real.std(axis=(1, 2, 3)).mean())
        reference = clf.features(rest)
        kid[name] = kernel_distance(clf.features(x), reference)
        kid_real[name] = kernel_distance(clf.features(train.of_class(c)[:per_class]), reference)
        spectrum[name] = spectrum_error_db(x, rest)
        if len(other) >= 2:
            held["class_accuracy"][name] = clf.readings(other)[name] / len(other)
            held["diversity_per_class"][name] = mean_pairwise_distance(other) / mean_pairwise_distance(real)
            held["kid_per_class"][name] = kernel_distance(clf.features(other), reference)
            held["spectrum_error_db"][name] = spectrum_error_db(other, rest)
    samples = np.concatenate(samples_all)
    if sheet is not None:            # the evaluation's own samples beside the class's held-out crops
        report["sheet"] = shown_path(sample_sheet(ckpt.classes, real_all, samples_all, sheet))
    report["class_accuracy"] = acc
    report["mean_class_accuracy"] = float(np.mean(list(acc.values())))
    report["min_class_accuracy"] = float(min(acc.values()))
    report["class_readings"] = readings
    report["diversity_per_class"] = div
    report["diversity_ratio"] = float(np.mean(list(div.values())))
    report["contrast_per_class"] = contrast
    report["contrast_ratio"] = float(np.mean(list(contrast.values())))
    report["kid_per_class"] = kid
    report["kid"] = float(np.mean(list(kid.values())))
    report["kid_real_per_class"] = kid_real
    report["kid_real"] = float(np.mean(list(kid_real.values())))
    report["spectrum_error_db"] = spectrum
    report["max_spectrum_error_db"] = float(max(spectrum.values()))

    d_samples = nearest_distance(samples, train.images)
    d_test = nearest_distance(np.concatenate(real_all), train.images)
    report["memorisation"] = {"median_nn_sample_to_train": float(np.median(d_samples)),
                              "median_nn_test_to_train": float(np.median(d_test))}
    report["memorisation_ratio"] = float(np.median(d_samples) / np.median(d_test))
    ends = np.cumsum([len(r) for r in real_all])[:-1]
    report["memorisation_per_class"] = {
        name: float(np.median(ds) / np.median(dt))
        for name, ds, dt in zip(ckpt.classes, np.split(d_samples, len(ckpt.classes)), np.split(d_test, ends))}
    if held["class_accuracy"]:
        d_held = nearest_distance(np.concatenate(held_all), train.images)
        held_ends = np.cumsum([len(h) for h in held_all])[:-1]
        held["memorisation_per_class"] = {
            name: float(np.median(dh) / np.median(dt))
            for name, dh, dt in zip(ckpt.classes, np.split(d_held, held_ends), np.split(d_test, ends))}
        for key in ("class_accuracy", "diversity_per_class", "kid_per_class", "memorisation_per_class"):
            held["mean_" + key.replace("_per_class", "")] = float(np.mean(list(held[key].values())))
        report["real_held_out"] = held

    idx = np.concatenate([np.nonzero(test.labels == c)[0][:psnr_per_class] for c in range(len(ckpt.classes))])
    w = settings.cfg if settings is not None else 0.0       # the denoiser the walk takes, guided or not
    p = denoising_psnr(ckpt, mixture, test.images[idx], test.labels[idx], seed=seed, cfg=w)
    report["psnr"] = p
    gain = denoiser_gain(ckpt, test.images[idx], test.labels[idx], ckpt.classes, seed=seed, cfg=w)
    report["denoiser_gain_db"] = gain
    report["denoiser_never_worse"] = all(v >= 0 for row in gain.values() for v in row.values())
    if diagnostics:
        report["noise_seen"] = noise_seen(ckpt, test.images[idx], test.labels[idx], train, seed=seed)
        report["generalisation_gap_db"] = generalisation_gap(ckpt, train, test, psnr_per_class, seed=seed)
    if mixture is not None:
        report["psnr_gain_db"] = {str(s): c - m for s, c, m in zip(p["sigma"], p["conditional"], p["mixture"])}
    if timing:
        report["timing"] = seconds_per_batch(ckpt, 16, settings=settings)
    report["nfe_per_sample"] = float(np.mean(nfe))
    return report


HAND_WRITTEN = "## Status"      # a card's section from this heading on is written by people, not measured


def write_card(path, generated: str) -> None:
    """Write a model card; a hand-written section already in the file (from its `## Status`
    heading on: commands, history, what is met) is kept after the newly measured part."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    i = old.find("\n" + HAND_WRITTEN)
    path.write_text(generated + (old[i:] if i >= 0 else ""))


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2)


def loss_name(sigma_data: float) -> str:
    return f"loss weight 1 + ({sigma_data:g} / sigma)^2" if sigma_data else "plain MSE"


def misreadings(report: dict) -> list[str]:
    """The card's line on where misread samples go ("petals: tissue 17, gravel 1"), if any are."""
    wrong = {name: {k: n for k, n in read.items() if k != name}
             for name, read in report.get("class_readings", {}).items()}
    parts = [f"{name}: " + ", ".join(f"{k} {n}" for k, n in w.items()) for name, w in wrong.items() if w]
    return [f"  - misread samples, read by the classifier as (counts of {report['samples_per_class']}): "
            + "; ".join(parts)] if parts else []


def model_card(ckpt, mixture, report: dict) -> str:
    """A markdown model card: what was trained, how, on what, and how well (measured)."""
    def run_facts(c):
        info = c.info
        return (f"- kind: `{c.kind}`, {sum(p.numel() for p in c.model.parameters()):,} parameters "
                f"(channel widths {','.join(map(str, c.config.widths))}), "
                f"phi of {c.model.phi_dim} numbers (blocks {', '.join(c.config.feature_blocks)}), "
                f"matched blocks: {', '.join(c.config.matched_blocks) or 'none'}\n"
                f"- trained {c.step} steps at batch {c.train_config.batch}, lr {c.train_config.lr:g}, in "
                f"{info.get('wall_seconds', 0) / 60:.0f} min on {info.get('machine', '?')} (torch {info.get('torch', '?')})\n"
                f"- noise levels up to sigma {c.train_config.sigma_max:g}, {loss_name(c.train_config.sigma_data)}"
                + (f", targets pooled over {c.train_config.pool} partners" if c.kind == "feature_guided" else "")
                + (f", class dropout {c.train_config.class_dropout:g}" if c.kind == "conditional" else "")
                + (f", weights averaged (ema {c.train_config.ema:g})" if c.train_config.ema else "")
                + "\n"
                f"- dataset `{c.train_config.dataset}`: {info.get('train_images', '?')} training crops, "
                f"classes {', '.join(c.classes)}\n"
                + (recipe_facts(c) if c.info.get("recipe") else
                   (f"- in all, with the {len(c.lineage)} runs it was fine-tuned from (below): {c.total_steps} steps, "
                    f"{c.total_wall_seconds / 60:.0f} min\n" if c.lineage else "") + lineage(c)))

    def recipe_facts(c) -> str:
        """How a model trained by a recipe was made: the one command, and each stage's run."""
        r = c.info["recipe"]
        name = Path(r["path"]).stem
        flat = {**{k: v for k, v in r["overrides"].items() if k != "model"}, **r["overrides"].get("model", {})}
        given = "".join(f" --{'matched' if k == 'matched_blocks' else k.replace('_', '-')} "
                        f"{','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in flat.items())
        out = (f"- recipe `recipes/{name}.toml`{' (its [cuda] section)' if r.get('cuda') else ''}: "
               f"`python -m engine train --recipe recipes/{name}.toml --out runs/{name}{given}`; "
               f"{c.total_steps} steps in all, {c.total_wall_seconds / 60:.0f} min\n")
        runs = [*reversed(c.lineage), {"step": c.step, "wall_seconds": c.info.get("wall_seconds"),
                                        "train_config": asdict(c.train_config)}]
        names = [s["name"] for s in tomllib.loads(r["text"]).get("stages", [])] or [None]
        for stage, run in zip(names, runs):
            t = run["train_config"]
            out += (f"  - {'stage ' + repr(stage) if stage else 'one stage'}: {run['step']} steps, lr {t['lr']:g}, "
                    f"{loss_name(t['sigma_data'])}, {(run.get('wall_seconds') or 0) / 60:.0f} min\n")
        return out

    def lineage(c) -> str:
        """The runs this one was fine-tuned from (`train --init`), newest first; a run that
        was grown wider (`--init --widths`) says from which widths."""
        out, widths = "", tuple(c.config.widths)
        for run in c.lineage:
            t = run["train_config"]
            was = tuple(t["model"]["widths"])
            grown = (f"; grown from widths {','.join(map(str, was))} to {','.join(map(str, widths))} after it"
                     if was != widths else "")
            out += (f"- fine-tuned from `{run['path']}`: {run['step']} steps at batch {t['batch']}, lr {t['lr']:g}, "
                    f"{loss_name(t['sigma_data'])}, {(run.get('wall_seconds') or 0) / 60:.0f} min{grown}\n")
            widths = was
        return out
    title = "Conditional model (told the class)" if ckpt.kind == "conditional" else "Feature-guided model"
    lines = ["# Model card", "", f"## {title}", run_facts(ckpt)]
    if mixture is not None:
        lines += ["## Mixture model (baseline)", run_facts(mixture)]
    lines += ["## Measured (`python -m engine evaluate`)", "",
              f"- independent classifier, accuracy on real test crops: {report['classifier_test_accuracy']:.3f}",
              f"- class accuracy of conditional samples ({report['samples_per_class']} per class): "
              f"mean {report['mean_class_accuracy']:.3f}, lowest {report['min_class_accuracy']:.3f}",
              "  - " + ", ".join(f"{k} {v:.2f}" for k, v in report["class_accuracy"].items()),
              *misreadings(report),
              f"- diversity ratio: {report['diversity_ratio']:.3f}",
              f"- contrast ratio (sample pixel std over real): {report['contrast_ratio']:.3f}",
              f"- memorisation ratio: {report['memorisation_ratio']:.3f}",
              *(["  - " + ", ".join(f"{k} {v:.2f}" for k, v in report["memorisation_per_class"].items())]
                if "memorisation_per_class" in report else []),
              f"- network evaluations per sample: {report['nfe_per_sample']:.1f}"]
    if "kid" in report:                   # reports written before it was measured have none
        lines[-1:-1] = [f"- kernel distance (KID) to the class's real test crops in the classifier's features: "
                        f"samples {report['kid']:.3f}, as many real training crops {report['kid_real']:.3f} "
                        "(a diagnostic)",
                        "  - " + ", ".join(f"{k} {v:.3f}" for k, v in report["kid_per_class"].items())]
    if "real_held_out" in report:
        h = report["real_held_out"]
        # reports written before the spectrum error was measured have no such column
        spec = "spectrum_error_db" in report and "spectrum_error_db" in h

        def spectrum(k: str) -> str:
            return f" {report['spectrum_error_db'][k]:.2f} | {h['spectrum_error_db'][k]:.2f} |" if spec else ""
        lines += ["", f"Per class, samples against as many real held-out crops measured alike (real):", "",
                  "| class | accuracy | real | kernel distance | real | diversity | real | memorisation | real |"
                  + (" spectrum error (dB) | real |" if spec else ""),
                  "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if spec else "")]
        lines += [f"| {k} | {report['class_accuracy'][k]:.2f} | {h['class_accuracy'][k]:.2f} | "
                  f"{report['kid_per_class'][k]:.3f} | {h['kid_per_class'][k]:.3f} | "
                  f"{report['diversity_per_class'][k]:.2f} | {h['diversity_per_class'][k]:.2f} | "
                  f"{report['memorisation_per_class'][k]:.2f} | {h['memorisation_per_class'][k]:.2f} |" + spectrum(k)
                  for k in report["class_accuracy"]]
        lines += [f"| **mean** | {report['mean_class_accuracy']:.2f} | {h['mean_class_accuracy']:.2f} | "
                  f"{report['kid']:.3f} | {h['mean_kid']:.3f} | {report['diversity_ratio']:.2f} | "
                  f"{h['mean_diversity']:.2f} | {report['memorisation_ratio']:.2f} (median of all) | "
                  f"{h['mean_memorisation']:.2f} |"
                  + (f" {report['max_spectrum_error_db']:.2f} (largest) | {max(h['spectrum_error_db'].values()):.2f} |"
                     if spec else ""), ""]
    if "timing" in report:
        t = report["timing"]
        lines.append(f"- seconds per batch of 16: {t['seconds_per_batch']:.2f} ({t['threads']} threads, {t['device']})")
    p = report["psnr"]
    lines += ["", "| sigma | " + " | ".join(f"{s:g}" for s in p["sigma"]) + " |",
              "|---" * (len(p["sigma"]) + 1) + "|",
              "| conditional PSNR (dB) | " + " | ".join(f"{v:.2f}" for v in p["conditional"]) + " |"]
    if p["mixture"]:
        lines.append("| mixture PSNR (dB) | " + " | ".join(f"{v:.2f}" for v in p["mixture"]) + " |")
    if "denoiser_gain_db" in report:
        g = report["denoiser_gain_db"]
        sigmas = list(next(iter(g.values())))
        lines += ["", "Denoiser gain: PSNR out minus PSNR in (dB), each test crop conditioned on its own class; "
                  "below 0 the denoiser makes the image worse" + ("" if report["denoiser_never_worse"] else
                                                                 " (**it does somewhere**)") + ":", "",
                  "| class | " + " | ".join(f"sigma {s}" for s in sigmas) + " |", "|---" * (len(sigmas) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{row[s]:+.2f}" for s in sigmas) + " |" for name, row in g.items()]
    if "noise_seen" in report:
        n = report["noise_seen"]
        lines += ["", "Noise seen (blind estimate over the true sigma; 1: all of it; a diagnostic, see "
                  "engine/evaluate.py):", "",
                  "| sigma | " + " | ".join(f"{s:g}" for s in n["sigma"]) + " |",
                  "|---" * (len(n["sigma"]) + 1) + "|",
                  "| network | " + " | ".join(f"{v:.2f}" for v in n["network"]) + " |",
                  "| linear denoiser of the class | " + " | ".join(f"{v:.2f}" for v in n["linear"]) + " |"]
    if "generalisation_gap_db" in report:
        g = report["generalisation_gap_db"]["per_class"]
        lines += ["", "Generalisation gap (PSNR of the conditional denoiser on training crops minus on test "
                  "crops, dB; well above 0: the class's training tiles learned by heart; a diagnostic, see "
                  "engine/evaluate.py):", "",
                  "| sigma | " + " | ".join(g) + " |", "|---" * (len(g) + 1) + "|"]
        lines += [f"| {s:g} | " + " | ".join(f"{row[i]:+.2f}" for row in g.values()) + " |"
                  for i, s in enumerate(report["generalisation_gap_db"]["sigma"])]
    lines += ["", f"Sampler settings: {report['sampler']}", ""]
    return "\n".join(lines)
